// The run's identity and outcome: heading, state, times, its error, the MLflow link and the run actions.

import type { RunDetail } from "../api/types";
import { StateBadge } from "../components/StateBadge";
import { formatDuration, formatTime, shortId } from "./format";
import { RunActions } from "./RunActions";

export function RunHeader(props: { run: RunDetail; now: number; onRetried: () => void }) {
  const { run, now, onRetried } = props;
  return (
    <header className="run-header">
      <div className="run-title">
        <h1>
          Run <code title={run.id}>{shortId(run.id)}</code> of {run.dag}
          {run.dag_version !== null && <> v{run.dag_version}</>}
        </h1>
        <StateBadge state={run.state} />
      </div>
      <dl className="run-facts">
        <div><dt>Created</dt><dd>{formatTime(run.created_at)}{run.created_by && <> by {run.created_by}</>}</dd></div>
        <div><dt>Finished</dt><dd>{formatTime(run.finished_at)}</dd></div>
        <div><dt>Duration</dt><dd>{formatDuration(run.created_at, run.finished_at, now)}</dd></div>
        {Object.keys(run.overrides).length > 0 && (
          <div><dt>Overrides</dt><dd>{Object.entries(run.overrides).map(([k, v]) => <code key={k}>{k}={v} </code>)}</dd></div>
        )}
        {run.mlflow_url && (
          <div><dt>MLflow</dt><dd><a href={run.mlflow_url} target="_blank" rel="noreferrer">Open in MLflow</a></dd></div>
        )}
      </dl>
      {run.error && <p className="run-error" role="alert">{run.error}</p>}
      <RunActions run={run} onRetried={onRetried} />
    </header>
  );
}
