// The React Flow canvas: drop palette items where the pointer is, connect handles into edges, delete the
// selection with Delete/Backspace (React Flow ignores those keys while an input has focus).

import { useEffect, useRef, type DragEvent } from "react";
import {
  Background, Controls, MiniMap, ReactFlow, useNodesInitialized, useReactFlow,
  type Connection, type EdgeChange, type NodeChange, type XYPosition,
} from "@xyflow/react";
import type { NodeKind } from "../dag/document";
import { NODE_HEIGHT, NODE_WIDTH } from "../dag/layout";
import { NODE_KINDS } from "./edits";
import type { DagFlowEdge, DagFlowNode } from "./flow";
import { edgeTypes } from "./edges";
import { nodeTypes } from "./nodes";
import { NODE_MIME } from "./Palette";

interface CanvasProps {
  nodes: DagFlowNode[];
  edges: DagFlowEdge[];
  fitRequest: number;
  onNodesChange: (changes: NodeChange<DagFlowNode>[]) => void;
  onEdgesChange: (changes: EdgeChange<DagFlowEdge>[]) => void;
  canConnect: (from: string, to: string) => boolean;
  onConnect: (from: string, to: string) => void;
  onDelete: (nodeIds: string[], edgeIds: string[]) => void;
  onDropNode: (kind: NodeKind, position: XYPosition) => void;
}

export function Canvas(props: CanvasProps) {
  const flow = useReactFlow<DagFlowNode, DagFlowEdge>();

  // Fit once the nodes are measured: on mount (the YAML tab unmounts the canvas) if there are nodes, and after
  // a load or auto-layout. Never because a first node appeared, which would move the view between two drops.
  const measured = useNodesInitialized();
  const fitPending = useRef(props.nodes.length > 0);
  const lastRequest = useRef(props.fitRequest);
  if (lastRequest.current !== props.fitRequest) {
    lastRequest.current = props.fitRequest;
    fitPending.current = true;
  }
  useEffect(() => {
    if (!fitPending.current || !measured || !props.nodes.length) return;
    fitPending.current = false;
    void flow.fitView({ padding: 0.2, maxZoom: 1.2 });
  }, [measured, props.nodes, props.fitRequest, flow]);

  const onDragOver = (event: DragEvent) => {
    if (!event.dataTransfer.types.includes(NODE_MIME)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  };
  const onDrop = (event: DragEvent) => {
    const kind = event.dataTransfer.getData(NODE_MIME) as NodeKind;
    if (!NODE_KINDS.includes(kind)) return;
    event.preventDefault();
    const point = flow.screenToFlowPosition({ x: event.clientX, y: event.clientY });
    props.onDropNode(kind, { x: point.x - NODE_WIDTH / 2, y: point.y - NODE_HEIGHT / 2 });
  };
  const valid = (c: Connection | DagFlowEdge) => props.canConnect(c.source, c.target);

  return (
    <div className="dg-canvas" onDragOver={onDragOver} onDrop={onDrop}>
      <ReactFlow<DagFlowNode, DagFlowEdge>
        nodes={props.nodes}
        edges={props.edges}
        nodeTypes={nodeTypes}
        edgeTypes={edgeTypes}
        onNodesChange={props.onNodesChange}
        onEdgesChange={props.onEdgesChange}
        isValidConnection={valid}
        onConnect={(c) => valid(c) && props.onConnect(c.source, c.target)}
        onDelete={({ nodes, edges }) => props.onDelete(nodes.map((n) => n.id), edges.map((e) => e.id))}
        deleteKeyCode={["Delete", "Backspace"]}
        minZoom={0.2}
      >
        <Background />
        <Controls />
        <MiniMap pannable zoomable ariaLabel="Overview of the DAG" />
      </ReactFlow>
    </div>
  );
}
