"""Planning off the engine's loop.

Planning a stage lists its inputs (a bucket, a directory, every upstream task's output index), partitions
them and stores the manifests: seconds for most stages, minutes for a large or slow one. It runs here, in
background threads, so a pass over the runs never waits for it: other runs keep dispatching, and a cancel
applies at the next pass. The engine starts a stage's plan, finds it still running on later passes, and
records the result once it is done; nothing is written to the store from these threads.

Plan threads are daemons and nobody joins them: a listing hung on an unanswering endpoint never keeps a
cancelled run, a closing engine or an exiting CLI waiting; its stop flag is set and its result dropped.

`StagePlanning` is the engine's side: which stages are ready to plan, which are skipped downstream of a
failure, and recording each plan in the store once done.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from functools import partial
from pathlib import Path

from concurrent_mlflow.advice import planning_failure
from concurrent_mlflow.dag import Dag, ProjectNode, SourceNode
from concurrent_mlflow.engine import reads
from concurrent_mlflow.engine.context import EngineContext
from concurrent_mlflow.errors import ConcurrentError, PlanStopped
from concurrent_mlflow.manifest import InputItem, ProjectSpec
from concurrent_mlflow.plan import list_source, plan_stage
from concurrent_mlflow.store import RunRow, TaskState
from concurrent_mlflow.store import transitions as tx
from concurrent_mlflow.store.states import StageState

log = logging.getLogger("concurrent.engine")
S = TaskState

# A plan gets a "should I stop?" callable to ask between long steps; it returns the stage's input sizes.
PlanJob = Callable[[Callable[[], bool]], list[int]]


class Planner:
    def __init__(self, on_done: Callable[[], None] = lambda: None) -> None:
        self._on_done = on_done  # wakes the engine's driver, which records the plan on its next pass
        self._jobs: dict[tuple[str, str], Future[list[int]]] = {}
        self._stops: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def poll(self, run_id: str, node_id: str, job: PlanJob) -> Future[list[int]] | None:
        """The stage's finished plan (taken: asked again, it starts a new one), or None while it runs;
        the first call starts `job`."""
        key = (run_id, node_id)
        with self._lock:
            future = self._jobs.get(key)
            if future is None:
                stop = self._stops.setdefault(run_id, threading.Event())
                self._jobs[key] = self._start(f"concurrent-plan-{node_id}", job, stop)
                return None
            if not future.done():
                return None
            del self._jobs[key]
            return future

    def planning(self, run_id: str) -> list[str]:
        """Nodes of the run whose plans are running now."""
        with self._lock:
            return [node for (run, node), future in self._jobs.items() if run == run_id and not future.done()]

    def stop(self, run_id: str) -> None:
        """The run is ending (or has ended): its plans stop at their next check, their results are dropped,
        and a later plan of it (after a retry) starts afresh."""
        with self._lock:
            self._stops.pop(run_id, threading.Event()).set()
            for key in [k for k in self._jobs if k[0] == run_id]:
                self._jobs.pop(key).cancel()

    def close(self) -> None:
        """Stop every plan at its next check; nothing waits for them (see the module's docstring)."""
        with self._lock:
            for stop in self._stops.values():
                stop.set()
            self._jobs.clear()

    def _start(self, name: str, job: PlanJob, stop: threading.Event) -> Future[list[int]]:
        future: Future[list[int]] = Future()

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return  # the run was stopped before this thread began
            try:
                future.set_result(job(stop.is_set))
            except Exception as exc:  # handed to the engine's pass, which records or re-raises it
                future.set_exception(exc)
            self._on_done()

        threading.Thread(target=work, name=name, daemon=True).start()
        return future


class StagePlanning:
    """Plans a run's stages as their upstream stages succeed, and skips those downstream of a failure."""

    def __init__(self, context: EngineContext) -> None:
        self.c = context
        self.planner = Planner(on_done=context.wake.set)
        self._outputs: dict[tuple[str, str], list[InputItem]] = {}

    def advance(self, run: RunRow) -> None:
        """Skip stages downstream of a failure, start or record plans of stages whose upstream stages
        succeeded; again while that changes a stage (a source's listing frees its consumers at once)."""
        while self._pass(run):
            pass

    def forget(self, run_id: str) -> None:
        self.planner.stop(run_id)
        for key in [k for k in self._outputs if k[0] == run_id]:
            del self._outputs[key]

    def _pass(self, run: RunRow) -> bool:
        dag = self.c.dags.dag(run.id)
        stages = reads.stages(self.c.store, run.id)
        states = {s.node_id: s.state for s in stages}
        partitions = {s.node_id: s.partitions or 0 for s in stages}
        changed = False
        for node_id, state in states.items():
            if state != S.PENDING:
                continue
            bad = [u for u in dag.upstream(node_id) if states[u] in (S.FAILED, S.SKIPPED, S.CANCELLED)]
            if bad:
                reason = f"skipped: upstream {', '.join(bad)} did not succeed"
                tx.end_stage(self.c.store, run.id, node_id, StageState.SKIPPED, reason)
                changed = True
            elif all(states[u] == S.SUCCEEDED for u in dag.upstream(node_id)):
                changed = self._plan(run, dag, node_id, partitions) or changed
        return changed

    def _plan(self, run: RunRow, dag: Dag, node_id: str, partitions: Mapping[str, int]) -> bool:
        """Start the stage's plan in the background, or record it once it is done; True if the stage's
        state changed."""
        done = self.planner.poll(run.id, node_id, partial(self._make_plan, run, dag, node_id, partitions))
        if done is None or done.cancelled():
            return False
        try:
            input_bytes = done.result()
        except PlanStopped:
            return False  # the run is being cancelled; the cancel ends the stage
        except ConcurrentError as exc:
            log.error("cannot plan %s: %s", node_id, exc)
            # No partitions recorded: the stage stays unplanned, so a retry plans it again.
            tx.end_stage(self.c.store, run.id, node_id, StageState.FAILED, planning_failure(exc))
            return True
        if isinstance(dag.node(node_id), SourceNode):
            tx.settle_source(self.c.store, run.id, node_id)
        else:
            tx.plan_stage(self.c.store, run.id, node_id, input_bytes)
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
        self.c.settings.policy.check_node(dag, node, Path(run.base_dir))
        if isinstance(node, SourceNode):
            self._outputs_of(run, node_id)
            return []
        plan = plan_stage(
            dag,
            node_id,
            base_dir=Path(run.base_dir),
            cache_dir=self.c.settings.cache_dir,
            outputs_of=lambda n: self._outputs_of(run, n, should_stop),
            upstream_partitions=partitions,
        )
        assert run.mlflow_run_id
        self.c.plans.store(run.id, run.mlflow_run_id, node_id, plan.spec, plan.manifests, should_stop)
        projects = [n.id for n in dag.nodes if isinstance(n, ProjectNode)]
        if isinstance(plan.spec, ProjectSpec) and projects == [node_id]:
            # The DAG run is a run of this one project: its parent says so as `mlflow run`'s own run does.
            self.c.tracking.set_tags(run.mlflow_run_id, plan.spec.tags)
        return [m.input_bytes() for m in plan.manifests]

    def _outputs_of(
        self, run: RunRow, node_id: str, should_stop: Callable[[], bool] = lambda: False
    ) -> list[InputItem]:
        key = (run.id, node_id)
        if key not in self._outputs:
            node = self.c.dags.dag(run.id).node(node_id)
            if isinstance(node, SourceNode):
                window = (run.window_start, run.window_end) if node.incremental else (None, None)
                check = self.c.settings.policy.link_check(f"nodes.{node_id}.uri")
                self._outputs[key] = list_source(node, Path(run.base_dir), *window, check_link=check)
            else:
                stage = next(s for s in reads.stages(self.c.store, run.id) if s.node_id == node_id)
                items: list[InputItem] = []
                for task in reads.stage_tasks(self.c.store, stage.id):
                    if should_stop():  # reading thousands of output indexes takes a while
                        raise PlanStopped(f"planning stopped while reading the outputs of {node_id}")
                    if task.mlflow_run_id:
                        items.extend(self.c.tracking.read_outputs(task.mlflow_run_id, task.partition))
                self._outputs[key] = items
        return self._outputs[key]
