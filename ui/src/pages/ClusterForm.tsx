// "Register a cluster" (admins): a kubeconfig pasted or read from a file, plus optional context, namespace
// and image. The page checks the new cluster at once; its verdict is shown here.

import { useState, type ChangeEvent, type FormEvent } from "react";
import { registerCluster } from "../api/endpoints";
import type { ClusterCheck, ClusterInfo } from "../api/types";
import { ErrorBanner } from "../components/ErrorBanner";

const EMPTY = { name: "", kubeconfig: "", context: "", namespace: "", image: "" };
type Fields = typeof EMPTY;

interface ClusterFormProps {
  /** Adds the cluster to the page and checks it; resolves to the check's verdict. */
  onRegistered: (cluster: ClusterInfo) => Promise<ClusterCheck>;
}

export function ClusterForm({ onRegistered }: ClusterFormProps) {
  const [fields, setFields] = useState<Fields>(EMPTY);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [verdict, setVerdict] = useState<string | null>(null);
  const set = (key: keyof Fields) => (event: ChangeEvent<HTMLInputElement | HTMLTextAreaElement>) =>
    setFields((f) => ({ ...f, [key]: event.target.value }));

  const readFile = async (event: ChangeEvent<HTMLInputElement>) => {
    const file = event.target.files?.[0];
    if (!file) return;
    const text = await file.text();
    setFields((f) => ({ ...f, kubeconfig: text }));
    event.target.value = ""; // the textarea holds it now; the same file may be chosen again
  };

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setVerdict(null);
    const optional = (value: string) => value.trim() || undefined;
    try {
      const cluster = await registerCluster({
        name: fields.name.trim(),
        kubeconfig: fields.kubeconfig,
        context: optional(fields.context),
        namespace: optional(fields.namespace),
        image: optional(fields.image),
      });
      setFields(EMPTY);
      setVerdict(`Registered ${cluster.name}; checking it…`);
      const check = await onRegistered(cluster);
      setVerdict(`${cluster.name} is ${check.reachable ? "reachable" : "unreachable"}: ${check.message}`);
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="side-form" onSubmit={submit} aria-labelledby="register-cluster">
      <h2 id="register-cluster">Register a cluster</h2>
      <label htmlFor="cluster-name">Cluster name</label>
      <input id="cluster-name" className="short" value={fields.name} onChange={set("name")} required maxLength={63}
        pattern="[a-z0-9]([\-a-z0-9]{0,61}[a-z0-9])?" aria-describedby="cluster-name-hint" />
      <p id="cluster-name-hint" className="field-hint">Lower-case letters, digits and dashes.</p>
      <label htmlFor="cluster-kubeconfig">Kubeconfig</label>
      <textarea id="cluster-kubeconfig" value={fields.kubeconfig} onChange={set("kubeconfig")} required
        spellCheck={false} aria-describedby="cluster-kubeconfig-hint" />
      <p id="cluster-kubeconfig-hint" className="field-hint">
        Credentials must be inline (<code>kubectl config view --minify --flatten</code>); only the chosen
        context is kept, encrypted.
      </p>
      <label htmlFor="cluster-kubeconfig-file">Kubeconfig file</label>
      <input id="cluster-kubeconfig-file" type="file" onChange={readFile} />
      <div className="fields">
        <div>
          <label htmlFor="cluster-context">Context <span className="hint">(optional)</span></label>
          <input id="cluster-context" value={fields.context} onChange={set("context")} placeholder="current-context" />
        </div>
        <div>
          <label htmlFor="cluster-namespace">Namespace <span className="hint">(optional)</span></label>
          <input id="cluster-namespace" value={fields.namespace} onChange={set("namespace")} placeholder="the context's, else default" />
        </div>
        <div>
          <label htmlFor="cluster-image">Image <span className="hint">(optional)</span></label>
          <input id="cluster-image" value={fields.image} onChange={set("image")} placeholder="image for task pods" />
        </div>
      </div>
      <ErrorBanner error={error} />
      <div className="form-actions">
        <button type="submit" className="primary" disabled={busy} aria-busy={busy}>Register cluster</button>
        <span role="status">{verdict}</span>
      </div>
    </form>
  );
}
