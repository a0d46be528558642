// /runs/:id: the run's header, its DAG coloured by stage, what failed, the selected node's partitions and a
// task's log. `?node=` keeps the selected node in the address, so a view can be shared.

import { useCallback, useState } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { ErrorBanner } from "../components/ErrorBanner";
import { FailureList } from "./FailureList";
import { isTerminal } from "./format";
import { LogViewer } from "./LogViewer";
import { PartitionTable, type LogTarget } from "./PartitionTable";
import { RunGraph, stagesSignature } from "./RunGraph";
import { RunHeader } from "./RunHeader";
import { useNow } from "./usePolling";
import { useRun, useRunDocument } from "./useRun";
import "./monitor.css";

export function RunMonitorPage() {
  const { id = "" } = useParams();
  const { run, error, wake } = useRun(id);
  const { document, error: documentError } = useRunDocument(id);
  const [params, setParams] = useSearchParams();
  const selected = params.get("node");
  const [log, setLog] = useState<LogTarget | null>(null);
  const active = !!run && !isTerminal(run.state);
  const now = useNow(1000, active);

  const select = useCallback((node: string) => {
    setParams((old) => {
      const next = new URLSearchParams(old);
      next.set("node", node);
      return next;
    }, { replace: true });
  }, [setParams]);

  if (!run) {
    return (
      <div className="page run-monitor">
        <ErrorBanner error={error} />
        {error ? <Link to="/runs">All runs</Link> : <p className="muted" role="status">Loading run…</p>}
      </div>
    );
  }
  const stage = run.stages.find((s) => s.node === selected);
  const selectable = selected !== null && document?.nodes.some((n) => n.id === selected && n.kind !== "source");

  return (
    <div className="page run-monitor">
      <RunHeader run={run} now={now} onRetried={wake} />
      <ErrorBanner error={error} />
      <ErrorBanner error={documentError} />
      {document && <RunGraph document={document} stages={run.stages} selected={selected} onSelect={select} />}
      <FailureList runId={run.id} stages={run.stages} onOpenLog={setLog} />
      {selectable && selected !== null ? (
        <PartitionTable key={selected} runId={run.id} node={selected} active={active}
          changeKey={stage ? stagesSignature([stage]) : ""} onOpenLog={setLog} />
      ) : (
        <p className="muted">Select a node in the graph to see its partitions.</p>
      )}
      {log && <LogViewer runId={run.id} target={log} onClose={() => setLog(null)} />}
    </div>
  );
}
