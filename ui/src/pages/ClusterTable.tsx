// The registered clusters with their last check; checking a cluster takes seconds, so its row shows that.

import type { ClusterInfo } from "../api/types";
import { Reachability } from "./Reachability";
import { RelativeTime } from "./RelativeTime";

interface ClusterTableProps {
  clusters: ClusterInfo[];
  checking: ReadonlySet<string>;
  onCheck: (name: string) => void;
  onDelete: (name: string) => void;
}

export function ClusterTable({ clusters, checking, onCheck, onDelete }: ClusterTableProps) {
  return (
    <table className="grid">
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">API server</th>
          <th scope="col">Namespace</th>
          <th scope="col">Auth</th>
          <th scope="col">Image</th>
          <th scope="col">Reachable</th>
          <th scope="col">Checked</th>
          <th scope="col"><span className="visually-hidden">Actions</span></th>
        </tr>
      </thead>
      <tbody>
        {clusters.map((cluster) => {
          const busy = checking.has(cluster.name);
          return (
            <tr key={cluster.name} aria-busy={busy}>
              <th scope="row">{cluster.name}</th>
              <td><code>{cluster.server}</code></td>
              <td>{cluster.namespace}</td>
              <td>{cluster.auth}</td>
              <td>{cluster.image ? <code>{cluster.image}</code> : <span className="muted">default</span>}</td>
              <td>
                {busy ? <span className="reach reach-unknown">checking…</span> : <Reachability cluster={cluster} />}
                {!busy && cluster.check_message && <span className="cell-note">{cluster.check_message}</span>}
              </td>
              <td><RelativeTime iso={cluster.checked_at} empty="never" /></td>
              <td className="row-actions">
                <button type="button" aria-label={`Check ${cluster.name}`} onClick={() => onCheck(cluster.name)} disabled={busy}>
                  {busy ? "Checking…" : "Check"}
                </button>
                <button type="button" className="danger" aria-label={`Delete ${cluster.name}`} onClick={() => onDelete(cluster.name)}>
                  Delete
                </button>
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
