// A node's partitions as one bar: succeeded, running and failed segments over the rest (pending).

export interface Counts { succeeded: number; running: number; failed: number; pending: number; total: number }

const RUNNING = ["running", "queued"];
const FAILED = ["failed", "cancelled"];

/** Sums the store's per-state task counts into the four groups the UI shows. */
export function groupCounts(counts: Record<string, number>, partitions: number | null): Counts {
  const sum = (states: string[]) => states.reduce((total, s) => total + (counts[s] ?? 0), 0);
  const succeeded = counts.succeeded ?? 0;
  const running = sum(RUNNING);
  const failed = sum(FAILED);
  const counted = Object.values(counts).reduce((a, b) => a + b, 0);
  const total = Math.max(partitions ?? 0, counted);
  return { succeeded, running, failed, pending: Math.max(0, total - succeeded - running - failed), total };
}

export function ProgressBar({ counts, label }: { counts: Counts; label: string }) {
  const pct = (n: number) => (counts.total ? `${(100 * n) / counts.total}%` : "0%");
  const text = `${counts.succeeded} succeeded, ${counts.running} running, ${counts.failed} failed, ${counts.pending} pending of ${counts.total}`;
  return (
    <div className="progress" role="img" aria-label={`${label}: ${text}`} title={text}>
      <span className="succeeded" style={{ width: pct(counts.succeeded) }} />
      <span className="running" style={{ width: pct(counts.running) }} />
      <span className="failed" style={{ width: pct(counts.failed) }} />
    </div>
  );
}
