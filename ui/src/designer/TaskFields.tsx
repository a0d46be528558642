// Fields every node that runs tasks has (project and inference): fan-out, limits and where it runs.

import type { Resources } from "../dag/document";
import { messagesAt, NumberField, ScalarField, SelectField, TextField } from "./fields";
import type { PanelProps } from "./NodePanel";

export interface ClusterChoices { names: string[]; error: unknown }

export function TaskFields({ node, problems, onChange, clusters }: PanelProps & { clusters: ClusterChoices }) {
  const at = (field: string) => messagesAt(problems, field);
  const setResource = (patch: Partial<Resources>) => {
    const next = { ...node.resources, ...patch };
    const empty = Object.values(next).every((v) => v === undefined || v === "");
    onChange({ resources: empty ? undefined : next }, `resources.${Object.keys(patch)[0]}`);
  };
  const clusterError = clusters.error instanceof Error ? clusters.error.message : clusters.error ? String(clusters.error) : "";
  return (
    <fieldset className="dg-fieldset">
      <legend>Execution</legend>
      <ScalarField label="Partitions" value={node.partitions} problems={at("partitions")}
        hint="Number of tasks (or a name a run overrides)" onChange={(v) => onChange({ partitions: v }, "partitions")} />
      <NumberField label="Parallelism" value={node.parallelism} min={1} problems={at("parallelism")}
        hint="At most this many tasks at once" onChange={(v) => onChange({ parallelism: v }, "parallelism")} />
      <NumberField label="Retries" value={node.retries} min={0} problems={at("retries")}
        onChange={(v) => onChange({ retries: v }, "retries")} />
      <NumberField label="Timeout (seconds)" value={node.timeout} min={0} step="any" problems={at("timeout")}
        onChange={(v) => onChange({ timeout: v }, "timeout")} />
      <SelectField label="Cluster" value={node.cluster ?? ""} problems={at("cluster")}
        hint={clusterError ? `Clusters cannot be listed: ${clusterError}` : undefined}
        options={[{ value: "", label: "this machine" }, ...clusters.names.map((n) => ({ value: n, label: n }))]}
        onChange={(v) => onChange({ cluster: v || undefined }, "cluster")} />
      <TextField label="Spread over clusters" value={formatWeights(node.clusters)} placeholder="e.g. east=2, west=1"
        problems={at("clusters")} hint="Instead of one cluster: partitions shared in proportion to the weights"
        onChange={(t) => { const weights = parseWeights(t); if (weights !== null) onChange({ clusters: weights, cluster: weights ? undefined : node.cluster }, "clusters"); }} />
      <TextField label="CPU" value={node.resources?.cpu} placeholder="e.g. 2 or 500m" problems={at("resources.cpu")}
        onChange={(t) => setResource({ cpu: t || undefined })} />
      <TextField label="Memory" value={node.resources?.memory} placeholder="e.g. 4Gi" problems={at("resources.memory")}
        onChange={(t) => setResource({ memory: t || undefined })} />
      <NumberField label="GPUs" value={node.resources?.gpu} min={0} problems={at("resources.gpu")}
        onChange={(v) => setResource({ gpu: v })} />
    </fieldset>
  );
}

function formatWeights(weights: Record<string, number> | undefined): string {
  return Object.entries(weights ?? {}).map(([name, weight]) => `${name}=${weight}`).join(", ");
}

/** `east=2, west=1` as weights; undefined for empty text, null while the text is not a valid list yet. */
function parseWeights(text: string): Record<string, number> | undefined | null {
  const entries = text.split(",").map((part) => part.trim()).filter(Boolean);
  if (entries.length === 0) return undefined;
  const weights: Record<string, number> = {};
  for (const entry of entries) {
    const match = /^([a-z0-9][a-z0-9-]*)\s*[=:]\s*(\d+)$/.exec(entry);
    if (!match) return null;
    weights[match[1]] = Number(match[2]);
  }
  return weights;
}
