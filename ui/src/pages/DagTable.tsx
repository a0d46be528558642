// The DAG list's table: one row per stored DAG with its newest version, last run and actions.

import { Link } from "react-router-dom";
import type { DagSummary } from "../api/types";
import { LastRun } from "./LastRun";
import { RelativeTime } from "./RelativeTime";

export type DagAction = "run" | "duplicate" | "export" | "delete";

interface DagTableProps {
  dags: DagSummary[];
  onAction: (action: DagAction, dag: DagSummary) => void;
}

export function DagTable({ dags, onAction }: DagTableProps) {
  return (
    <table className="grid">
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Description</th>
          <th scope="col">Version</th>
          <th scope="col">Updated</th>
          <th scope="col">Last run</th>
          <th scope="col"><span className="visually-hidden">Actions</span></th>
        </tr>
      </thead>
      <tbody>
        {dags.map((dag) => (
          <tr key={dag.name}>
            <th scope="row"><Link to={`/dags/${encodeURIComponent(dag.name)}`}>{dag.name}</Link></th>
            <td className="description">{dag.description ?? <span className="muted">—</span>}</td>
            <td>
              v{dag.latest_version}{" "}
              <span className="muted">({dag.versions} {dag.versions === 1 ? "version" : "versions"})</span>
            </td>
            <td><RelativeTime iso={dag.updated_at} /></td>
            <td><LastRun id={dag.last_run_id} state={dag.last_run_state} /></td>
            <td className="row-actions">
              <button type="button" aria-label={`Run ${dag.name}`} onClick={() => onAction("run", dag)}>Run</button>
              <button type="button" aria-label={`Duplicate ${dag.name}`} onClick={() => onAction("duplicate", dag)}>Duplicate</button>
              <button type="button" aria-label={`Export ${dag.name}`} onClick={() => onAction("export", dag)}>Export</button>
              <button type="button" className="danger" aria-label={`Delete ${dag.name}`} onClick={() => onAction("delete", dag)}>Delete</button>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
