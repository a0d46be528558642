"""The reconcile loop: compare what the store wants with what the executor sees, and move runs forward.

Each `tick` of a run (1) acts on a requested cancel, (2) opens the MLflow parent run of a new run,
(3) observes active attempts, finishing launches an earlier engine left half-done and ending attempts that
exited, timed out or were lost, (4) closes stages whose tasks all ended, (5) plans stages whose upstream
stages succeeded (in the background, `engine.planning`, recording each plan once done) and skips those
downstream of a failure, (6) dispatches pending tasks within the global and per-node limits, and (7) ends
the run when every stage has ended. Every state change goes through `store.transitions`, and every step
can be repeated after a crash at any point: nothing is kept only in memory that a restarted engine could
not rebuild from the store, the executor and MLflow.

Between passes the engine sleeps until something happens (`wait`): an executor reports that a task ended,
a plan is done, or the next deadline it knows of comes (a retry's backoff, a task's timeout). A fallback
poll (`poll_interval`) covers what sends no event: a cancel asked by another process, slots freed by
another process's tasks, workers adopted from an earlier engine.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from concurrent_mlflow import cpu_share, git_credentials
from concurrent_mlflow.advice import planning_failure
from concurrent_mlflow.dag import Dag, ProjectNode, SourceNode, TaskNode, parse_dag
from concurrent_mlflow.engine import reads
from concurrent_mlflow.engine.plan_files import PlanFiles
from concurrent_mlflow.engine.planning import Planner
from concurrent_mlflow.errors import ConcurrentError, DriverLostError, PlanStopped
from concurrent_mlflow.executors.base import Executor, Observation, TaskLaunch
from concurrent_mlflow.executors.jobspec import PROJECT_IMAGE_ENV
from concurrent_mlflow.executors.kubernetes import KubernetesExecutor, StageLaunch, StageTask
from concurrent_mlflow.executors.registry import Executors
from concurrent_mlflow.manifest import InputItem, ProjectSpec
from concurrent_mlflow.plan import list_source, plan_stage
from concurrent_mlflow.policy import ExecutionPolicy
from concurrent_mlflow.project import split_subdir
from concurrent_mlflow.run_summary import summarize
from concurrent_mlflow.run_tags import run_tags
from concurrent_mlflow.store import AttemptRow, RunRow, Store, TaskRow, TaskState
from concurrent_mlflow.store import transitions as tx
from concurrent_mlflow.store.models import utcnow
from concurrent_mlflow.store.states import ACTIVE, TERMINAL, AttemptState, RunState, StageState
from concurrent_mlflow.taskfile import TaskFile
from concurrent_mlflow.tracking import Tracking

log = logging.getLogger("concurrent.engine")
S = TaskState


@dataclass(frozen=True)
class EngineSettings:
    cache_dir: Path
    max_parallel: int = field(default_factory=lambda: os.cpu_count() or 1)
    poll_interval: float = 2.0
    """The fallback: the longest wait between passes when no event and no deadline comes first."""
    retry_backoff: float = 1.0  # seconds before the first retry; doubles per attempt
    max_backoff: float = 60.0
    dispatch_batch: int = 256  # launches per run per pass, so a pass (and the server's lease) stays short
    mlflow_threads: int = 8  # launches and endings in flight at once: each is a few MLflow round trips
    stage_batch: int = 100_000  # partitions handed to Kubernetes in one pass (one Job per cluster)
    policy: ExecutionPolicy = field(default_factory=ExecutionPolicy)
    """A server's execution policy, checked again before a node is listed or planned."""


def new_run(
    store: Store,
    dag: Dag,
    *,
    base_dir: Path,
    overrides: Mapping[str, str],
    dag_version: int | None = None,
    created_by: str | None = None,
    schedule_id: int | None = None,
    window: tuple[datetime, datetime] | None = None,
    driver: str | None = None,
    driver_ttl: timedelta = timedelta(0),
    run_id: str | None = None,
) -> str:
    """Record a new run (pending); an engine's loop opens its MLflow parent run (or finds the one created
    for `run_id` already) and does the rest. A run with a `driver` is driven by that process
    (`engine.orphans`), else by the server's engine."""
    return tx.create_run(
        store,
        dag_name=dag.name,
        dag_yaml=dag.to_yaml(),
        base_dir=str(base_dir),
        node_ids=dag.topological_order(),
        overrides=dict(overrides),
        dag_version=dag_version,
        created_by=created_by,
        schedule_id=schedule_id,
        window=window,
        driver=driver,
        driver_ttl=driver_ttl,
        run_id=run_id,
    )


KUBERNETES = KubernetesExecutor.name
LEASE_CHECK_SECONDS = 3.0


