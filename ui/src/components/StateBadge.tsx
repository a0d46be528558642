export function StateBadge({ state }: { state: string | null | undefined }) {
  if (!state) return <span className="muted">never run</span>;
  return <span className={`state state-${state}`} data-state={state}>{state}</span>;
}
