// The DAG designer (`/dags/new`, `/dags/:name`): the document is the single source of truth; the canvas,
// property panels and YAML text are views of it, and every change goes through `commit` (undoable).

import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { useNavigate, useParams } from "react-router-dom";
import { ReactFlowProvider, useReactFlow, type XYPosition } from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { ApiError } from "../api/client";
import { createDag, getDag, listClusters, listVersions, saveDag } from "../api/endpoints";
import type { DagVersion, DagVersionInfo } from "../api/types";
import { ErrorBanner } from "../components/ErrorBanner";
import { parseDocument, serializeDocument, type DagDocument, type DagEdge, type DagNode, type ElementProblem, type NodeKind } from "../dag/document";
import { NODE_HEIGHT, NODE_WIDTH } from "../dag/layout";
import { StartRunDialog } from "../monitor/StartRunDialog";
import { Canvas } from "./Canvas";
import { DagPanel } from "./DagPanel";
import { EdgePanel } from "./EdgePanel";
import {
  addNode, connect, connectionProblem, EMPTY_DOCUMENT, newNode, nextNodeId, nodeIdProblem, removeElements, renameNode,
  updateEdge, updateNode,
} from "./edits";
import { flowEdges, useFlowState } from "./flow";
import { pushHistory, redoHistory, startHistory, undoHistory } from "./history";
import { NodePanel } from "./NodePanel";
import { Palette } from "./Palette";
import { ProblemsList } from "./ProblemsList";
import type { ClusterChoices } from "./TaskFields";
import { Toolbar } from "./Toolbar";
import { useValidation } from "./validation";
import { ViewTabs, type View } from "./ViewTabs";
import { YamlView } from "./YamlView";
import "./designer.css";

export function DesignerPage() {
  return (
    <ReactFlowProvider>
      <Designer />
    </ReactFlowProvider>
  );
}

/** The text the YAML view shows for `doc`: the stored (or typed) text while the document is that text's. */
interface Baseline { doc: DagDocument; text: string }

const EMPTY_TEXT = serializeDocument(EMPTY_DOCUMENT);

function useClusterChoices(): ClusterChoices {
  const [choices, setChoices] = useState<ClusterChoices>({ names: [], error: null });
  useEffect(() => {
    listClusters().then((clusters) => setChoices({ names: clusters.map((c) => c.name), error: null }), (error: unknown) => setChoices({ names: [], error }));
  }, []);
  return choices;
}

