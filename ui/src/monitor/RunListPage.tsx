// /runs: every run the caller may see, newest first; `?dag=` and a state select filter, paged, refreshed
// every 5 s while the tab is visible.

import { useState } from "react";
import { Link, useSearchParams } from "react-router-dom";
import { listRuns } from "../api/endpoints";
import type { Page, RunInfo } from "../api/types";
import { ErrorBanner } from "../components/ErrorBanner";
import { StateBadge } from "../components/StateBadge";
import { StartRunDialog } from "./StartRunDialog";
import { formatDuration, formatTime, shortId, TASK_STATES } from "./format";
import { useNow, usePolling } from "./usePolling";
import "./monitor.css";

const PAGE_SIZE = 25;

export function RunListPage() {
  const [params, setParams] = useSearchParams();
  const dag = params.get("dag") ?? "";
  const state = params.get("state") ?? "";
  const offset = Math.max(0, Number(params.get("offset")) || 0);
  const [page, setPage] = useState<Page<RunInfo> | null>(null);
  const [error, setError] = useState<unknown>(null);
  const now = useNow(1000, true);
  const [starting, setStarting] = useState(false);

  const query = `${dag}|${state}|${offset}`;
  const [shown, setShown] = useState(query);
  if (shown !== query) {
    // A new filter or page: drop the old rows at once rather than showing them under the new filter.
    setShown(query);
    setPage(null);
  }

  usePolling(async (signal) => {
    try {
      const next = await listRuns({ dag: dag || undefined, state: state || undefined, offset, limit: PAGE_SIZE });
      if (signal.aborted) return;
      setPage(next);
      setError(null);
    } catch (failure) {
      if (!signal.aborted) setError(failure);
    }
  }, 5000, true, query);

  const update = (changes: Record<string, string | null>) => {
    const next = new URLSearchParams(params);
    for (const [key, value] of Object.entries(changes)) {
      if (value) next.set(key, value);
      else next.delete(key);
    }
    setParams(next);
  };

  return (
    <div className="page run-list">
      <h1>Runs{dag && <> of <code>{dag}</code></>}</h1>
      <div className="toolbar">
        <label htmlFor="run-state-filter" className="inline">Filter by state</label>
        <select id="run-state-filter" value={state} onChange={(e) => update({ state: e.target.value, offset: null })}>
          <option value="">all</option>
          {TASK_STATES.map((s) => <option key={s} value={s}>{s}</option>)}
        </select>
        {dag && <Link to="/runs" className="button">Show all DAGs</Link>}
        {dag && <button type="button" className="primary" onClick={() => setStarting(true)}>Start run</button>}
      </div>
      <ErrorBanner error={error} />
      {!page && !error && <p className="muted" role="status">Loading runs…</p>}
      {page && page.items.length === 0 && (
        <p className="muted">No runs{state ? ` in state ${state}` : ""}{dag ? ` of ${dag}` : ""} yet.</p>
      )}
      {page && page.items.length > 0 && (
        <table className="grid">
          <thead>
            <tr><th>Run</th><th>DAG</th><th>State</th><th>Started</th><th>Duration</th><th>Started by</th></tr>
          </thead>
          <tbody>
            {page.items.map((run) => (
              <tr key={run.id}>
                <td><Link to={`/runs/${run.id}`} title={run.id}><code>{shortId(run.id)}</code></Link></td>
                <td>
                  <Link to={`/runs?dag=${encodeURIComponent(run.dag)}`}>{run.dag}</Link>
                  {run.dag_version !== null && <span className="muted"> v{run.dag_version}</span>}
                </td>
                <td><StateBadge state={run.state} /></td>
                <td>{formatTime(run.created_at)}</td>
                <td>{formatDuration(run.created_at, run.finished_at, now)}</td>
                <td>{run.schedule_id !== null ? `schedule #${run.schedule_id}` : run.created_by ?? "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {page && (
        <div className="pager">
          <button type="button" disabled={offset === 0} onClick={() => update({ offset: String(Math.max(0, offset - PAGE_SIZE)) })}>Newer</button>
          <span className="muted">
            {page.total === 0 ? "0 runs" : `${offset + 1}–${offset + page.items.length} of ${page.total}`}
          </span>
          <button type="button" disabled={page.next_offset === null} onClick={() => update({ offset: String(page.next_offset) })}>Older</button>
        </div>
      )}
      {starting && <StartRunDialog dag={dag} onClose={() => setStarting(false)} />}
    </div>
  );
}
