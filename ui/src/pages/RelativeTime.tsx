import { absoluteTime, relativeTime } from "./format";

/** A timestamp shown relative to now, with the exact time on hover; `empty` when there is none. */
export function RelativeTime({ iso, empty = "—" }: { iso: string | null | undefined; empty?: string }) {
  if (!iso) return <span className="muted">{empty}</span>;
  return <time dateTime={iso} title={absoluteTime(iso)}>{relativeTime(iso)}</time>;
}
