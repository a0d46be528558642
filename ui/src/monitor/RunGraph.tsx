// The run's DAG, read-only: laid out once with dagre, nodes coloured by their stage. The node array is rebuilt
// only when a stage's state or counts (or the selection) change, so a poll that changed nothing costs nothing.

import { useMemo } from "react";
import { Background, Controls, ReactFlow, type Edge } from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import type { StageStatus } from "../api/types";
import { groupCounts } from "../components/ProgressBar";
import { edgeId, type DagDocument } from "../dag/document";
import { layout } from "../dag/layout";
import { MonitorNode, type MonitorFlowNode } from "./MonitorNode";

const NODE_TYPES = { monitor: MonitorNode };
const SIZE = { width: 230, height: 84 };
/** React Flow turns pointer events off on nodes that are neither draggable nor selectable; ours are buttons. */
const CLICKABLE = { pointerEvents: "all" } as const;

/** What a node shows, as one string: equal strings mean the graph need not change. */
export const stagesSignature = (stages: StageStatus[]): string =>
  stages.map((s) => `${s.node}:${s.state}:${s.partitions}:${JSON.stringify(s.counts)}`).join("|");

export function RunGraph(props: { document: DagDocument; stages: StageStatus[]; selected: string | null; onSelect: (id: string) => void }) {
  const { document, stages, selected, onSelect } = props;
  const positions = useMemo(() => layout(document.nodes.map((n) => n.id), document.edges, SIZE), [document]);
  const signature = stagesSignature(stages);

  const nodes = useMemo<MonitorFlowNode[]>(() => {
    const byNode = new Map(stages.map((s) => [s.node, s]));
    return document.nodes.map((node) => {
      const stage = byNode.get(node.id);
      const isSource = node.kind === "source";
      return {
        id: node.id,
        type: "monitor",
        position: positions.get(node.id) ?? { x: 0, y: 0 },
        width: SIZE.width,
        height: SIZE.height,
        style: isSource ? undefined : CLICKABLE,
        data: {
          id: node.id,
          kind: node.kind,
          state: isSource ? null : stage?.state ?? "pending",
          counts: isSource ? null : groupCounts(stage?.counts ?? {}, stage?.partitions ?? null),
          raw: stage?.counts ?? {},
          selected: selected === node.id,
          onSelect,
        },
      };
    });
    // `stages` is read through `signature`: a new array with the same content must not rebuild the nodes.
  }, [document, positions, signature, selected, onSelect]);

  const edges = useMemo<Edge[]>(() => document.edges.map((edge) => ({
    id: edgeId(edge),
    source: edge.from,
    target: edge.to,
    label: edge.input,
    labelBgPadding: [4, 2],
    focusable: false,
  })), [document]);

  return (
    <div className="run-graph" aria-label={`Graph of ${document.name}`} role="group">
      <ReactFlow nodes={nodes} edges={edges} nodeTypes={NODE_TYPES} fitView fitViewOptions={{ maxZoom: 1 }} minZoom={0.2} maxZoom={1.5}
        nodesDraggable={false} nodesConnectable={false} nodesFocusable={false} edgesFocusable={false}
        elementsSelectable={false}>
        <Background />
        <Controls showInteractive={false} />
      </ReactFlow>
    </div>
  );
}
