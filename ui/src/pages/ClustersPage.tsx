// `/clusters`: the Kubernetes clusters tasks can run on, their reachability, and registering a new one.

import { useEffect, useState } from "react";
import { checkCluster, deleteCluster, listClusters } from "../api/endpoints";
import type { ClusterCheck, ClusterInfo } from "../api/types";
import { ErrorBanner } from "../components/ErrorBanner";
import { ClusterForm } from "./ClusterForm";
import { ClusterTable } from "./ClusterTable";
import { ConfirmDialog } from "./ConfirmDialog";
import "./pages.css";

export function ClustersPage() {
  const [clusters, setClusters] = useState<ClusterInfo[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [checking, setChecking] = useState<ReadonlySet<string>>(new Set());
  const [announcement, setAnnouncement] = useState("");
  const [deleting, setDeleting] = useState<string | null>(null);

  useEffect(() => {
    listClusters().then(setClusters, setError);
  }, []);

  const merge = (name: string, change: Partial<ClusterInfo>) =>
    setClusters((list) => list?.map((c) => (c.name === name ? { ...c, ...change } : c)) ?? list);
  const busy = (name: string, on: boolean) => setChecking((set) => {
    const next = new Set(set);
    if (on) next.add(name); else next.delete(name);
    return next;
  });

  const check = async (name: string): Promise<ClusterCheck> => {
    busy(name, true);
    try {
      const result = await checkCluster(name);
      merge(name, { reachable: result.reachable, check_message: result.message, checked_at: result.checked_at });
      setAnnouncement(`${name} is ${result.reachable ? "reachable" : "unreachable"}.`);
      return result;
    } finally {
      busy(name, false);
    }
  };
  const checkRow = (name: string) => {
    setError(null);
    check(name).catch(setError);
  };
  const added = (cluster: ClusterInfo) => {
    setClusters((list) => [...(list ?? []).filter((c) => c.name !== cluster.name), cluster]);
    return check(cluster.name);
  };
  const remove = async (name: string) => {
    await deleteCluster(name);
    setClusters((list) => list?.filter((c) => c.name !== name) ?? list);
  };

  return (
    <div className="page">
      <h1>Clusters</h1>
      <p className="muted">Kubernetes clusters that DAG nodes can run on (<code>cluster:</code> in a node). Registering and removing them is for admins.</p>
      <ErrorBanner error={error} />
      <p role="status" className="visually-hidden">{announcement}</p>
      {!clusters && !error && <p role="status" className="muted">Loading clusters…</p>}
      {clusters?.length === 0 && <p className="empty">No clusters registered yet.</p>}
      {clusters && clusters.length > 0 && (
        <ClusterTable clusters={clusters} checking={checking} onCheck={checkRow} onDelete={setDeleting} />
      )}
      <ClusterForm onRegistered={added} />
      {deleting && (
        <ConfirmDialog
          title="Delete cluster"
          message={`Delete ${deleting} and its stored credentials? Nodes that name it can no longer run.`}
          confirmLabel="Delete"
          onConfirm={() => remove(deleting)}
          onClose={() => setDeleting(null)}
        />
      )}
    </div>
  );
}
