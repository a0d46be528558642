// "DAG properties", shown while nothing is selected: the document-level fields besides the name.

import type { DagDocument } from "../dag/document";
import { TextField } from "./fields";

export function DagPanel({ dag, onChange }: { dag: DagDocument; onChange: (patch: Partial<DagDocument>, field: string) => void }) {
  return (
    <section className="dg-panel" aria-label="DAG properties">
      <h2>DAG properties</h2>
      <p className="muted">Select a node or an edge to edit it.</p>
      <TextField label="DAG description" value={dag.description} onChange={(t) => onChange({ description: t || undefined }, "description")} />
      <TextField label="Experiment" value={dag.experiment} hint="MLflow experiment of the runs (default: the DAG name)"
        onChange={(t) => onChange({ experiment: t || undefined }, "experiment")} />
    </section>
  );
}
