// Small text helpers shared by the run list and the run monitor.

import type { Counts } from "../components/ProgressBar";

export const TASK_STATES = ["pending", "queued", "running", "succeeded", "failed", "cancelled", "skipped"] as const;
const TERMINAL = new Set(["succeeded", "failed", "cancelled", "skipped"]);

export const isTerminal = (state: string | null | undefined): boolean => !!state && TERMINAL.has(state);

/** The first 8 characters of a run id: what the UI prints, the full id stays in links and titles. */
export const shortId = (id: string): string => id.slice(0, 8);

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

/** "1h 02m", "3m 05s", "12s" from start to end (or to `now` while still going). */
export function formatDuration(start: string | null | undefined, end: string | null | undefined, now: number = Date.now()): string {
  if (!start) return "—";
  const ms = (end ? Date.parse(end) : now) - Date.parse(start);
  if (!Number.isFinite(ms) || ms < 0) return "—";
  const s = Math.floor(ms / 1000);
  const [h, m, sec] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  const pad = (n: number) => String(n).padStart(2, "0");
  if (h) return `${h}h ${pad(m)}m`;
  if (m) return `${m}m ${pad(sec)}s`;
  return s ? `${sec}s` : `${(ms / 1000).toFixed(1)}s`;
}

export function humanBytes(bytes: number): string {
  if (!bytes) return "0 B";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  const power = Math.min(units.length - 1, Math.floor(Math.log(bytes) / Math.log(1024)));
  const value = bytes / 1024 ** power;
  return `${power === 0 ? value : value.toFixed(value < 10 ? 1 : 0)} ${units[power]}`;
}

/**
 * "7 / 10 succeeded · 2 running · 1 failed" from the grouped counts, with failed and cancelled told apart
 * (the progress bar draws both red, the words should not); zero parts are left out, except the first.
 */
export function countsText(counts: Counts, raw: Record<string, number>): string {
  if (counts.total === 0) return "not planned yet";
  const parts = [`${counts.succeeded} / ${counts.total} succeeded`];
  if (counts.running) parts.push(`${counts.running} running`);
  if (raw.failed) parts.push(`${raw.failed} failed`);
  if (raw.cancelled) parts.push(`${raw.cancelled} cancelled`);
  if (raw.skipped) parts.push(`${raw.skipped} skipped`);
  return parts.join(" · ");
}
