"""Ending work: an attempt whose worker exited, was lost or timed out; a stage whose tasks all ended; a run
whose stages all ended.

An attempt's end saves its log into its child run, ends that run in MLflow and records the end (with a
retry's backoff if the node has retries left) in one transaction. The store is the truth for
orchestration and MLflow for results: an attempt succeeds only once its child run is FINISHED.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from concurrent_mlflow.engine import reads
from concurrent_mlflow.engine.context import EngineContext, aware
from concurrent_mlflow.errors import ConcurrentError
from concurrent_mlflow.executors.base import Observation
from concurrent_mlflow.run_summary import summarize
from concurrent_mlflow.store import AttemptRow, RunRow, TaskRow, TaskState
from concurrent_mlflow.store import transitions as tx
from concurrent_mlflow.store.states import TERMINAL, AttemptState, RunState, StageState

log = logging.getLogger("concurrent.engine")
S = TaskState


class Endings:
    def __init__(self, context: EngineContext) -> None:
        self.c = context

    # -- attempts ---------------------------------------------------------------------------------------
    def finish(self, task: TaskRow, attempt: AttemptRow, seen: Observation) -> None:
        """End an attempt whose worker exited or was lost. Where the executor's traits say so (a local
        worker exits 0 only once it has marked its child run FINISHED, worker.main), the exit is the run's
        status; anything else (a pod, a failure, a lost worker) is settled against the child run's status."""
        assert attempt.mlflow_run_id
        traits = self.c.executors.get(attempt.executor).traits
        if seen.exit_code == 0 and traits.exit_zero_is_success:
            self.end(task, attempt, AttemptState.SUCCEEDED, 0, None, "FINISHED", "FINISHED")
            return
        child_status = self.c.tracking.status(attempt.mlflow_run_id)
        if seen.exit_code == 0 and child_status == "FINISHED":
            self.end(task, attempt, AttemptState.SUCCEEDED, 0, None, "FINISHED", child_status)
        elif seen.phase == "lost" and child_status == "FINISHED":
            self.end(task, attempt, AttemptState.SUCCEEDED, None, None, "FINISHED", child_status)
        else:
            detail = seen.detail or f"the worker exited 0 but its MLflow run is {child_status}"
            self.end(task, attempt, AttemptState.FAILED, seen.exit_code, detail, "FAILED", child_status)

    def end(
        self,
        task: TaskRow,
        attempt: AttemptRow,
        state: AttemptState,
        exit_code: int | None,
        error: str | None,
        mlflow_status: str,
        current_status: str | None = None,
    ) -> None:
        """Save the log, end the child run as `mlflow_status`, record the end; a failed attempt is retried
        after a backoff while the node has retries left (unless the executor has used them already)."""
        if attempt.mlflow_run_id:
            if attempt.handle:
                self.save_log(attempt, attempt.mlflow_run_id)
            self.c.tracking.terminate(attempt.mlflow_run_id, mlflow_status, current=current_status)
        retried_inside = bool(attempt.handle) and self.c.executors.get(attempt.executor).traits.retries_inside
        retry_in = self.retry_delay(task) if state == AttemptState.FAILED and not retried_inside else None
        if error and retry_in is not None:
            log.info(
                "%s[%d] attempt %d failed (%s); retrying in %.0fs",
                task.node_id,
                task.partition,
                attempt.number,
                error,
                retry_in.total_seconds(),
            )
        tx.end_attempt(
            self.c.store, attempt.id, state=state, exit_code=exit_code, error=error, retry_in=retry_in
        )

    def not_started(self, task: TaskRow, attempt_id: int, child: str | None, error: str) -> None:
        """An attempt its executor could not start: its child run FAILED, a retry if the node has one."""
        if child:
            self.c.tracking.terminate(child, "FAILED")
        retry_in = self.retry_delay(task)
        tx.end_attempt(self.c.store, attempt_id, state=AttemptState.FAILED, error=error, retry_in=retry_in)
        self.c.wake.set()  # no exit will report it: the next pass retries it or closes its stage

    def ended_unwatched(self, task: TaskRow, attempt_id: int, child: str) -> bool:
        """A worker that started and ended while no engine knew its handle: settle by its MLflow status
        instead of starting it again (its outputs, if any, are already logged)."""
        status = self.c.tracking.status(child)
        if status not in ("FINISHED", "FAILED", "KILLED"):
            return False
        if status == "FINISHED":
            tx.end_attempt(self.c.store, attempt_id, state=AttemptState.SUCCEEDED)
        else:
            error = f"the worker ended while no engine was watching; its MLflow run is {status}"
            retry_in = self.retry_delay(task)
            tx.end_attempt(
                self.c.store, attempt_id, state=AttemptState.FAILED, error=error, retry_in=retry_in
            )
        return True

    def retry_delay(self, task: TaskRow) -> timedelta | None:
        """The backoff before the task's next attempt; None once the node's retries are used."""
        used = task.attempts - task.retry_base
        if used > self.c.dags.dag(task.run_id).retries(self.c.dags.task_node(task.run_id, task)):
            return None
        settings = self.c.settings
        return timedelta(seconds=min(settings.retry_backoff * 2 ** (used - 1), settings.max_backoff))

    def deadline(self, run_id: str, task: TaskRow, attempt: AttemptRow) -> datetime | None:
        """When the attempt times out, if its node has a timeout."""
        timeout = self.c.dags.dag(run_id).timeout(self.c.dags.task_node(run_id, task))
        return None if timeout is None else aware(attempt.started_at) + timedelta(seconds=timeout)

    def save_log(self, attempt: AttemptRow, child_run: str) -> None:
        """Copy the attempt's log into its child run as logs/task.log (best effort: it is also on disk);
        an empty log is not uploaded."""
        try:
            content = self.c.executors.get(attempt.executor).read_log(attempt.handle)
        except ConcurrentError as exc:
            log.warning("could not read the log of attempt %d: %s", attempt.id, exc)
            return
        if not content:
            return
        with tempfile.TemporaryDirectory(prefix="concurrent-log-") as tmp:
            path = Path(tmp) / "task.log"
            path.write_bytes(content)
            try:
                self.c.tracking.log_file(child_run, path, "logs")
            except ConcurrentError as exc:
                log.warning("could not save the log of attempt %d: %s", attempt.id, exc)

    # -- stages and runs --------------------------------------------------------------------------------
    def close_stages(self, run_id: str) -> None:
        """End each running stage whose tasks have all ended: succeeded, or failed naming a partition."""
        store = self.c.store
        counts = reads.task_counts(store, run_id)
        for stage in reads.stages(store, run_id):
            if stage.state != S.RUNNING:
                continue
            states = counts.get(stage.id, Counter())
            if any(state not in TERMINAL for state in states):
                continue
            total = sum(states.values())
            unsucceeded = total - states[S.SUCCEEDED]
            first = reads.first_unsucceeded(store, stage.id) if unsucceeded else None
            if first is not None:
                error = f"{unsucceeded} of {total} partition(s) failed; "
                error += f"partition {first.partition}: {first.error}"
                tx.end_stage(store, run_id, stage.node_id, StageState.FAILED, error)
            elif total == 0:  # planned with no partitions by an older version: a retry plans it again
                error = "it has no partitions to run; `concurrent run retry` plans it again"
                tx.end_stage(store, run_id, stage.node_id, StageState.FAILED, error)
            else:
                tx.end_stage(store, run_id, stage.node_id, StageState.SUCCEEDED)

    def finish_run(self, run_id: str) -> bool:
        """End the run once every stage has ended (its children's metrics summed up on its parent run);
        True if it has ended."""
        stages = reads.stages(self.c.store, run_id)
        if any(s.state not in TERMINAL for s in stages):
            return False
        failed = [s for s in stages if s.state != StageState.SUCCEEDED]
        state = RunState.FAILED if failed else RunState.SUCCEEDED
        error = "; ".join(f"{s.node_id}: {s.error or s.state}" for s in failed if s.state == S.FAILED) or None
        tx.finish_run(self.c.store, run_id, state, error)
        self.c.plans.forget(run_id)  # a `run retry` reads what it needs back from the parent run
        run = reads.run(self.c.store, run_id)
        if run.mlflow_run_id:
            self._summarize(run, {s.node_id: s.partitions or 0 for s in stages})
            status = "FINISHED" if state == RunState.SUCCEEDED else "FAILED"
            self.c.tracking.terminate(run.mlflow_run_id, status)
        return True

    def _summarize(self, run: RunRow, partitions: dict[str, int]) -> None:
        """The children's metrics on the parent run (run_summary.py); a failure only costs the summary."""
        assert run.mlflow_run_id and run.experiment_id
        try:
            dag = self.c.dags.dag(run.id)
            summarize(self.c.tracking, run.mlflow_run_id, run.experiment_id, dag, partitions)
        except Exception as exc:  # whatever it is, the run still ends: the summary is a convenience
            log.warning("run %s: its children's metrics are not on its parent run: %s", run.id, exc)
