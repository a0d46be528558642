// One React Flow node component per kind: id, kind, a one-line summary and the node's problems in red.
// Inputs enter on the left, outputs leave on the right; a source has no inputs.

import { Handle, Position, type NodeProps, type NodeTypes } from "@xyflow/react";
import type { DagNode } from "../dag/document";
import type { DagFlowNode } from "./flow";

function NodeFrame({ data, summary, inputs }: { data: DagFlowNode["data"]; summary: string | undefined; inputs: boolean }) {
  const { node, problems } = data;
  return (
    <div
      className={`dg-node dg-kind-${node.kind}`}
      data-testid={`node-${node.id}`}
      data-invalid={problems.length ? "true" : undefined}
    >
      {inputs && <Handle type="target" position={Position.Left} aria-label={`Inputs of ${node.id}`} />}
      <div className="dg-node-head">
        <span className="dg-node-id">{node.id}</span>
        <span className="dg-node-kind">{node.kind}</span>
      </div>
      <div className="dg-node-summary" title={summary}>{summary || <span className="muted">not set yet</span>}</div>
      {problems.map((p, i) => (
        <div key={i} className="dg-node-error">{p.field ? `${p.field}: ` : ""}{p.message}</div>
      ))}
      <Handle type="source" position={Position.Right} aria-label={`Outputs of ${node.id}`} />
    </div>
  );
}

const projectSummary = (node: DagNode) =>
  node.project ? `${node.project}${node.version ? `@${node.version}` : ""}${node.entry_point && node.entry_point !== "main" ? ` : ${node.entry_point}` : ""}` : undefined;

function ProjectNodeView({ data }: NodeProps<DagFlowNode>) {
  return <NodeFrame data={data} summary={projectSummary(data.node)} inputs />;
}

function SourceNodeView({ data }: NodeProps<DagFlowNode>) {
  const { uri, pattern } = data.node;
  return <NodeFrame data={data} summary={uri ? `${uri}${pattern ? ` (${pattern})` : ""}` : undefined} inputs={false} />;
}

function InferenceNodeView({ data }: NodeProps<DagFlowNode>) {
  return <NodeFrame data={data} summary={data.node.model} inputs />;
}

export const nodeTypes: NodeTypes = { project: ProjectNodeView, source: SourceNodeView, inference: InferenceNodeView };
