// One node's partitions as a virtualised table: only the rows on screen are rendered and only their pages
// fetched, so a node with 10,000+ partitions scrolls like one with ten.

import { useRef, useState } from "react";
import { useVirtualizer } from "@tanstack/react-virtual";
import type { TaskStatus } from "../api/types";
import { ErrorBanner } from "../components/ErrorBanner";
import { StateBadge } from "../components/StateBadge";
import { formatDuration, humanBytes, TASK_STATES } from "./format";
import { useNow } from "./usePolling";
import { useTaskPages } from "./useTaskPages";

const ROW_HEIGHT = 36;
const COLUMNS = ["Partition", "State", "Attempt", "Duration", "Input size", "MLflow", "Log", "Error"];

export interface LogTarget { node: string; partition: number; follow: boolean }

export function PartitionTable(props: { runId: string; node: string; changeKey: string; active: boolean; onOpenLog: (target: LogTarget) => void }) {
  const { runId, node, changeKey, active, onOpenLog } = props;
  const [state, setState] = useState("");
  const scroller = useRef<HTMLDivElement>(null);
  const [view, setView] = useState<[number, number]>([0, 0]);
  const pages = useTaskPages(runId, node, state, view, changeKey, active);
  const now = useNow(1000, active);

  const virtualizer = useVirtualizer({
    count: pages.total ?? 0,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
    onChange: (instance) => {
      const items = instance.getVirtualItems();
      const next: [number, number] = items.length ? [items[0].index, items[items.length - 1].index] : [0, 0];
      setView((old) => (old[0] === next[0] && old[1] === next[1] ? old : next));
    },
  });
  const filterId = `partition-state-${node}`;

  return (
    <section className="partitions" aria-label={`Partitions of ${node}`}>
      <div className="toolbar">
        <h2>Partitions of <code>{node}</code></h2>
        <label htmlFor={filterId} className="inline">Filter by state</label>
        <select id={filterId} value={state} onChange={(e) => { setState(e.target.value); scroller.current?.scrollTo(0, 0); }}>
          <option value="">all</option>
          {TASK_STATES.map((s) => <option key={s} value={s}>{s}</option>)}
        </select>
        <span className="muted" role="status">
          {pages.total === null ? "Loading partitions…" : `${pages.total} partition${pages.total === 1 ? "" : "s"}`}
        </span>
      </div>
      <ErrorBanner error={pages.error} />
      {pages.total === 0 && <p className="muted">No partitions{state ? ` in state ${state}` : ""}.</p>}
      <div className="vtable" role="table" aria-label={`Partitions of ${node}`} aria-rowcount={(pages.total ?? 0) + 1}>
        <div className="vrow vhead" role="row" aria-rowindex={1}>
          {COLUMNS.map((c) => <span key={c} role="columnheader">{c}</span>)}
        </div>
        <div ref={scroller} className="vbody" role="rowgroup">
          <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
            {virtualizer.getVirtualItems().map((item) => (
              <PartitionRow key={item.key} index={item.index} top={item.start} task={pages.row(item.index)} node={node}
                now={now} onOpenLog={onOpenLog} />
            ))}
          </div>
        </div>
      </div>
    </section>
  );
}

function PartitionRow(props: { index: number; top: number; task: TaskStatus | undefined; node: string; now: number; onOpenLog: (target: LogTarget) => void }) {
  const { index, top, task, node, now, onOpenLog } = props;
  const style = { transform: `translateY(${top}px)`, height: ROW_HEIGHT };
  if (!task) {
    return (
      <div className="vrow" role="row" aria-rowindex={index + 2} style={style}>
        <span role="cell" className="muted">Loading…</span>
      </div>
    );
  }
  const running = task.state === "running" || task.state === "queued";
  return (
    <div className={`vrow row-${task.state}`} role="row" aria-rowindex={index + 2} style={style}>
      <span role="cell">{task.partition}</span>
      <span role="cell"><StateBadge state={task.state} /></span>
      <span role="cell">{task.attempts}</span>
      <span role="cell">{formatDuration(task.started_at, running ? null : task.finished_at, now)}</span>
      <span role="cell">{humanBytes(task.input_bytes)}</span>
      <span role="cell">
        {task.mlflow_url ? <a href={task.mlflow_url} target="_blank" rel="noreferrer">child run</a> : <span className="muted">—</span>}
      </span>
      <span role="cell">
        <button type="button" className="small" aria-label={`Log of partition ${task.partition}`}
          onClick={() => onOpenLog({ node, partition: task.partition, follow: running })}>Log</button>
      </span>
      <span role="cell" className="error-text" title={task.error ?? undefined}>{task.error ?? ""}</span>
    </div>
  );
}
