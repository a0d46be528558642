// "Edge properties": the input name the downstream task reads and how the input is partitioned.

import { PARTITIONERS, partitionerOf, type DagEdge, type ElementProblem, type Partitioner } from "../dag/document";
import { messagesAt, OtherProblems, SelectField, TextField, unclaimed } from "./fields";

/** The short form (`partitioner: file`) unless the kind takes an option. */
function stored(p: Partitioner): DagEdge["partitioner"] {
  if (p.kind === "key") return { kind: "key", key: p.key };
  if (p.kind === "custom") return { kind: "custom", function: p.function };
  return p.kind;
}

export function EdgePanel({ edge, problems, onChange }: {
  edge: DagEdge;
  problems: ElementProblem[];
  onChange: (patch: Partial<DagEdge>, field: string) => void;
}) {
  const partitioner = partitionerOf(edge);
  const at = (field: string) => messagesAt(problems, field);
  const options = partitioner.kind === "key" ? ["partitioner.key"] : partitioner.kind === "custom" ? ["partitioner.function"] : [];
  const elsewhere = unclaimed(problems, ["input", "partitioner.kind", ...options]);
  const setPartitioner = (patch: Partial<Partitioner>, field: string) =>
    onChange({ partitioner: stored({ ...partitioner, ...patch }) }, field);
  return (
    <section className="dg-panel" aria-label="Edge properties">
      <h2>Edge <code>{edge.from}</code> → <code>{edge.to}</code></h2>
      <OtherProblems problems={elsewhere} />
      <TextField label="Input name" value={edge.input} problems={at("input")}
        hint={`What ${edge.to}'s tasks read with task.inputs(name)`} onChange={(t) => onChange({ input: t }, "input")} />
      <SelectField label="Partitioner" value={partitioner.kind} problems={at("partitioner.kind")}
        options={PARTITIONERS.map((p) => ({ value: p, label: p }))}
        onChange={(v) => setPartitioner({ kind: v as Partitioner["kind"] }, "partitioner.kind")} />
      {partitioner.kind === "key" && (
        <TextField label="Key" value={partitioner.key} problems={at("partitioner.key")}
          hint="Metadata field the upstream task writes" onChange={(t) => setPartitioner({ key: t || undefined }, "partitioner.key")} />
      )}
      {partitioner.kind === "custom" && (
        <TextField label="Function" value={partitioner.function} problems={at("partitioner.function")}
          placeholder="package.module:function" onChange={(t) => setPartitioner({ function: t || undefined }, "partitioner.function")} />
      )}
    </section>
  );
}
