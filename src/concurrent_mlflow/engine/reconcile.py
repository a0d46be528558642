"""The reconcile loop: compare what the store wants with what the executor sees, and move runs forward.

Each `tick` of a run (1) acts on a requested cancel, (2) opens the MLflow parent run of a new run,
(3) observes active attempts, finishing launches an earlier engine left half-done and ending attempts that
exited, timed out or were lost, (4) closes stages whose tasks all ended, (5) plans stages whose upstream
stages succeeded (in the background, `engine.planning`, recording each plan once done) and skips those
downstream of a failure, (6) dispatches pending tasks within the global and per-node limits, and (7) ends
the run when every stage has ended. Every state change goes through `store.transitions`, and every step
can be repeated after a crash at any point: nothing is kept only in memory that a restarted engine could
not rebuild from the store, the executor and MLflow.

This module decides what happens and when; planning.py plans stages, launching.py starts tasks and
endings.py ends attempts, stages and runs, all sharing one `EngineContext` (context.py).

Between passes the engine sleeps until something happens (`wait`): an executor reports that a task ended,
a plan is done, or the next deadline it knows of comes (a retry's backoff, a task's timeout). A fallback
poll (`poll_interval`) covers what sends no event: a cancel asked by another process, slots freed by
another process's tasks, workers adopted from an earlier engine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from concurrent_mlflow.dag import Dag, SourceNode
from concurrent_mlflow.engine import reads
from concurrent_mlflow.engine.context import EngineContext, MlflowPool, RunDags
from concurrent_mlflow.engine.endings import Endings
from concurrent_mlflow.engine.launching import Launcher, StageItem
from concurrent_mlflow.engine.plan_files import PlanFiles
from concurrent_mlflow.engine.planning import StagePlanning
from concurrent_mlflow.engine.settings import EngineSettings
from concurrent_mlflow.errors import ConcurrentError, DriverLostError
from concurrent_mlflow.executors.base import Executor
from concurrent_mlflow.executors.registry import Executors
from concurrent_mlflow.run_tags import run_tags
from concurrent_mlflow.store import AttemptRow, RunRow, Store, TaskState
from concurrent_mlflow.store import transitions as tx
from concurrent_mlflow.store.models import utcnow
from concurrent_mlflow.store.states import ACTIVE, TERMINAL, AttemptState, RunState, StageState
from concurrent_mlflow.tracking import Tracking

__all__ = ["Engine", "EngineSettings", "new_run"]

log = logging.getLogger("concurrent.engine")
S = TaskState


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
        self.context = EngineContext(
            store=store,
            tracking=tracking,
            executors=executors,
            settings=settings,
            dags=RunDags(store),
            plans=PlanFiles(settings.cache_dir / "plans", tracking),
            pool=MlflowPool(settings.mlflow_threads),
        )
        self.wake = self.context.wake
        executors.wake_on_change(self.wake.set)
        self.planning = StagePlanning(self.context)
        self.endings = Endings(self.context)
        self.launcher = Launcher(self.context, self.endings, self._renew_lease)
        self._due: dict[str, datetime] = {}  # per run, the next deadline a pass must not miss
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
        self.context.keep_going = keep_going
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
        self.planning.planner.close()
        self.context.pool.close()
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
        self.planning.planner.stop(run_id)  # a plan in progress stops at its next step; its result is dropped
        # A Ctrl-C can land while launches are in flight: let them finish first, so that every worker
        # started has its handle recorded and is stopped below, not left running unseen.
        self.context.pool.settle()
        for task, attempt in reads.active_attempts(self.store, run_id):
            if attempt.handle:
                self._executor(attempt).cancel(attempt.handle)
            self.endings.end(task, attempt, AttemptState.CANCELLED, None, reason, mlflow_status="KILLED")
        for stage in reads.stages(self.store, run_id):
            if stage.state not in TERMINAL:
                tx.end_stage(self.store, run_id, stage.node_id, StageState.CANCELLED, reason)
        run = reads.run(self.store, run_id)
        if run.state not in TERMINAL:
            tx.finish_run(self.store, run_id, RunState.CANCELLED, reason)
        self.context.plans.forget(run_id)
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
        self.endings.close_stages(run_id)
        self.planning.advance(run)
        due.append(self._dispatch(run))
        if self.endings.finish_run(run_id):
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
        unfinished_stages: dict[str, list[StageItem]] = {}
        for task, attempt in reads.active_attempts(self.store, run.id):
            traits = self._executor(attempt).traits
            if attempt.mlflow_run_id is None or not attempt.handle:
                if traits.whole_stages:  # a stage handed over by an engine that died mid-way
                    unfinished_stages.setdefault(task.node_id, []).append(
                        (task, attempt.id, attempt.mlflow_run_id)
                    )
                    continue
                count = partitions[task.node_id]
                launch = self.launcher.launch
                work.append(partial(launch, run, task, attempt.id, attempt.mlflow_run_id, count, True))
                continue
            seen = self._executor(attempt).observe(attempt.handle)
            if seen.phase == "running" and attempt.state == S.QUEUED:
                tx.mark_running(self.store, attempt.id)
            if seen.phase in ("exited", "lost"):
                work.append(partial(self.endings.finish, task, attempt, seen))
            elif not traits.own_deadlines and (deadline := self.endings.deadline(run.id, task, attempt)):
                if deadline > utcnow():
                    due = deadline if due is None else min(due, deadline)
                    continue
                self._executor(attempt).cancel(attempt.handle)
                timeout = self._dag(run.id).timeout(self.context.dags.task_node(run.id, task))
                error = f"timed out after {timeout:g}s"
                self.endings.end(task, attempt, AttemptState.FAILED, None, error, "KILLED")
        self.context.pool.run_all(work)
        for node_id, items in unfinished_stages.items():
            self.launcher.launch_stage(run, node_id, partitions[node_id], items, recover=True)
        return due

    def _renew_lease(self) -> None:
        """Within a long piece of a pass, renew the server's lease every few seconds; stop the pass if
        another server holds it now (it will pick the work up where this one left it)."""
        if time.monotonic() - self._lease_checked < LEASE_CHECK_SECONDS:
            return
        self._lease_checked = time.monotonic()
        if not self.context.keep_going():
            raise ConcurrentError("this engine lost its lease in the middle of a pass; another one goes on")

    def _executor(self, attempt: AttemptRow) -> Executor:
        return self.executors.get(attempt.executor)

    def _dispatch(self, run: RunRow) -> datetime | None:
        """Start ready tasks within the limits; when the next pass must come without an event (more ready
        tasks than one pass starts, a retry's backoff ending), else None."""
        dag = self._dag(run.id)
        local = self.executors.local
        local_active = reads.count_active(self.store, executor=local.name)
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
            if dag.placement(node):  # the whole stage at once; its executor keeps the parallelism
                self._hand_over_stage(run, stage.id, stage.node_id, stage.partitions or 1, now)
                continue
            if free <= 0:
                continue
            total = sum(states.values())
            active = sum(n for state, n in states.items() if state in ACTIVE)
            room = min(free, (dag.parallelism(node) or total) - active)
            for task in reads.ready_tasks(self.store, stage.id, now, max(room, 0)):
                attempt_id = tx.reserve_attempt(self.store, task.id, executor=local.name)
                task.attempts += 1  # as reserve_attempt just stored it: the new attempt's number
                launch = self.launcher.launch
                launches.append(partial(launch, run, task, attempt_id, None, stage.partitions or 1, False))
                free -= 1
        self.context.pool.run_all(launches)
        if len(launches) >= self.settings.dispatch_batch:
            return now  # a full batch: there may be more ready tasks and free slots
        return reads.next_retry(self.store, run.id, utcnow())

    def _hand_over_stage(
        self, run: RunRow, stage_id: int, node_id: str, partitions: int, now: datetime
    ) -> None:
        """Reserve attempts for a placed stage's ready tasks and start them on its executor in one go."""
        ready = reads.ready_tasks(self.store, stage_id, now, self.settings.stage_batch)
        if len(ready) == self.settings.stage_batch:
            self.wake.set()  # more to hand over: go on at once
        if not ready:
            return
        executor = self.executors.stage_executor()
        attempt_ids = tx.reserve_attempts(self.store, [t.id for t in ready], executor=executor.name)
        for task in ready:
            task.attempts += 1  # as reserve_attempts just stored it
        items: list[StageItem] = [(task, aid, None) for task, aid in zip(ready, attempt_ids, strict=True)]
        self.launcher.launch_stage(run, node_id, partitions, items, recover=False)

    # -- cached reads -----------------------------------------------------------------------------------
    def _dag(self, run_id: str) -> Dag:
        return self.context.dags.dag(run_id)

    def _forget(self, run_id: str) -> None:
        self.planning.forget(run_id)
        self._due.pop(run_id, None)
        self.context.dags.forget(run_id)
