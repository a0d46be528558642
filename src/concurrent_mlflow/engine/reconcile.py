"""The reconcile loop: compare what the store wants with what the executor sees, and move runs forward.

Each `tick` (1) observes active attempts and ends those that exited, timed out or were lost, (2) closes
stages whose tasks all ended, (3) plans stages whose upstream stages succeeded and skips those downstream
of a failure, (4) dispatches pending tasks within the global and per-node limits, and (5) ends the run when
every stage has ended. Every state change goes through `store.transitions`; nothing is kept only in memory
that a restarted engine could not rebuild from the store, the executor and MLflow.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from concurrent_mlflow.dag import Dag, SourceNode, TaskNode, parse_dag
from concurrent_mlflow.errors import ConcurrentError
from concurrent_mlflow.executors.base import Executor, Observation, TaskLaunch
from concurrent_mlflow.manifest import InputItem
from concurrent_mlflow.plan import list_source, plan_stage
from concurrent_mlflow.store import AttemptRow, RunRow, StageRow, Store, TaskRow, TaskState
from concurrent_mlflow.store import transitions as tx
from concurrent_mlflow.store.models import utcnow
from concurrent_mlflow.store.states import ACTIVE, TERMINAL
from concurrent_mlflow.tracking import Tracking

log = logging.getLogger("concurrent.engine")
S = TaskState


@dataclass(frozen=True)
class EngineSettings:
    cache_dir: Path
    max_parallel: int = field(default_factory=lambda: os.cpu_count() or 1)
    poll_interval: float = 0.2
    retry_backoff: float = 1.0  # seconds before the first retry; doubles per attempt
    max_backoff: float = 60.0


class Engine:
    def __init__(
        self, store: Store, tracking: Tracking, executor: Executor, settings: EngineSettings
    ) -> None:
        self.store, self.tracking, self.executor, self.settings = store, tracking, executor, settings
        self._dags: dict[str, Dag] = {}
        self._outputs: dict[tuple[str, str], list[InputItem]] = {}

    # -- entry points -----------------------------------------------------------------------------------
    def start(self, dag: Dag, *, base_dir: Path, overrides: Mapping[str, str]) -> str:
        """Record a new run and open its MLflow parent run; the loop does the rest."""
        dag_yaml = dag.to_yaml()
        run_id = tx.create_run(
            self.store,
            dag_name=dag.name,
            dag_yaml=dag_yaml,
            base_dir=str(base_dir),
            node_ids=dag.topological_order(),
            overrides=dict(overrides),
        )
        experiment_id = self.tracking.experiment_id(dag.experiment or dag.name)
        parent = self.tracking.start_parent(
            experiment_id, run_id=run_id, dag_name=dag.name, dag_yaml=dag_yaml, overrides=overrides
        )
        tx.attach_mlflow(self.store, run_id, mlflow_run_id=parent, experiment_id=experiment_id)
        return run_id

    def run_until_done(self, run_id: str, on_tick: Callable[[], None] | None = None) -> str:
        """Drive one run to its end. Ctrl-C cancels it (tasks killed, runs marked KILLED) and re-raises."""
        try:
            while not self.tick(run_id):
                if on_tick:
                    on_tick()
                time.sleep(self.settings.poll_interval)
        except KeyboardInterrupt:
            self.cancel(run_id, "cancelled by the user (Ctrl-C)")
            raise
        except Exception as exc:  # never leave tasks running behind a dead engine
            self.cancel(run_id, f"cancelled: the engine stopped on an error: {exc}")
            raise
        finally:
            if on_tick:
                on_tick()
        return self._run(run_id).state

    def retry(self, run_id: str) -> int:
        """Send failed, cancelled and skipped work back to pending; succeeded partitions keep outputs."""
        reset = tx.reset_for_retry(self.store, run_id)
        parent = self._run(run_id).mlflow_run_id
        if parent:
            self.tracking.reopen(parent)
        return reset

    def cancel(self, run_id: str, reason: str) -> None:
        for task, attempt in self._active(run_id):
            self.executor.cancel(attempt.handle)
            self._end_attempt(task, attempt, S.CANCELLED, None, reason, mlflow_status="KILLED")
        for stage in self._stages(run_id):
            if stage.state not in TERMINAL:
                tx.end_stage(self.store, run_id, stage.node_id, S.CANCELLED, reason)
        run = self._run(run_id)
        if run.state not in TERMINAL:
            tx.finish_run(self.store, run_id, S.CANCELLED, reason)
        if run.mlflow_run_id:
            self.tracking.terminate(run.mlflow_run_id, "KILLED")

    # -- the loop ---------------------------------------------------------------------------------------
    def tick(self, run_id: str) -> bool:
        """One reconcile pass; returns True once the run has ended."""
        if self._run(run_id).state in TERMINAL:
            return True
        self._observe(run_id)
        self._close_stages(run_id)
        self._plan_ready(run_id)
        self._dispatch(run_id)
        return self._maybe_finish(run_id)

    def _observe(self, run_id: str) -> None:
        for task, attempt in self._active(run_id):
            seen = self.executor.observe(attempt.handle)
            if seen.phase == "running" and attempt.state == S.QUEUED:
                tx.mark_running(self.store, attempt.id)
            if seen.phase in ("exited", "lost"):
                self._finish(task, attempt, seen)
            elif self._timed_out(run_id, task, attempt):
                self.executor.cancel(attempt.handle)
                timeout = self._dag(run_id).timeout(self._task_node(run_id, task))
                self._end_attempt(task, attempt, S.FAILED, None, f"timed out after {timeout:g}s", "KILLED")

    def _finish(self, task: TaskRow, attempt: AttemptRow, seen: Observation) -> None:
        child_status = self.tracking.status(attempt.mlflow_run_id)
        if seen.exit_code == 0 and child_status == "FINISHED":
            self._end_attempt(task, attempt, S.SUCCEEDED, 0, None, "FINISHED", child_status)
        elif seen.phase == "lost" and child_status == "FINISHED":
            self._end_attempt(task, attempt, S.SUCCEEDED, None, None, "FINISHED", child_status)
        else:
            detail = seen.detail or f"the worker exited 0 but its MLflow run is {child_status}"
            self._end_attempt(task, attempt, S.FAILED, seen.exit_code, detail, "FAILED", child_status)

    def _end_attempt(
        self,
        task: TaskRow,
        attempt: AttemptRow,
        state: TaskState,
        exit_code: int | None,
        error: str | None,
        mlflow_status: str,
        current_status: str | None = None,
    ) -> None:
        self._save_log(attempt)
        self.tracking.terminate(attempt.mlflow_run_id, mlflow_status, current=current_status)
        retry_in = self._retry_delay(task) if state == S.FAILED else None
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
            self.store, attempt.id, state=state, exit_code=exit_code, error=error, retry_in=retry_in
        )

    def _retry_delay(self, task: TaskRow) -> timedelta | None:
        dag = self._dag(task.run_id)
        used = task.attempts - task.retry_base
        if used > dag.retries(self._task_node(task.run_id, task)):
            return None
        seconds = min(self.settings.retry_backoff * 2 ** (used - 1), self.settings.max_backoff)
        return timedelta(seconds=seconds)

    def _timed_out(self, run_id: str, task: TaskRow, attempt: AttemptRow) -> bool:
        timeout = self._dag(run_id).timeout(self._task_node(run_id, task))
        started = (
            attempt.started_at.replace(tzinfo=utcnow().tzinfo)
            if attempt.started_at.tzinfo is None
            else attempt.started_at
        )
        return timeout is not None and (utcnow() - started).total_seconds() > timeout

    def _save_log(self, attempt: AttemptRow) -> None:
        """Copy the attempt's log into its child run as logs/task.log (best effort: it is also on disk)."""
        content = self.executor.read_log(attempt.handle)
        with tempfile.TemporaryDirectory(prefix="concurrent-log-") as tmp:
            path = Path(tmp) / "task.log"
            path.write_bytes(content)
            try:
                self.tracking.log_file(attempt.mlflow_run_id, path, "logs")
            except ConcurrentError as exc:
                log.warning("could not save the log of attempt %d: %s", attempt.id, exc)

    def _close_stages(self, run_id: str) -> None:
        for stage in self._stages(run_id):
            if stage.state != S.RUNNING:
                continue
            states = [t.state for t in stage.tasks]
            if any(s not in TERMINAL for s in states):
                continue
            failed = [t for t in stage.tasks if t.state != S.SUCCEEDED]
            if failed:
                first = failed[0]
                error = (
                    f"{len(failed)} of {len(states)} partition(s) failed; "
                    f"partition {first.partition}: {first.error}"
                )
                tx.end_stage(self.store, run_id, stage.node_id, S.FAILED, error)
            else:
                tx.end_stage(self.store, run_id, stage.node_id, S.SUCCEEDED)

    def _plan_ready(self, run_id: str) -> None:
        dag, run = self._dag(run_id), self._run(run_id)
        stages = self._stages(run_id)
        states = {s.node_id: s.state for s in stages}
        partitions = {s.node_id: s.partitions or 0 for s in stages}
        for node_id, state in states.items():
            if state != S.PENDING:
                continue
            upstream = {states[u] for u in dag.upstream(node_id)}
            if upstream & {S.FAILED, S.SKIPPED, S.CANCELLED}:
                bad = [u for u in dag.upstream(node_id) if states[u] in (S.FAILED, S.SKIPPED, S.CANCELLED)]
                tx.end_stage(
                    self.store,
                    run_id,
                    node_id,
                    S.SKIPPED,
                    f"skipped: upstream {', '.join(bad)} did not succeed",
                )
            elif upstream <= {S.SUCCEEDED}:
                self._plan(run, dag, node_id, partitions)

    def _plan(self, run: RunRow, dag: Dag, node_id: str, partitions: Mapping[str, int]) -> None:
        node = dag.node(node_id)
        try:
            if isinstance(node, SourceNode):
                self._outputs_of(run.id, node_id)
                tx.plan_stage(self.store, run.id, node_id, [])
                tx.end_stage(self.store, run.id, node_id, S.SUCCEEDED)
                return
            plan = plan_stage(
                dag,
                node_id,
                base_dir=Path(run.base_dir),
                cache_dir=self.settings.cache_dir,
                outputs_of=lambda n: self._outputs_of(run.id, n),
                upstream_partitions=partitions,
            )
            assert run.mlflow_run_id
            self.tracking.log_plan(run.mlflow_run_id, node_id, plan.spec, plan.manifests)
        except ConcurrentError as exc:
            log.error("cannot plan %s: %s", node_id, exc)
            tx.plan_stage(self.store, run.id, node_id, [])
            tx.end_stage(self.store, run.id, node_id, S.FAILED, f"planning failed: {exc}")
            return
        tx.plan_stage(self.store, run.id, node_id, [m.input_bytes() for m in plan.manifests])

    def _outputs_of(self, run_id: str, node_id: str) -> list[InputItem]:
        key = (run_id, node_id)
        if key not in self._outputs:
            run, node = self._run(run_id), self._dag(run_id).node(node_id)
            if isinstance(node, SourceNode):
                self._outputs[key] = list_source(node, Path(run.base_dir))
            else:
                stage = next(s for s in self._stages(run_id) if s.node_id == node_id)
                self._outputs[key] = [
                    item
                    for t in stage.tasks
                    if t.mlflow_run_id
                    for item in self.tracking.read_outputs(t.mlflow_run_id, t.partition)
                ]
        return self._outputs[key]

    def _dispatch(self, run_id: str) -> None:
        dag, run = self._dag(run_id), self._run(run_id)
        assert run.mlflow_run_id and run.experiment_id
        free = self.settings.max_parallel - self._count_active(run_id)
        if free <= 0:
            return
        for stage in self._stages(run_id):
            if stage.state != S.RUNNING or free <= 0:
                continue
            node = self._task_node(run_id, stage.tasks[0]) if stage.tasks else None
            if node is None:
                continue
            limit = dag.parallelism(node) or len(stage.tasks)
            active = sum(1 for t in stage.tasks if t.state in ACTIVE)
            now = utcnow()
            for task in stage.tasks:
                if free <= 0 or active >= limit:
                    break
                if task.state != S.PENDING or (task.retry_at and _aware(task.retry_at) > now):
                    continue
                self._submit(run, task, stage.partitions or 1)
                free, active = free - 1, active + 1

    def _submit(self, run: RunRow, task: TaskRow, partitions: int) -> None:
        assert run.mlflow_run_id and run.experiment_id
        attempt = task.attempts + 1
        child = self.tracking.create_child(
            run.experiment_id,
            run.mlflow_run_id,
            run_id=run.id,
            node_id=task.node_id,
            partition=task.partition,
            attempt=attempt,
            params={"partition": str(task.partition), "partitions": str(partitions)},
        )
        launch = TaskLaunch(
            run_id=run.id,
            node_id=task.node_id,
            partition=task.partition,
            partitions=partitions,
            attempt=attempt,
            parent_run_id=run.mlflow_run_id,
            child_run_id=child,
            tracking_uri=self.tracking.tracking_uri,
            env={"CONCURRENT_CACHE": str(self.settings.cache_dir)},
        )
        try:
            handle, log_path = self.executor.submit(launch)
        except ConcurrentError as exc:
            self.tracking.terminate(child, "FAILED")
            tx.end_stage(self.store, run.id, task.node_id, S.FAILED, str(exc))
            return
        tx.start_attempt(
            self.store,
            task.id,
            executor=self.executor.name,
            mlflow_run_id=child,
            handle=handle,
            log_path=log_path,
        )

    def _maybe_finish(self, run_id: str) -> bool:
        stages = self._stages(run_id)
        if any(s.state not in TERMINAL for s in stages):
            return False
        failed = [s for s in stages if s.state != S.SUCCEEDED]
        state = S.FAILED if failed else S.SUCCEEDED
        error = "; ".join(f"{s.node_id}: {s.error or s.state}" for s in failed if s.state == S.FAILED) or None
        tx.finish_run(self.store, run_id, state, error)
        run = self._run(run_id)
        if run.mlflow_run_id:
            self.tracking.terminate(run.mlflow_run_id, "FINISHED" if state == S.SUCCEEDED else "FAILED")
        return True

    # -- reads ------------------------------------------------------------------------------------------
    def _run(self, run_id: str) -> RunRow:
        with self.store.transaction() as session:
            run = session.get(RunRow, run_id)
            if run is None:
                raise ConcurrentError(f"No run {run_id!r} in this store.")
            return run

    def _stages(self, run_id: str) -> list[StageRow]:
        with self.store.transaction() as session:
            stages = session.scalars(
                select(StageRow).where(StageRow.run_id == run_id).order_by(StageRow.id)
            ).all()
            for stage in stages:
                _ = stage.tasks  # load while the session is open
            return list(stages)

    def _active(self, run_id: str) -> list[tuple[TaskRow, AttemptRow]]:
        with self.store.transaction() as session:
            rows = session.execute(
                select(TaskRow, AttemptRow)
                .join(
                    AttemptRow, (AttemptRow.task_id == TaskRow.id) & (AttemptRow.number == TaskRow.attempts)
                )
                .where(TaskRow.run_id == run_id, TaskRow.state.in_(ACTIVE))
            ).all()
            return [(t, a) for t, a in rows]

    def _count_active(self, run_id: str) -> int:
        with self.store.transaction() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(TaskRow)
                    .where(TaskRow.run_id == run_id, TaskRow.state.in_(ACTIVE))
                )
                or 0
            )

    def _dag(self, run_id: str) -> Dag:
        if run_id not in self._dags:
            self._dags[run_id] = parse_dag(self._run(run_id).dag_yaml, f"run {run_id}")
        return self._dags[run_id]

    def _task_node(self, run_id: str, task: TaskRow) -> TaskNode:
        node = self._dag(run_id).node(task.node_id)
        assert not isinstance(node, SourceNode)
        return node


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes for timezone columns; they were written as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)
