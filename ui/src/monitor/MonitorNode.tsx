// One node of the run graph: id, kind, progress over its partitions, coloured by its stage's state. Project and
// inference nodes are buttons that open their partition table; sources have no stage and stay neutral.

import { memo } from "react";
import { Handle, Position, type Node, type NodeProps } from "@xyflow/react";
import { ProgressBar, type Counts } from "../components/ProgressBar";
import { countsText } from "./format";

export interface MonitorNodeData extends Record<string, unknown> {
  id: string;
  kind: string;
  /** The stage's state; null for a source, which has no stage. */
  state: string | null;
  counts: Counts | null;
  /** The stage's per-state task counts as the server sent them. */
  raw: Record<string, number>;
  selected: boolean;
  onSelect: (id: string) => void;
}

export type MonitorFlowNode = Node<MonitorNodeData, "monitor">;

function MonitorNodeView({ data }: NodeProps<MonitorFlowNode>) {
  const { id, kind, state, counts, raw, selected, onSelect } = data;
  const handles = (
    <>
      <Handle type="target" position={Position.Left} isConnectable={false} />
      <Handle type="source" position={Position.Right} isConnectable={false} />
    </>
  );
  if (state === null || counts === null) {
    return (
      <div className="monitor-node neutral" data-testid={`monitor-node-${id}`} data-state="source">
        {handles}
        <strong>{id}</strong>
        <span className="kind">{kind}</span>
      </div>
    );
  }
  const text = countsText(counts, raw);
  return (
    <button type="button" className={`monitor-node node-${state}${selected ? " selected" : ""}`}
      data-testid={`monitor-node-${id}`} data-state={state} aria-pressed={selected}
      aria-label={`Node ${id}, ${state}, ${text}`} onClick={() => onSelect(id)}>
      {handles}
      <span className="node-title"><strong>{id}</strong><span className="kind">{kind}</span></span>
      <ProgressBar counts={counts} label={id} />
      <span className="counts">{text}</span>
    </button>
  );
}

export const MonitorNode = memo(MonitorNodeView);
