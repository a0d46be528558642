// Left-to-right auto-layout of a DAG with dagre: the designer's "Auto-layout" and every read-only graph.

import dagre from "@dagrejs/dagre";

export const NODE_WIDTH = 220;
export const NODE_HEIGHT = 84;

export interface Positioned { id: string; x: number; y: number }

export function layout(nodeIds: string[], edges: { from: string; to: string }[], size = { width: NODE_WIDTH, height: NODE_HEIGHT }): Map<string, Positioned> {
  const graph = new dagre.graphlib.Graph();
  graph.setGraph({ rankdir: "LR", nodesep: 40, ranksep: 80, marginx: 20, marginy: 20 });
  graph.setDefaultEdgeLabel(() => ({}));
  for (const id of nodeIds) graph.setNode(id, { width: size.width, height: size.height });
  for (const edge of edges) {
    if (graph.hasNode(edge.from) && graph.hasNode(edge.to)) graph.setEdge(edge.from, edge.to);
  }
  dagre.layout(graph);
  const placed = new Map<string, Positioned>();
  for (const id of nodeIds) {
    const node = graph.node(id);
    placed.set(id, { id, x: node.x - size.width / 2, y: node.y - size.height / 2 });
  }
  return placed;
}
