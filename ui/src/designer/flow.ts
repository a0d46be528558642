// The document as React Flow elements. Positions are not part of the document: they live here, remembered by
// node id (so undo, YAML edits and renames keep nodes where they were) and laid out by dagre when unknown.

import { useCallback, useEffect, useRef, useState } from "react";
import { applyNodeChanges, MarkerType, type Edge, type EdgeChange, type Node, type NodeChange, type XYPosition } from "@xyflow/react";
import { edgeId, partitionerOf, type DagDocument, type DagNode, type ElementProblem } from "../dag/document";
import { layout, NODE_HEIGHT, NODE_WIDTH } from "../dag/layout";
import { NODE_KINDS } from "./edits";

export type DagNodeData = { node: DagNode; problems: ElementProblem[] };
export type DagFlowNode = Node<DagNodeData>;
export type DagEdgeData = { index: number; text: string; problem: string };
export type DagFlowEdge = Edge<DagEdgeData>;

/** Dagre slots wider than the nodes: room between ranks for the edge labels (input · partitioner). */
const SLOT = { width: NODE_WIDTH + 100, height: NODE_HEIGHT + 10 };
const layoutOf = (dag: DagDocument) => layout(dag.nodes.map((n) => n.id), dag.edges, SLOT);

const problemsOf = (problems: ElementProblem[], kind: "node" | "edge", id: string) =>
  problems.filter((p) => p.element.kind === kind && p.element.id === id);

/** Canvas edge ids are the server's `from->to`, made unique if a document repeats a pair. */
export function flowEdges(dag: DagDocument, problems: ElementProblem[], selected: Set<string>): DagFlowEdge[] {
  const seen = new Set<string>();
  return dag.edges.map((edge, index) => {
    const name = edgeId(edge);
    const id = seen.has(name) ? `${name}#${index}` : name;
    seen.add(id);
    const errors = problemsOf(problems, "edge", name);
    const text = `${edge.input ?? "?"} · ${partitionerOf(edge).kind}`;
    const invalid = errors.length > 0;
    const message = errors.map((p) => p.message).join("; ");
    return {
      id,
      source: edge.from,
      target: edge.to,
      type: "dag",
      data: { index, text, problem: message },
      selected: selected.has(id),
      className: invalid ? "dg-edge dg-edge-invalid" : "dg-edge",
      markerEnd: { type: MarkerType.ArrowClosed, color: invalid ? "#b42318" : "#57606a" },
      ariaLabel: `Edge from ${edge.from} to ${edge.to}, input ${edge.input}${invalid ? `: ${message}` : ""}`,
      domAttributes: { "data-testid": `edge-${name}`, "data-invalid": invalid ? "true" : undefined } as DagFlowEdge["domAttributes"],
    };
  });
}

export function useFlowState(dag: DagDocument, problems: ElementProblem[]) {
  const [nodes, setNodes] = useState<DagFlowNode[]>([]);
  const [selectedEdges, setSelectedEdges] = useState<Set<string>>(new Set());
  const [fitRequest, setFitRequest] = useState(0);
  const memory = useRef(new Map<string, XYPosition>());
  const pendingSelect = useRef<string | null>(null);

  useEffect(() => {
    const select = pendingSelect.current;
    pendingSelect.current = null;
    setNodes((previous) => {
      const byId = new Map(previous.map((n) => [n.id, n]));
      const seen = new Set<string>();
      let laidOut: ReturnType<typeof layout> | null = null;
      const next: DagFlowNode[] = [];
      for (const node of dag.nodes) {
        if (seen.has(node.id)) continue; // a repeated id is the server's problem to name; draw it once
        seen.add(node.id);
        const old = byId.get(node.id);
        let position = old?.position ?? memory.current.get(node.id);
        if (!position) {
          laidOut ??= layoutOf(dag);
          const placed = laidOut.get(node.id);
          position = { x: placed?.x ?? 0, y: placed?.y ?? 0 };
        }
        memory.current.set(node.id, position);
        const selected = select ? select === node.id : old?.selected ?? false;
        const type = NODE_KINDS.includes(node.kind) ? node.kind : "project";
        next.push({ ...old, id: node.id, type, position, selected, data: { node, problems: problemsOf(problems, "node", node.id) } });
      }
      return next;
    });
    if (select) setSelectedEdges(new Set());
  }, [dag, problems]);

  const onNodesChange = useCallback((changes: NodeChange<DagFlowNode>[]) => {
    // Removal goes through the document (onDelete), so the canvas never drops a node the document keeps.
    const kept = changes.filter((c) => c.type !== "remove");
    for (const change of kept) if (change.type === "position" && change.position) memory.current.set(change.id, change.position);
    setNodes((current) => applyNodeChanges(kept, current));
  }, []);

  const onEdgesChange = useCallback((changes: EdgeChange<DagFlowEdge>[]) => {
    const selects = changes.filter((c) => c.type === "select");
    if (!selects.length) return;
    setSelectedEdges((current) => {
      const next = new Set(current);
      for (const change of selects) (change.selected ? next.add(change.id) : next.delete(change.id));
      return next;
    });
  }, []);

  /** Where a node about to be added goes, and that it becomes the selection. */
  const place = useCallback((id: string, position: XYPosition) => {
    memory.current.set(id, position);
    pendingSelect.current = id;
  }, []);

  const select = useCallback((kind: "node" | "edge", id: string) => {
    setNodes((current) => current.map((n) => ({ ...n, selected: kind === "node" && n.id === id })));
    setSelectedEdges(new Set(kind === "edge" ? [id] : []));
  }, []);

  const rename = useCallback((from: string, to: string) => {
    const position = memory.current.get(from);
    if (position) memory.current.set(to, position);
    setNodes((current) => current.map((n) => (n.id === from ? { ...n, id: to } : n)));
  }, []);

  const relayout = useCallback(() => {
    const placed = layoutOf(dag);
    setNodes((current) => current.map((n) => {
      const p = placed.get(n.id);
      const position = p ? { x: p.x, y: p.y } : n.position;
      memory.current.set(n.id, position);
      return { ...n, position };
    }));
    setFitRequest((n) => n + 1);
  }, [dag]);

  /** Forget every position (a different DAG or version is loaded): the next sync lays everything out. */
  const reset = useCallback(() => {
    memory.current.clear();
    setNodes([]);
    setSelectedEdges(new Set());
    setFitRequest((n) => n + 1);
  }, []);

  return { nodes, selectedEdges, fitRequest, onNodesChange, onEdgesChange, place, select, rename, relayout, reset, memory };
}
