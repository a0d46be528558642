// The schedules with their next tick and the last run a tick started (or why the last tick could not).

import { Link } from "react-router-dom";
import type { ScheduleInfo } from "../api/types";
import { LastRun } from "./LastRun";
import { RelativeTime } from "./RelativeTime";

interface ScheduleTableProps {
  schedules: ScheduleInfo[];
  pending: ReadonlySet<number>;
  onToggle: (schedule: ScheduleInfo) => void;
  onDelete: (schedule: ScheduleInfo) => void;
}

export function ScheduleTable({ schedules, pending, onToggle, onDelete }: ScheduleTableProps) {
  return (
    <table className="grid">
      <thead>
        <tr>
          <th scope="col">DAG</th>
          <th scope="col">Cron</th>
          <th scope="col">Time zone</th>
          <th scope="col">Overlap</th>
          <th scope="col">State</th>
          <th scope="col">Next run</th>
          <th scope="col">Last run</th>
          <th scope="col"><span className="visually-hidden">Actions</span></th>
        </tr>
      </thead>
      <tbody>
        {schedules.map((s) => (
          <tr key={s.id}>
            <th scope="row">
              <Link to={`/dags/${encodeURIComponent(s.dag)}`}>{s.dag}</Link>{" "}
              <span className="muted">#{s.id}</span>
            </th>
            <td><code>{s.cron}</code></td>
            <td>{s.timezone}</td>
            <td>{s.overlap}</td>
            <td>{s.enabled ? "active" : <span className="muted">paused</span>}</td>
            <td><RelativeTime iso={s.next_fire_at} /></td>
            <td>
              {s.last_error
                ? <span className="error-text">{s.last_error}</span>
                : <LastRun id={s.last_run_id} state={s.last_run_state} />}
            </td>
            <td className="row-actions">
              <button type="button" onClick={() => onToggle(s)} disabled={pending.has(s.id)}
                aria-label={`${s.enabled ? "Pause" : "Resume"} schedule ${s.id}`}>
                {s.enabled ? "Pause" : "Resume"}
              </button>
              <button type="button" className="danger" onClick={() => onDelete(s)} aria-label={`Delete schedule ${s.id}`}>
                Delete
              </button>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
