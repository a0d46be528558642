// What failed, said plainly: each failed stage's error, its first failed partition, and a button to its log.

import { useEffect, useState } from "react";
import { listTasks } from "../api/endpoints";
import type { StageStatus } from "../api/types";
import type { LogTarget } from "./PartitionTable";

export function FailureList(props: { runId: string; stages: StageStatus[]; onOpenLog: (target: LogTarget) => void }) {
  const { runId, stages, onOpenLog } = props;
  const failed = stages.filter((s) => s.state === "failed" || s.error);
  if (failed.length === 0) return null;
  return (
    <section className="failures" aria-label="Failures">
      <h2>Failures</h2>
      <div role="alert">
        <ul>
          {failed.map((stage) => <FailedStage key={stage.node} runId={runId} stage={stage} onOpenLog={onOpenLog} />)}
        </ul>
      </div>
    </section>
  );
}

function FailedStage(props: { runId: string; stage: StageStatus; onOpenLog: (target: LogTarget) => void }) {
  const { runId, stage, onOpenLog } = props;
  const [partition, setPartition] = useState<number | null | undefined>(undefined);
  const [lookupError, setLookupError] = useState("");
  const failedCount = stage.counts.failed ?? 0;

  useEffect(() => {
    let live = true;
    listTasks(runId, { node: stage.node, state: "failed", limit: 1 }).then(
      (page) => live && setPartition(page.items[0]?.partition ?? null),
      (failure: unknown) => live && setLookupError(failure instanceof Error ? failure.message : String(failure)),
    );
    return () => { live = false; };
  }, [runId, stage.node, failedCount]);

  return (
    <li>
      <strong>{stage.node}</strong>
      {failedCount > 0 && <> — {failedCount} partition{failedCount === 1 ? "" : "s"} failed</>}
      {partition !== undefined && partition !== null && <>, first: <code>{stage.node}[{partition}]</code></>}
      {stage.error && <p className="stage-error">{stage.error}</p>}
      {lookupError && <p className="stage-error">Could not find the failed partitions: {lookupError}</p>}
      {partition !== undefined && partition !== null && (
        <button type="button" onClick={() => onOpenLog({ node: stage.node, partition, follow: false })}>
          Open log of {stage.node}[{partition}]
        </button>
      )}
    </li>
  );
}