function Designer() {
  const { name: routeName } = useParams<{ name: string }>();
  const navigate = useNavigate();
  const flow = useReactFlow();
  const canvasArea = useRef<HTMLDivElement>(null);
  const [history, setHistory] = useState(() => startHistory(EMPTY_DOCUMENT));
  const doc = history.present;
  const [baseline, setBaseline] = useState<Baseline>({ doc: EMPTY_DOCUMENT, text: EMPTY_TEXT });
  const [savedText, setSavedText] = useState(EMPTY_TEXT);
  const [stored, setStored] = useState<{ name: string; version: number } | null>(null);
  const shownName = useRef<string | null>(null);
  const [versions, setVersions] = useState<DagVersionInfo[]>([]);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [status, setStatus] = useState("");
  const [saving, setSaving] = useState(false);
  const [view, setView] = useState<View>("canvas");
  const [runOpen, setRunOpen] = useState(false);
  const clusters = useClusterChoices();
  const validation = useValidation(doc, doc.nodes.length > 0 || doc.name !== "");
  const graph = useFlowState(doc, validation.problems);
  const edges = useMemo(() => flowEdges(doc, validation.problems, graph.selectedEdges), [doc, validation.problems, graph.selectedEdges]);
  const text = useMemo(() => (baseline.doc === doc ? baseline.text : serializeDocument(doc)), [baseline, doc]);
  const dirty = useMemo(() => serializeDocument(doc) !== savedText, [doc, savedText]);

  const commit = useCallback((change: (dag: DagDocument) => DagDocument, key?: string) => {
    setHistory((h) => pushHistory(h, change(h.present), key));
  }, []);
  const undo = useCallback(() => setHistory(undoHistory), []);
  const redo = useCallback(() => setHistory(redoHistory), []);

  /** Replaces everything with a stored version: fresh history, layout and validation. */
  const { reset, relayout } = graph;
  const clearValidation = validation.clear;
  const show = useCallback((version: DagVersion | null) => {
    const dag = version ? parseDocument(version.yaml) : EMPTY_DOCUMENT;
    reset();
    clearValidation();
    setHistory(startHistory(dag));
    setBaseline({ doc: dag, text: version ? version.yaml : EMPTY_TEXT });
    setSavedText(serializeDocument(dag));
    setStored(version ? { name: version.name, version: version.version } : null);
    shownName.current = version?.name ?? null;
    setStatus("");
  }, [reset, clearValidation]);

  useEffect(() => {
    setError(null);
    if (!routeName) {
      if (shownName.current !== null) show(null);
      setVersions([]);
      return;
    }
    let live = true;
    listVersions(routeName).then((found) => live && setVersions(found), (failure: unknown) => live && setError(failure));
    if (shownName.current === routeName) return () => { live = false; }; // just created here: already shown
    setLoading(true);
    getDag(routeName)
      .then((version) => live && show(version))
      .catch((failure: unknown) => live && setError(failure))
      .finally(() => live && setLoading(false));
    return () => { live = false; };
  }, [routeName, show]);

  const loadVersion = (version: number) => {
    if (!stored || (dirty && !window.confirm("Discard the unsaved changes and load another version?"))) return;
    setError(null);
    getDag(stored.name, version).then(show).catch(setError);
  };

  const save = async () => {
    const yaml = baseline.doc === doc ? baseline.text : serializeDocument(doc);
    setSaving(true);
    setError(null);
    setStatus("Saving…");
    try {
      const saved = stored ? await saveDag(stored.name, yaml) : await createDag(yaml);
      setBaseline({ doc, text: saved.yaml });
      setSavedText(serializeDocument(doc));
      setStored({ name: saved.name, version: saved.version });
      shownName.current = saved.name;
      setStatus(`Saved version ${saved.version}`);
      listVersions(saved.name).then(setVersions, setError);
      if (!stored) navigate(`/dags/${encodeURIComponent(saved.name)}`, { replace: true });
    } catch (failure) {
      setStatus("");
      setError(failure);
      if (failure instanceof ApiError && failure.problems.length) validation.show(failure.problems, doc);
    } finally {
      setSaving(false);
    }
  };

  useEffect(() => {
    if (!dirty) return;
    const warn = (event: BeforeUnloadEvent) => { event.preventDefault(); event.returnValue = ""; };
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [dirty]);

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (!(event.ctrlKey || event.metaKey) || (event.target as HTMLElement).closest("input, textarea, select, [contenteditable='true']")) return;
      const key = event.key.toLowerCase();
      if (key === "z" && !event.shiftKey) undo();
      else if ((key === "z" && event.shiftKey) || key === "y") redo();
      else return;
      event.preventDefault();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [undo, redo]);

  /** Below the middle of the visible canvas, moving down (then right) until nothing is in the way. */
  const freeSpot = (): XYPosition => {
    const box = canvasArea.current?.getBoundingClientRect();
    const start = box ? flow.screenToFlowPosition({ x: box.left + box.width / 2, y: box.top + box.height / 3 }) : { x: 0, y: 0 };
    const taken = graph.nodes.map((n) => n.position);
    const clear = (p: XYPosition) => taken.every((t) => Math.abs(t.x - p.x) > NODE_WIDTH + 20 || Math.abs(t.y - p.y) > NODE_HEIGHT + 20);
    for (let i = 0; i < 60; i += 1) {
      const spot = { x: start.x - NODE_WIDTH / 2 + Math.floor(i / 6) * (NODE_WIDTH + 40), y: start.y + (i % 6) * (NODE_HEIGHT + 30) };
      if (clear(spot)) return spot;
    }
    return start;
  };

  const add = (kind: NodeKind, position?: XYPosition) => {
    const id = nextNodeId(doc, kind);
    graph.place(id, position ?? freeSpot());
    commit((dag) => addNode(dag, newNode(kind, id)));
  };

  const remove = useCallback((nodeIds: string[], edgeIds: string[]) => {
    const indexes = new Set(edges.filter((e) => edgeIds.includes(e.id)).map((e) => e.data?.index ?? -1));
    commit((dag) => removeElements(dag, new Set(nodeIds), indexes));
  }, [edges, commit]);

  const rename = (from: string, to: string): string | null => {
    const problem = nodeIdProblem(doc, from, to);
    if (problem || from === to) return problem;
    graph.rename(from, to);
    commit((dag) => renameNode(dag, from, to), "rename");
    return null;
  };

  const applyYaml = useCallback((dag: DagDocument, typed: string) => {
    setBaseline({ doc: dag, text: typed });
    commit(() => dag, "yaml");
  }, [commit]);

  const selectProblem = (element: ElementProblem["element"]) => {
    if (element.kind === "document") return;
    setView("canvas");
    graph.select(element.kind, element.id);
  };

  const selectedNodes = graph.nodes.filter((n) => n.selected).map((n) => n.id);
  const selectedEdges = edges.filter((e) => e.selected);
  const single = selectedNodes.length + selectedEdges.length === 1;
  const node = single ? doc.nodes.find((n) => n.id === selectedNodes[0]) : undefined;
  const edgeIndex = single ? selectedEdges[0]?.data?.index : undefined;
  const edge = edgeIndex === undefined ? undefined : doc.edges[edgeIndex];
  const problemsOf = (kind: "node" | "edge", id: string) => validation.problems.filter((p) => p.element.kind === kind && p.element.id === id);

  const panel = node ? (
    <NodePanel
      node={node}
      dag={doc}
      problems={problemsOf("node", node.id)}
      clusters={clusters}
      onChange={(patch: Partial<DagNode>, field: string) => commit((dag) => updateNode(dag, node.id, patch), `node:${node.id}.${field}`)}
      onRename={(to) => rename(node.id, to)}
      onConnectFrom={(from) => commit((dag) => connect(dag, from, node.id))}
    />
  ) : edge && edgeIndex !== undefined ? (
    <EdgePanel
      edge={edge}
      problems={problemsOf("edge", `${edge.from}->${edge.to}`)}
      onChange={(patch: Partial<DagEdge>, field: string) => commit((dag) => updateEdge(dag, edgeIndex, patch), `edge:${edgeIndex}.${field}`)}
    />
  ) : selectedNodes.length + selectedEdges.length > 1 ? (
    <p className="muted dg-panel">{selectedNodes.length + selectedEdges.length} elements selected.</p>
  ) : (
    <DagPanel dag={doc} onChange={(patch, field) => commit((dag) => ({ ...dag, ...patch }), `dag.${field}`)} />
  );

  return (
    <div className="dg-page">
      <header className="dg-header">
        {stored ? <h1>DAG <span className="dg-name">{stored.name}</span></h1> : <h1>New DAG</h1>}
        {!stored && (
          <div className="dg-inline-field">
            <label htmlFor="dg-dag-name">DAG name</label>
            <input id="dg-dag-name" type="text" value={doc.name} placeholder="e.g. sensor-pipeline"
              onChange={(e) => commit((dag) => ({ ...dag, name: e.target.value }), "dag.name")} />
          </div>
        )}
        {stored && (
          <div className="dg-inline-field">
            <label htmlFor="dg-version">Version</label>
            <select id="dg-version" value={stored.version} onChange={(e) => loadVersion(Number(e.target.value))}>
              {(versions.some((v) => v.version === stored.version) ? versions : [{ version: stored.version, created_at: "", created_by: null, description: null }, ...versions])
                .map((v) => <option key={v.version} value={v.version}>{`v${v.version}${v.created_at ? ` — ${new Date(v.created_at).toLocaleString()}` : ""}`}</option>)}
            </select>
          </div>
        )}
        {loading && <span className="muted" role="status">Loading…</span>}
      </header>
      <Toolbar
        onSave={() => void save()}
        saving={saving}
        onRun={() => setRunOpen(true)}
        canRun={stored !== null && !dirty}
        onValidate={() => void validation.validate(doc)}
        onUndo={undo}
        canUndo={history.past.length > 0}
        onRedo={redo}
        canRedo={history.future.length > 0}
        onDelete={() => remove(selectedNodes, selectedEdges.map((e) => e.id))}
        canDelete={selectedNodes.length + selectedEdges.length > 0}
        onLayout={() => { setView("canvas"); relayout(); }}
        dirty={dirty}
        status={status}
      />
      <ErrorBanner error={error} />
      <ViewTabs view={view} onChange={setView} />
      <div className={`dg-body dg-body-${view}`}>
        {view === "canvas" ? (
          <>
            <Palette onAdd={(kind) => add(kind)} />
            <div className="dg-canvas-area" id="dg-view-canvas" role="tabpanel" aria-labelledby="dg-tab-canvas" ref={canvasArea}>
              <Canvas
                nodes={graph.nodes}
                edges={edges}
                fitRequest={graph.fitRequest}
                onNodesChange={graph.onNodesChange}
                onEdgesChange={graph.onEdgesChange}
                canConnect={(from, to) => connectionProblem(doc, from, to) === null}
                onConnect={(from, to) => commit((dag) => connect(dag, from, to))}
                onDelete={remove}
                onDropNode={add}
              />
            </div>
          </>
        ) : (
          <div className="dg-yaml-area" id="dg-view-yaml" role="tabpanel" aria-labelledby="dg-tab-yaml">
            <YamlView text={text} onApply={applyYaml} />
          </div>
        )}
        <div className="dg-side">
          {view === "canvas" && panel}
          <ProblemsList problems={validation.problems} state={validation.state} error={validation.error} onSelect={selectProblem} />
        </div>
      </div>
      {runOpen && stored && <StartRunDialog dag={stored.name} version={stored.version} document={doc} onClose={() => setRunOpen(false)} />}
    </div>
  );
}
