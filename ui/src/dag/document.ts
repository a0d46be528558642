// The DAG document (what `concurrent dag` and /api/v1/dags store) as typed objects, its YAML form, and the
// mapping from the server's problem locations (`nodes.train.partitions`, `edges.a->b.input`) to graph elements.

import YAML from "yaml";

export type NodeKind = "source" | "project" | "inference";
export type PartitionerKind = "file" | "directory" | "key" | "one-to-one" | "broadcast" | "gather" | "custom";
export const PARTITIONERS: PartitionerKind[] = ["file", "directory", "key", "one-to-one", "broadcast", "gather", "custom"];
export type Scalar = string | number | boolean;

export interface Resources { cpu?: string; memory?: string; gpu?: number }

export interface DagNode {
  id: string;
  kind: NodeKind;
  description?: string;
  // source
  uri?: string;
  pattern?: string;
  incremental?: boolean;
  // project + inference
  partitions?: number | string;
  parallelism?: number;
  retries?: number;
  timeout?: number;
  cluster?: string;
  clusters?: Record<string, number>;
  resources?: Resources;
  node_selector?: Record<string, string>;
  tolerations?: Record<string, unknown>[];
  // project
  project?: string;
  version?: string;
  entry_point?: string;
  parameters?: Record<string, Scalar>;
  sweep?: Record<string, Scalar[]>;
  env_manager?: string;
  // inference
  model?: string;
  batch_size?: number;
  columns?: string[];
  prediction_column?: string;
  [other: string]: unknown;
}

export interface Partitioner { kind: PartitionerKind; key?: string; function?: string }

export interface DagEdge {
  from: string;
  to: string;
  input: string;
  partitioner?: PartitionerKind | Partitioner;
}

export interface DagDocument {
  name: string;
  description?: string;
  experiment?: string;
  defaults?: Record<string, unknown>;
  nodes: DagNode[];
  edges: DagEdge[];
  [other: string]: unknown;
}

/** The edge's id on the canvas and in problem locations: `from->to` (the server's own naming). */
export const edgeId = (edge: Pick<DagEdge, "from" | "to">): string => `${edge.from}->${edge.to}`;

export function partitionerOf(edge: DagEdge): Partitioner {
  const spec = edge.partitioner;
  if (spec === undefined) return { kind: "file" };
  return typeof spec === "string" ? { kind: spec } : spec;
}

export class DocumentError extends Error {}

/** Parses YAML text into a document; throws DocumentError naming the line for text that is not a DAG shape. */
export function parseDocument(text: string): DagDocument {
  const doc = YAML.parseDocument(text, { prettyErrors: true });
  if (doc.errors.length) throw new DocumentError(doc.errors.map((e) => e.message).join("\n"));
  const data = doc.toJS() as unknown;
  if (!data || typeof data !== "object" || Array.isArray(data)) {
    throw new DocumentError("A DAG document is a YAML mapping with `name`, `nodes` and `edges`.");
  }
  const raw = data as Record<string, unknown>;
  const nodes = Array.isArray(raw.nodes) ? (raw.nodes as DagNode[]) : [];
  const edges = Array.isArray(raw.edges) ? (raw.edges as DagEdge[]) : [];
  if (nodes.some((n) => !n || typeof n !== "object" || typeof n.id !== "string")) {
    throw new DocumentError("Every entry of `nodes` needs an `id`.");
  }
  if (edges.some((e) => !e || typeof e !== "object" || typeof e.from !== "string" || typeof e.to !== "string")) {
    throw new DocumentError("Every entry of `edges` needs `from` and `to`.");
  }
  const nodesWithKind = nodes.map((n) => ({ ...n, kind: (n.kind ?? "project") as NodeKind }));
  return { ...raw, name: String(raw.name ?? ""), nodes: nodesWithKind, edges } as DagDocument;
}

/** The YAML text of a document: keys in a stable, readable order, empty values left out. */
export function serializeDocument(dag: DagDocument): string {
  return YAML.stringify(prune(dag), { lineWidth: 0, flowCollectionPadding: false });
}

function prune(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(prune);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) {
      const pruned = prune(inner);
      const empty = pruned === undefined || pruned === null || pruned === ""
        || (typeof pruned === "object" && !Array.isArray(pruned) && Object.keys(pruned as object).length === 0);
      if (!empty) out[key] = pruned;
    }
    return out;
  }
  return value;
}

export interface ElementProblem { element: { kind: "node" | "edge" | "document"; id: string }; field: string; message: string }

/** Which node or edge a server problem location names; anything else belongs to the document. */
export function locateProblem(location: string, message: string, dag: DagDocument): ElementProblem {
  const nodeIds = new Set(dag.nodes.map((n) => n.id));
  const edgeIds = new Set(dag.edges.map(edgeId));
  if (location.startsWith("nodes.")) {
    const rest = location.slice("nodes.".length);
    const id = [...nodeIds].filter((n) => rest === n || rest.startsWith(`${n}.`)).sort((a, b) => b.length - a.length)[0];
    if (id) return { element: { kind: "node", id }, field: rest.slice(id.length + 1), message };
  }
  if (location.startsWith("edges.")) {
    const rest = location.slice("edges.".length);
    const id = [...edgeIds].filter((e) => rest === e || rest.startsWith(`${e}.`)).sort((a, b) => b.length - a.length)[0];
    if (id) return { element: { kind: "edge", id }, field: rest.slice(id.length + 1), message };
  }
  return { element: { kind: "document", id: "" }, field: location, message };
}