class Engine:
    def __init__(
        self,
        store: Store,
        tracking: Tracking,
        executors: Executors,
        settings: EngineSettings,
    ) -> None:
        self.store, self.tracking, self.executors, self.settings = store, tracking, executors, settings
        self.executor, self.kubernetes = executors.local, executors.kubernetes
        self._pool = ThreadPoolExecutor(settings.mlflow_threads, thread_name_prefix="concurrent-engine")
        # Set when a task may have ended or a plan finishes: the next pass need not wait.
        self.wake = threading.Event()
        executors.wake_on_change(self.wake.set)
        self._planner = Planner(on_done=self.wake.set)
        self._due: dict[str, datetime] = {}  # per run, the next deadline a pass must not miss
        self._plans = PlanFiles(settings.cache_dir / "plans", tracking)
        self._inflight: list[Future[None]] = []  # the launches and endings of the current pass
        self._dags: dict[str, Dag] = {}
        self._outputs: dict[tuple[str, str], list[InputItem]] = {}
        self._keep_going: Callable[[], bool] = lambda: True  # tick_all's lease check, for long passes
        self._lease_checked = time.monotonic()

    # -- entry points -----------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Start what tasks will need in the background (the fork server's imports take seconds), so it
        overlaps the run's start. Call it as early as a run is in view; it returns at once. Nothing starts
        where the policy runs no task on this machine."""
        if self.settings.policy.local_execution:
            self.executors.prepare()

    def create_run(self, dag: Dag, *, base_dir: Path, overrides: Mapping[str, str]) -> str:
        return new_run(self.store, dag, base_dir=base_dir, overrides=overrides)

    def start(
        self,
        dag: Dag,
        *,
        base_dir: Path,
        overrides: Mapping[str, str],
        driver: str | None = None,
        driver_ttl: timedelta = timedelta(0),
    ) -> str:
        """Record a new run and open its MLflow parent run at once (so its link can be shown)."""
        self.prepare()
        run_id = new_run(
            self.store, dag, base_dir=base_dir, overrides=overrides, driver=driver, driver_ttl=driver_ttl
        )
        self._open(reads.run(self.store, run_id))
        return run_id

    def run_until_done(self, run_id: str, on_tick: Callable[[], None] | None = None) -> str:
        """Drive one run to its end. Ctrl-C cancels it (tasks killed, runs marked KILLED) and re-raises."""
        self.prepare()
        try:
            while not self.tick(run_id):
                if on_tick:
                    on_tick()
                self.wait()
        except DriverLostError:  # another command settled the run (or drives it now): its tasks are not ours
            raise
        except KeyboardInterrupt as interrupt:  # Ctrl-C, or a signal handler naming who cancelled
            self.cancel(run_id, str(interrupt) or "cancelled by the user (Ctrl-C)")
            raise
        except Exception as exc:  # never leave tasks running behind a dead engine
            self.cancel(run_id, f"cancelled: the engine stopped on an error: {exc}")
            raise
        finally:
            if on_tick:
                on_tick()
        return reads.run(self.store, run_id).state

    def wait(self, longest: float | None = None) -> None:
        """Until an event (a task ended, a plan is done), the next deadline of a run, or `longest` seconds
        (default: `poll_interval`), whichever comes first."""
        timeout = self.settings.poll_interval if longest is None else longest
        if self._due:
            timeout = min(timeout, (min(self._due.values()) - utcnow()).total_seconds())
        if timeout > 0:
            self.wake.wait(timeout)
        self.wake.clear()

    def tick_all(self, keep_going: Callable[[], bool] = lambda: True) -> int:
        """One pass over every open run (the service's loop); returns how many are still open.

        A run whose tick fails (MLflow unreachable, say) is logged and tried again next pass; it never
        stops the others. `keep_going` is asked before each run (the server renews its lease there).
        """
        still_open = 0
        self._keep_going = keep_going
        open_runs = reads.open_run_ids(self.store)
        if open_runs:
            self.prepare()
        for run_id in open_runs:
            if not keep_going():
                return still_open
            try:
                done = self.tick(run_id)
            except Exception:
                log.exception("run %s: this reconcile pass failed; trying again", run_id)
                self._due.pop(run_id, None)  # its deadlines are stale: the fallback poll tries again
                done = False
            if done:
                self._forget(run_id)
            else:
                still_open += 1
        return still_open

    def close(self) -> None:
        """Stop plans, let in-flight launches finish, then release the executor's helpers (tasks keep
        running; a plan stopped here is made again by the next engine)."""
        self._planner.close()
        self._pool.shutdown(wait=True)
        self.executors.close()

    def retry(self, run_id: str) -> int:
        """Send failed, cancelled and skipped work back to pending; succeeded partitions keep outputs."""
        reset = tx.reset_for_retry(self.store, run_id)
        parent = reads.run(self.store, run_id).mlflow_run_id
        if parent:
            self.tracking.reopen(parent)
        self._forget(run_id)
        return reset

    def cancel(self, run_id: str, reason: str) -> None:
        self._planner.stop(run_id)  # a plan in progress stops at its next step; its result is dropped
        # A Ctrl-C can land while launches are in flight: let them finish first, so that every worker
        # started has its handle recorded and is stopped below, not left running unseen.
        futures.wait(self._inflight)
        for task, attempt in reads.active_attempts(self.store, run_id):
            if attempt.handle:
                self._executor(attempt).cancel(attempt.handle)
            self._end_attempt(task, attempt, AttemptState.CANCELLED, None, reason, mlflow_status="KILLED")
        for stage in reads.stages(self.store, run_id):
            if stage.state not in TERMINAL:
                tx.end_stage(self.store, run_id, stage.node_id, StageState.CANCELLED, reason)
        run = reads.run(self.store, run_id)
        if run.state not in TERMINAL:
            tx.finish_run(self.store, run_id, RunState.CANCELLED, reason)
        self._plans.forget(run_id)
        if run.mlflow_run_id:
            self.tracking.terminate(run.mlflow_run_id, "KILLED")

    # -- the loop ---------------------------------------------------------------------------------------
    def tick(self, run_id: str) -> bool:
        """One reconcile pass over one run; returns True once the run has ended."""
        run = reads.run(self.store, run_id)
        if run.state in TERMINAL:
            return True
        if run.cancel_requested:
            self.cancel(run_id, run.cancel_requested)
            return True
        if run.mlflow_run_id is None:
            run = self._open(run)
        due = [self._observe(run)]
        self._close_stages(run_id)
        self._plan_ready(run)
        due.append(self._dispatch(run))
        if self._maybe_finish(run_id):
            self._due.pop(run_id, None)
            return True
        known = [moment for moment in due if moment is not None]
        self._due[run_id] = min(known) if known else utcnow() + timedelta(days=1)
        return False

    def _open(self, run: RunRow) -> RunRow:
        """Open (or, after a crash, find) the run's MLflow parent run; the run becomes running."""
        dag = self._dag(run.id)
        experiment_id = self.tracking.experiment_id(dag.experiment or dag.name)
        parent = self.tracking.start_parent(
            experiment_id,
            run_id=run.id,
            dag_name=dag.name,
            dag_yaml=run.dag_yaml,
            overrides=run.overrides,
            tags=run_tags(run.created_by),
        )
        tx.attach_mlflow(self.store, run.id, mlflow_run_id=parent, experiment_id=experiment_id)
        return reads.run(self.store, run.id)

    def _observe(self, run: RunRow) -> datetime | None:
        """Observe the run's active attempts and end those that ended; the earliest time one of the others
        times out, if any has a timeout."""
        partitions = {s.node_id: s.partitions or 1 for s in reads.stages(self.store, run.id)}
        due: datetime | None = None
        work: list[Callable[[], None]] = []
        unfinished_stages: dict[str, list[tuple[TaskRow, AttemptRow]]] = {}
        for task, attempt in reads.active_attempts(self.store, run.id):
            if attempt.mlflow_run_id is None or not attempt.handle:
                if attempt.executor == KUBERNETES:  # a stage handed over by an engine that died mid-way
                    unfinished_stages.setdefault(task.node_id, []).append((task, attempt))
                    continue
                count = partitions[task.node_id]
                work.append(partial(self._launch, run, task, attempt.id, attempt.mlflow_run_id, count, True))
                continue
            seen = self._executor(attempt).observe(attempt.handle)
            if seen.phase == "running" and attempt.state == S.QUEUED:
                tx.mark_running(self.store, attempt.id)
            if seen.phase in ("exited", "lost"):
                work.append(partial(self._finish, task, attempt, seen))
            elif attempt.executor != KUBERNETES and (deadline := self._deadline(run.id, task, attempt)):
                if deadline > utcnow():
                    due = deadline if due is None else min(due, deadline)
                    continue
                self.executor.cancel(attempt.handle)  # (Kubernetes pods have their own deadline)
                timeout = self._dag(run.id).timeout(self._task_node(run.id, task))
                error = f"timed out after {timeout:g}s"
                self._end_attempt(task, attempt, AttemptState.FAILED, None, error, "KILLED")
        self._in_parallel(work)
        for node_id, pairs in unfinished_stages.items():
            self._launch_stage(
                run,
                node_id,
                partitions[node_id],
                [(t, a.id, a.mlflow_run_id) for t, a in pairs],
                recover=True,
            )
        return due

    def _renew_lease(self) -> None:
        """Within a long piece of a pass, renew the server's lease every few seconds; stop the pass if
        another server holds it now (it will pick the work up where this one left it)."""
        if time.monotonic() - self._lease_checked < LEASE_CHECK_SECONDS:
            return
        self._lease_checked = time.monotonic()
        if not self._keep_going():
            raise ConcurrentError("this engine lost its lease in the middle of a pass; another one goes on")

    def _executor(self, attempt: AttemptRow) -> Executor:
        return self.executors.get(attempt.executor)

    def _in_parallel(self, work: list[Callable[[], None]]) -> None:
        """Run launches or endings side by side (each is a few MLflow round trips and its own transactions);
        all of them run even if one fails, then the first failure is raised for the pass to report."""
        submitted = [self._pool.submit(job) for job in work]
        self._inflight = submitted
        errors = [error for future in submitted if (error := future.exception()) is not None]
        if errors:
            raise errors[0]

    def _finish(self, task: TaskRow, attempt: AttemptRow, seen: Observation) -> None:
        """End an attempt whose worker exited or was lost. A local worker exits 0 only once it has marked
        its child run FINISHED (worker.main), so its exit is the run's status; anything else (a pod, a
        failure, a lost worker) is settled against the child run's status in MLflow."""
        assert attempt.mlflow_run_id
        if seen.exit_code == 0 and attempt.executor != KUBERNETES:
            self._end_attempt(task, attempt, AttemptState.SUCCEEDED, 0, None, "FINISHED", "FINISHED")
            return
        child_status = self.tracking.status(attempt.mlflow_run_id)
        if seen.exit_code == 0 and child_status == "FINISHED":
            self._end_attempt(task, attempt, AttemptState.SUCCEEDED, 0, None, "FINISHED", child_status)
        elif seen.phase == "lost" and child_status == "FINISHED":
            self._end_attempt(task, attempt, AttemptState.SUCCEEDED, None, None, "FINISHED", child_status)
        else:
            detail = seen.detail or f"the worker exited 0 but its MLflow run is {child_status}"
            self._end_attempt(
                task, attempt, AttemptState.FAILED, seen.exit_code, detail, "FAILED", child_status
            )

    def _end_attempt(
        self,
        task: TaskRow,
        attempt: AttemptRow,
        state: AttemptState,
        exit_code: int | None,
        error: str | None,
        mlflow_status: str,
        current_status: str | None = None,
    ) -> None:
        if attempt.mlflow_run_id:
            if attempt.handle:
                self._save_log(attempt, attempt.mlflow_run_id)
            self.tracking.terminate(attempt.mlflow_run_id, mlflow_status, current=current_status)
        # A Kubernetes attempt has used its retries already (backoffLimitPerIndex): no second round here.
        retried_inside = attempt.executor == KUBERNETES and attempt.handle
        retry_in = self._retry_delay(task) if state == AttemptState.FAILED and not retried_inside else None
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

    def _deadline(self, run_id: str, task: TaskRow, attempt: AttemptRow) -> datetime | None:
        """When the attempt times out, if its node has a timeout."""
        timeout = self._dag(run_id).timeout(self._task_node(run_id, task))
        return None if timeout is None else _aware(attempt.started_at) + timedelta(seconds=timeout)

    def _save_log(self, attempt: AttemptRow, child_run: str) -> None:
        """Copy the attempt's log into its child run as logs/task.log (best effort: it is also on disk);
        an empty log is not uploaded."""
        try:
            content = self._executor(attempt).read_log(attempt.handle)
        except ConcurrentError as exc:
            log.warning("could not read the log of attempt %d: %s", attempt.id, exc)
            return
        if not content:
            return
        with tempfile.TemporaryDirectory(prefix="concurrent-log-") as tmp:
            path = Path(tmp) / "task.log"
            path.write_bytes(content)
            try:
                self.tracking.log_file(child_run, path, "logs")
            except ConcurrentError as exc:
                log.warning("could not save the log of attempt %d: %s", attempt.id, exc)

    def _close_stages(self, run_id: str) -> None:
        counts = reads.task_counts(self.store, run_id)
        for stage in reads.stages(self.store, run_id):
            if stage.state != S.RUNNING:
                continue
            states = counts.get(stage.id, Counter())
            if any(state not in TERMINAL for state in states):
                continue
            total = sum(states.values())
            unsucceeded = total - states[S.SUCCEEDED]
            first = reads.first_unsucceeded(self.store, stage.id) if unsucceeded else None
            if first is not None:
                error = f"{unsucceeded} of {total} partition(s) failed; "
                error += f"partition {first.partition}: {first.error}"
                tx.end_stage(self.store, run_id, stage.node_id, StageState.FAILED, error)
            elif total == 0:  # planned with no partitions by an older version: a retry plans it again
                error = "it has no partitions to run; `concurrent run retry` plans it again"
                tx.end_stage(self.store, run_id, stage.node_id, StageState.FAILED, error)
            else:
                tx.end_stage(self.store, run_id, stage.node_id, StageState.SUCCEEDED)

    def _plan_ready(self, run: RunRow) -> None:
        """Skip stages downstream of a failure, start or record plans of stages whose upstream stages
        succeeded; again while that changes a stage (a source's listing frees its consumers at once)."""
        while self._plan_pass(run):
            pass

    def _plan_pass(self, run: RunRow) -> bool:
        dag = self._dag(run.id)
        stages = reads.stages(self.store, run.id)
        states = {s.node_id: s.state for s in stages}
        partitions = {s.node_id: s.partitions or 0 for s in stages}
        changed = False
        for node_id, state in states.items():
            if state != S.PENDING:
                continue
            bad = [u for u in dag.upstream(node_id) if states[u] in (S.FAILED, S.SKIPPED, S.CANCELLED)]
            if bad:
                reason = f"skipped: upstream {', '.join(bad)} did not succeed"
                tx.end_stage(self.store, run.id, node_id, StageState.SKIPPED, reason)
                changed = True
            elif all(states[u] == S.SUCCEEDED for u in dag.upstream(node_id)):
                changed = self._plan(run, dag, node_id, partitions) or changed
        return changed

    def _plan(self, run: RunRow, dag: Dag, node_id: str, partitions: Mapping[str, int]) -> bool:
        """Start the stage's plan in the background, or record it once it is done (see engine.planning);
        True if the stage's state changed."""
        done = self._planner.poll(run.id, node_id, partial(self._make_plan, run, dag, node_id, partitions))
        if done is None or done.cancelled():
            return False
        try:
            input_bytes = done.result()
        except PlanStopped:
            return False  # the run is being cancelled; the cancel ends the stage
        except ConcurrentError as exc:
            log.error("cannot plan %s: %s", node_id, exc)
            # No partitions recorded: the stage stays unplanned, so a retry plans it again.
            tx.end_stage(self.store, run.id, node_id, StageState.FAILED, planning_failure(exc))
            return True
        if isinstance(dag.node(node_id), SourceNode):
            tx.settle_source(self.store, run.id, node_id)
        else:
            tx.plan_stage(self.store, run.id, node_id, input_bytes)
        return True

    def _make_plan(
        self,
        run: RunRow,
        dag: Dag,
        node_id: str,
        partitions: Mapping[str, int],
        should_stop: Callable[[], bool],
    ) -> list[int]:
        """List, partition and store one stage's plan (in a planner thread); its partitions' input sizes."""
        node = dag.node(node_id)
        # The run may have been stored before the policy changed: check again before reading anything.
        self.settings.policy.check_node(dag, node, Path(run.base_dir))
        if isinstance(node, SourceNode):
            self._outputs_of(run, node_id)
            return []
        plan = plan_stage(
            dag,
            node_id,
            base_dir=Path(run.base_dir),
            cache_dir=self.settings.cache_dir,
            outputs_of=lambda n: self._outputs_of(run, n, should_stop),
            upstream_partitions=partitions,
        )
        assert run.mlflow_run_id
        self._plans.store(run.id, run.mlflow_run_id, node_id, plan.spec, plan.manifests, should_stop)
        if isinstance(plan.spec, ProjectSpec) and [n.id for n in dag.nodes if isinstance(n, ProjectNode)] == [
            node_id
        ]:  # the DAG run is a run of this one project: its parent says so as `mlflow run`'s own run does
            self.tracking.set_tags(run.mlflow_run_id, plan.spec.tags)
        return [m.input_bytes() for m in plan.manifests]

    def _outputs_of(
        self, run: RunRow, node_id: str, should_stop: Callable[[], bool] = lambda: False
    ) -> list[InputItem]:
        key = (run.id, node_id)
        if key not in self._outputs:
            node = self._dag(run.id).node(node_id)
            if isinstance(node, SourceNode):
                window = (run.window_start, run.window_end) if node.incremental else (None, None)
                check = self.settings.policy.link_check(f"nodes.{node_id}.uri")
                self._outputs[key] = list_source(node, Path(run.base_dir), *window, check_link=check)
            else:
                stage = next(s for s in reads.stages(self.store, run.id) if s.node_id == node_id)
                items: list[InputItem] = []
                for task in reads.stage_tasks(self.store, stage.id):
                    if should_stop():  # reading thousands of output indexes takes a while
                        raise PlanStopped(f"planning stopped while reading the outputs of {node_id}")
                    if task.mlflow_run_id:
                        items.extend(self.tracking.read_outputs(task.mlflow_run_id, task.partition))
                self._outputs[key] = items
        return self._outputs[key]

    def _dispatch(self, run: RunRow) -> datetime | None:
        """Start ready tasks within the limits; when the next pass must come without an event (more ready
        tasks than one pass starts, a retry's backoff ending), else None."""
        dag = self._dag(run.id)
        local_active = reads.count_active(self.store, executor=self.executor.name)
        free = min(self.settings.max_parallel - local_active, self.settings.dispatch_batch)
        counts = reads.task_counts(self.store, run.id)
        now = utcnow()
        launches: list[Callable[[], None]] = []
        for stage in reads.stages(self.store, run.id):
            states = counts.get(stage.id)
            if stage.state != S.RUNNING or not states:
                continue
            node = dag.node(stage.node_id)
            assert not isinstance(node, SourceNode)
            if dag.placement(node):  # Kubernetes: the whole stage at once; the Job keeps the parallelism
                ready = reads.ready_tasks(self.store, stage.id, now, self.settings.stage_batch)
                if len(ready) == self.settings.stage_batch:
                    self.wake.set()  # more to hand over: go on at once
                if ready:
                    attempt_ids = tx.reserve_attempts(self.store, [t.id for t in ready], executor=KUBERNETES)
                    for task in ready:
                        task.attempts += 1  # as reserve_attempts just stored it
                    items: list[tuple[TaskRow, int, str | None]] = [
                        (task, aid, None) for task, aid in zip(ready, attempt_ids, strict=True)
                    ]
                    self._launch_stage(run, stage.node_id, stage.partitions or 1, items, recover=False)
                continue
            if free <= 0:
                continue
            total = sum(states.values())
            active = sum(n for state, n in states.items() if state in ACTIVE)
            room = min(free, (dag.parallelism(node) or total) - active)
            for task in reads.ready_tasks(self.store, stage.id, now, max(room, 0)):
                attempt_id = tx.reserve_attempt(self.store, task.id, executor=self.executor.name)
                task.attempts += 1  # as reserve_attempt just stored it: the new attempt's number
                launches.append(
                    partial(self._launch, run, task, attempt_id, None, stage.partitions or 1, False)
                )
                free -= 1
        self._in_parallel(launches)
        if len(launches) >= self.settings.dispatch_batch:
            return now  # a full batch: there may be more ready tasks and free slots
        return reads.next_retry(self.store, run.id, utcnow())

    def _launch_stage(
        self,
        run: RunRow,
        node_id: str,
        partitions: int,
        items: list[tuple[TaskRow, int, str | None]],
        recover: bool,
    ) -> None:
        """Hand partitions of a stage to Kubernetes. The executor asks for child runs one table chunk at a
        time and starts each Job after its first chunk; every handle is recorded in one transaction at
        the end. After a crash (`recover`), child runs an earlier engine made are found, not made twice."""
        assert run.mlflow_run_id and run.experiment_id
        dag = self._dag(run.id)
        node = self._task_node(run.id, items[0][0])
        image, image_env = self._project_image(run, node_id)
        items = sorted(items, key=lambda item: item[0].partition)  # Job names depend on the order
        by_partition = {task.partition: (task, aid) for task, aid, _ in items}
        children: dict[int, str] = {task.partition: child for task, _, child in items if child}

        def child_runs(tasks: Sequence[StageTask]) -> dict[int, str]:
            self._renew_lease()  # a stage of many chunks can outlast the lease of one pass

            def make(partition: int) -> None:
                task, attempt_id = by_partition[partition]
                children[partition] = self._create_child(run, task, attempt_id, recover)

            self._in_parallel([partial(make, t.partition) for t in tasks])
            return {t.partition: children[t.partition] for t in tasks}

        stage = StageLaunch(
            run_id=run.id,
            node_id=node_id,
            parent_run_id=run.mlflow_run_id,
            tracking_uri=self.tracking.tracking_uri,
            placement=dag.placement(node),
            tasks=[StageTask(t.partition, t.attempts, child) for t, _, child in items],
            parallelism=dag.parallelism(node) or len(items),
            retries=dag.retries(node),
            timeout=dag.timeout(node),
            env={
                **self._task_env(run, remote=True),
                **({PROJECT_IMAGE_ENV: image, **image_env} if image else {}),
                **self._pod_threads(node),
            },
            cpu=node.resources.cpu if node.resources else None,
            memory=node.resources.memory if node.resources else None,
            gpu=node.resources.gpu if node.resources else None,
            node_selector=node.node_selector,
            tolerations=[t.model_dump(by_alias=True, exclude_none=True) for t in node.tolerations],
            image=image,
            secret_env=self._git_credentials(run.id, node_id, {}),
        )
        if self.kubernetes is None:
            raise ConcurrentError("this engine has no Kubernetes executor, but the run has tasks there")
        submitted = self.kubernetes.submit_stage(stage, child_runs)
        for partition, error in submitted.failed.items():
            log.error("%s[%d]: could not start on Kubernetes: %s", node_id, partition, error)
            task, attempt_id = by_partition[partition]
            if partition in children:
                self.tracking.terminate(children[partition], "FAILED")
            retry_in = self._retry_delay(task)
            tx.end_attempt(self.store, attempt_id, state=AttemptState.FAILED, error=error, retry_in=retry_in)
            self.wake.set()
        tx.attach_handles(self.store, {by_partition[p][1]: handle for p, handle in submitted.handles.items()})

    def _launch(
        self,
        run: RunRow,
        task: TaskRow,
        attempt_id: int,
        child: str | None,
        partitions: int,
        recover: bool,
    ) -> None:
        """Create the attempt's child run and start it; after a crash (`recover`), find both first."""
        assert run.mlflow_run_id and run.experiment_id
        if child is None:
            child = self._create_child(run, task, attempt_id, recover=recover)
        launch = TaskLaunch(
            run_id=run.id,
            node_id=task.node_id,
            partition=task.partition,
            partitions=partitions,
            attempt=task.attempts,
            parent_run_id=run.mlflow_run_id,
            child_run_id=child,
            tracking_uri=self.tracking.tracking_uri,
            env={
                **self._task_env(run),
                **self._local_threads(run.id, task, partitions),
                **self._git_credentials(run.id, task.node_id, os.environ),
            },
            task=self._task_file(run, task, child),
        )
        try:
            found = self.executor.find(launch) if recover else None
            if recover and found is None and self._ended_unwatched(task, attempt_id, child):
                self.wake.set()  # ended without an exit to report it: the next pass closes its stage
                return
            handle, log_path = found or self.executor.submit(launch)
        except ConcurrentError as exc:
            log.error("%s[%d]: could not start: %s", task.node_id, task.partition, exc)
            self.tracking.terminate(child, "FAILED")
            retry_in = self._retry_delay(task)
            tx.end_attempt(
                self.store, attempt_id, state=AttemptState.FAILED, error=str(exc), retry_in=retry_in
            )
            self.wake.set()  # no exit will report it: the next pass retries it or closes its stage
            return
        tx.attach_handle(self.store, attempt_id, handle, log_path)

    def _create_child(self, run: RunRow, task: TaskRow, attempt_id: int, recover: bool) -> str:
        """The attempt's MLflow child run (found again after a crash with `recover`), recorded on it: one
        `runs/create` with its tags, MLflow's standard ones included. The worker logs the parameters,
        partition ones included, in one batch with the project's (once per child, not by both)."""
        assert run.mlflow_run_id and run.experiment_id
        child = self.tracking.create_child(
            run.experiment_id,
            run.mlflow_run_id,
            run_id=run.id,
            node_id=task.node_id,
            partition=task.partition,
            attempt=task.attempts,
            params={},
            tags={**run_tags(run.created_by), **self._project_tags(run, task.node_id)},
            recover=recover,
        )
        tx.attach_child(self.store, attempt_id, child)
        return child

    def _project_image(self, run: RunRow, node_id: str) -> tuple[str | None, dict[str, str]]:
        """A docker_env project's image, which its pods run in, and its `environment`; (None, {}): the
        cluster's worker image."""
        assert run.mlflow_run_id
        spec = self._plans.spec(run.id, run.mlflow_run_id, node_id)
        if isinstance(spec, ProjectSpec) and spec.image:
            return spec.image, spec.image_env
        return None, {}

    def _project_tags(self, run: RunRow, node_id: str) -> dict[str, str]:
        """MLflow's tags for a run of the node's project, from its planned spec ({} if that is unreadable:
        the tags are a record, not worth failing the task for)."""
        assert run.mlflow_run_id
        try:
            spec = self._plans.spec(run.id, run.mlflow_run_id, node_id)
        except (ConcurrentError, OSError, ValueError) as exc:
            log.warning("%s: the child runs lack the project's MLflow tags: %s", node_id, exc)
            return {}
        return dict(spec.tags) if isinstance(spec, ProjectSpec) else {}

    def _task_file(self, run: RunRow, task: TaskRow, child: str) -> str | None:
        """What the local worker is handed on stdin, from the engine's copy of the plan; None (the worker
        then reads the parent run) if the plan cannot be read here."""
        assert run.mlflow_run_id
        try:
            spec, manifest = self._plans.task(run.id, run.mlflow_run_id, task.node_id, task.partition)
        except (ConcurrentError, OSError, ValueError) as exc:
            log.warning(
                "%s[%d]: the worker reads its plan from MLflow: %s", task.node_id, task.partition, exc
            )
            return None
        uri = self.tracking.artifact_uri(child)
        return TaskFile(spec, manifest, run.experiment_id, uri).dumps()

    def _ended_unwatched(self, task: TaskRow, attempt_id: int, child: str) -> bool:
        """A worker that started and ended while no engine knew its handle: settle by its MLflow status
        instead of starting it again (its outputs, if any, are already logged)."""
        status = self.tracking.status(child)
        if status not in ("FINISHED", "FAILED", "KILLED"):
            return False
        if status == "FINISHED":
            tx.end_attempt(self.store, attempt_id, state=AttemptState.SUCCEEDED)
        else:
            error = f"the worker ended while no engine was watching; its MLflow run is {status}"
            retry_in = self._retry_delay(task)
            tx.end_attempt(self.store, attempt_id, state=AttemptState.FAILED, error=error, retry_in=retry_in)
        return True

    def _task_env(self, run: RunRow, remote: bool = False) -> dict[str, str]:
        env = {} if remote else {"CONCURRENT_CACHE": str(self.settings.cache_dir)}
        if run.window_start and run.window_end:
            env["CONCURRENT_WINDOW_START"] = _aware(run.window_start).isoformat()
            env["CONCURRENT_WINDOW_END"] = _aware(run.window_end).isoformat()
        return env

    def _local_threads(self, run_id: str, task: TaskRow, partitions: int) -> dict[str, str]:
        """The thread variables giving a local task its share of this machine's cores: the stage's tasks
        that run at once split them (see cpu_share.py)."""
        parallelism = self._dag(run_id).parallelism(self._task_node(run_id, task)) or partitions
        at_once = min(self.settings.max_parallel, parallelism, partitions)
        return cpu_share.thread_env(cpu_share.task_threads(cpu_share.usable_cores(), at_once), os.environ)

    def _git_credentials(self, run_id: str, node_id: str, environ: Mapping[str, str]) -> dict[str, str]:
        """The credentials of a project node's git URL, for its worker's git only: the spec every pod reads
        from MLflow has the URL without them (git_credentials.py); the DAG in the store keeps them."""
        node = self._dag(run_id).node(node_id)
        if not isinstance(node, ProjectNode):
            return {}
        return git_credentials.git_env([split_subdir(node.project)[0]], environ)

    @staticmethod
    def _pod_threads(node: TaskNode) -> dict[str, str]:
        """A pod sees every core of its Kubernetes node: with `resources.cpu`, its threads follow that."""
        declared = cpu_share.declared_cpus(node.resources.cpu if node.resources else None)
        return {} if declared is None else cpu_share.thread_env(declared, {})

    def _maybe_finish(self, run_id: str) -> bool:
        stages = reads.stages(self.store, run_id)
        if any(s.state not in TERMINAL for s in stages):
            return False
        failed = [s for s in stages if s.state != StageState.SUCCEEDED]
        state = RunState.FAILED if failed else RunState.SUCCEEDED
        error = "; ".join(f"{s.node_id}: {s.error or s.state}" for s in failed if s.state == S.FAILED) or None
        tx.finish_run(self.store, run_id, state, error)
        self._plans.forget(run_id)  # a `run retry` reads what it needs back from the parent run
        run = reads.run(self.store, run_id)
        if run.mlflow_run_id:
            self._summarize(run, {s.node_id: s.partitions or 0 for s in stages})
            self.tracking.terminate(
                run.mlflow_run_id, "FINISHED" if state == RunState.SUCCEEDED else "FAILED"
            )
        return True

    def _summarize(self, run: RunRow, partitions: Mapping[str, int]) -> None:
        """The children's metrics on the parent run (run_summary.py); a failure only costs the summary."""
        assert run.mlflow_run_id and run.experiment_id
        try:
            summarize(self.tracking, run.mlflow_run_id, run.experiment_id, self._dag(run.id), partitions)
        except Exception as exc:  # whatever it is, the run still ends: the summary is a convenience
            log.warning("run %s: its children's metrics are not on its parent run: %s", run.id, exc)

    # -- cached reads -----------------------------------------------------------------------------------
    def _dag(self, run_id: str) -> Dag:
        if run_id not in self._dags:
            self._dags[run_id] = parse_dag(reads.run(self.store, run_id).dag_yaml, f"run {run_id}", ours=True)
        return self._dags[run_id]

    def _forget(self, run_id: str) -> None:
        self._planner.stop(run_id)
        self._due.pop(run_id, None)
        self._dags.pop(run_id, None)
        for key in [k for k in self._outputs if k[0] == run_id]:
            del self._outputs[key]

    def _task_node(self, run_id: str, task: TaskRow) -> TaskNode:
        node = self._dag(run_id).node(task.node_id)
        assert not isinstance(node, SourceNode)
        return node


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes for timezone columns; they were written as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)
