// "Node properties": the selected node's fields by kind. Problems the server located on a field show under
// it; the rest show at the top. Not keyed by node id, so renaming keeps focus in the "Node id" input.

import { useState } from "react";
import type { DagDocument, DagNode, ElementProblem } from "../dag/document";
import { connectionProblem } from "./edits";
import { Field, messagesAt, OtherProblems, TextField, unclaimed } from "./fields";
import { InferenceFields, SourceFields } from "./KindFields";
import { ProjectFields } from "./ProjectFields";
import { TaskFields, type ClusterChoices } from "./TaskFields";

export interface PanelProps {
  node: DagNode;
  problems: ElementProblem[];
  /** Applies a change; `field` lets consecutive keystrokes in one field become one undo step. */
  onChange: (patch: Partial<DagNode>, field: string) => void;
}

const TASK_FIELDS = ["partitions", "parallelism", "retries", "timeout", "cluster", "resources.cpu", "resources.memory", "resources.gpu"];
const FIELDS: Record<string, string[]> = {
  source: ["uri", "pattern", "incremental"],
  project: ["project", "version", "entry_point", "parameters.", "env_manager", ...TASK_FIELDS],
  inference: ["model", "prediction_column", "columns", "batch_size", ...TASK_FIELDS],
};

interface NodePanelProps extends PanelProps {
  dag: DagDocument;
  clusters: ClusterChoices;
  /** Renames the node; returns why not when the id is unusable. */
  onRename: (id: string) => string | null;
  onConnectFrom: (from: string) => void;
}

export function NodePanel(props: NodePanelProps) {
  const { node, problems } = props;
  const elsewhere = unclaimed(problems, ["id", "description", ...(FIELDS[node.kind] ?? [])]);
  return (
    <section className="dg-panel" aria-label="Node properties">
      <h2>{node.kind} node <code>{node.id}</code></h2>
      <OtherProblems problems={elsewhere} />
      <NodeIdField node={node} problems={messagesAt(problems, "id")} onRename={props.onRename} />
      <TextField label="Description" value={node.description} problems={messagesAt(problems, "description")}
        onChange={(t) => props.onChange({ description: t || undefined }, "description")} />
      {node.kind === "source" && <SourceFields {...props} />}
      {node.kind === "project" && <ProjectFields {...props} />}
      {node.kind === "inference" && <InferenceFields {...props} />}
      {(node.kind === "project" || node.kind === "inference") && <TaskFields {...props} />}
      {node.kind !== "source" && <ConnectFrom dag={props.dag} node={node} onConnect={props.onConnectFrom} />}
    </section>
  );
}

/** The id changes the document only when it is usable; while typing, the reason it is not is shown. */
function NodeIdField({ node, problems, onRename }: { node: DagNode; problems: string[]; onRename: (id: string) => string | null }) {
  const [draft, setDraft] = useState<string | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  return (
    <Field label="Node id" problems={problem ? [problem, ...problems] : problems} hint="Edges follow a renamed node">
      {(control) => (
        <input
          {...control}
          type="text"
          value={draft ?? node.id}
          onChange={(e) => { setDraft(e.target.value); setProblem(onRename(e.target.value)); }}
          onBlur={() => { setDraft(null); setProblem(null); }}
        />
      )}
    </Field>
  );
}

/** Keyboard alternative to dragging a handle: pick an upstream node and connect it to this one. */
function ConnectFrom({ dag, node, onConnect }: { dag: DagDocument; node: DagNode; onConnect: (from: string) => void }) {
  const candidates = dag.nodes.filter((n) => connectionProblem(dag, n.id, node.id) === null).map((n) => n.id);
  const [from, setFrom] = useState("");
  const chosen = candidates.includes(from) ? from : candidates[0] ?? "";
  if (!candidates.length) return null;
  return (
    <div className="dg-connect">
      <Field label="Add input from">
        {(control) => (
          <select {...control} value={chosen} onChange={(e) => setFrom(e.target.value)}>
            {candidates.map((id) => <option key={id} value={id}>{id}</option>)}
          </select>
        )}
      </Field>
      <button type="button" onClick={() => onConnect(chosen)}>Connect</button>
    </div>
  );
}
