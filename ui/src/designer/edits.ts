// Pure edits of a DagDocument: every designer action is one of these, so undo/redo and YAML stay in step.
// Nodes are spread, never rebuilt, so keys the designer does not know (written in YAML) survive every edit.

import type { DagDocument, DagEdge, DagNode, NodeKind } from "../dag/document";

export const NODE_KINDS: NodeKind[] = ["source", "project", "inference"];
export const NODE_ID = /^[a-z][a-z0-9-]{0,39}$/;
export const EMPTY_DOCUMENT: DagDocument = { name: "", nodes: [], edges: [] };

/** `<kind>-<n>` with the smallest n not taken. */
export function nextNodeId(dag: DagDocument, kind: NodeKind): string {
  const taken = new Set(dag.nodes.map((n) => n.id));
  let n = 1;
  while (taken.has(`${kind}-${n}`)) n += 1;
  return `${kind}-${n}`;
}

export function newNode(kind: NodeKind, id: string): DagNode {
  if (kind === "source") return { id, kind, uri: "" };
  if (kind === "inference") return { id, kind, model: "" };
  return { id, kind, project: "" };
}

export function addNode(dag: DagDocument, node: DagNode): DagDocument {
  return { ...dag, nodes: [...dag.nodes, node] };
}

/** Removes nodes (and every edge touching them) and the edges at the given indexes. */
export function removeElements(dag: DagDocument, nodeIds: Set<string>, edgeIndexes: Set<number>): DagDocument {
  if (!nodeIds.size && !edgeIndexes.size) return dag;
  return {
    ...dag,
    nodes: dag.nodes.filter((n) => !nodeIds.has(n.id)),
    edges: dag.edges.filter((e, i) => !edgeIndexes.has(i) && !nodeIds.has(e.from) && !nodeIds.has(e.to)),
  };
}

/** Why `from -> to` cannot be added, or null when it can. */
export function connectionProblem(dag: DagDocument, from: string, to: string): string | null {
  if (from === to) return "A node cannot feed itself.";
  const target = dag.nodes.find((n) => n.id === to);
  if (!target) return `There is no node ${to}.`;
  if (target.kind === "source") return "A source node has no inputs.";
  if (dag.edges.some((e) => e.from === from && e.to === to)) return `${from} already feeds ${to}.`;
  return null;
}

/** The upstream id as input name, suffixed when the target already has an input of that name. */
export function uniqueInputName(dag: DagDocument, from: string, to: string): string {
  const taken = new Set(dag.edges.filter((e) => e.to === to).map((e) => e.input));
  let name = from;
  for (let n = 2; taken.has(name); n += 1) name = `${from}-${n}`;
  return name;
}

export function connect(dag: DagDocument, from: string, to: string): DagDocument {
  const edge: DagEdge = { from, to, input: uniqueInputName(dag, from, to), partitioner: "file" };
  return { ...dag, edges: [...dag.edges, edge] };
}

/** Why `id` cannot be the new id of node `current`, or null when it can. */
export function nodeIdProblem(dag: DagDocument, current: string, id: string): string | null {
  if (!NODE_ID.test(id)) return "Use lower-case letters, digits and dashes, starting with a letter (at most 40).";
  if (id !== current && dag.nodes.some((n) => n.id === id)) return `Another node is already called ${id}.`;
  return null;
}

export function renameNode(dag: DagDocument, from: string, to: string): DagDocument {
  if (from === to) return dag;
  return {
    ...dag,
    nodes: dag.nodes.map((n) => (n.id === from ? { ...n, id: to } : n)),
    edges: dag.edges.map((e) => ({ ...e, from: e.from === from ? to : e.from, to: e.to === from ? to : e.to })),
  };
}

export function updateNode(dag: DagDocument, id: string, patch: Partial<DagNode>): DagDocument {
  return { ...dag, nodes: dag.nodes.map((n) => (n.id === id ? { ...n, ...patch } : n)) };
}

export function updateEdge(dag: DagDocument, index: number, patch: Partial<DagEdge>): DagDocument {
  return { ...dag, edges: dag.edges.map((e, i) => (i === index ? { ...e, ...patch } : e)) };
}

/** A typed value as the document stores it: numbers typed as numbers become numbers, empty means unset. */
export function scalarOf(text: string): string | number | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  return /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(trimmed) ? Number(trimmed) : text;
}
