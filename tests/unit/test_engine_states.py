"""The real engine, driven step by step by hypothesis through failures, restarts, cancels and retries.

The executor is scripted and in-process: its "workers" read their manifest from the real MLflow (a SQLite
tracking store in a temporary directory) and log an output per input file, each naming the source file it
descends from, the way the real worker logs its outputs index. So a run that ends `succeeded` can be checked
against what a user relies on: the gather stage at the end received every source file exactly once.

Rules: tasks finish or fail as drawn, the `custom` partitioner of the middle stage raises while it is
"broken", the source directory disappears and comes back, the engine object is dropped and rebuilt over the
same store, the run is cancelled, and an ended run is retried.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from mlflow.tracking import MlflowClient
from sqlalchemy import select

from concurrent_mlflow.dag import parse_dag
from concurrent_mlflow.engine import Engine
from concurrent_mlflow.engine.reconcile import EngineSettings
from concurrent_mlflow.executors.base import ExecutorTraits, Observation, TaskLaunch
from concurrent_mlflow.executors.registry import Executors
from concurrent_mlflow.manifest import InputItem
from concurrent_mlflow.store import AttemptRow, TaskRow, open_store
from concurrent_mlflow.store import transitions as tx
from concurrent_mlflow.store.db import Store
from concurrent_mlflow.store.queries import RunView, run_view
from concurrent_mlflow.tracking import OUTPUT_INDEX, Tracking

SOURCE_FILES = [f"f{i}.txt" for i in range(5)]
BROKEN = {"planner": False}


def split_unless_broken(items: Sequence[InputItem], n: int) -> list[list[InputItem]]:
    """The middle stage's `custom` partitioner: round robin, or a failure while the test breaks it."""
    if BROKEN["planner"]:
        raise ValueError("scripted planning failure")
    return [list(items[i::n]) for i in range(n)]


DAG = f"""
name: states
nodes:
  - {{id: src, kind: source, uri: data}}
  - {{id: work, kind: project, project: proj, partitions: 3, retries: 1}}
  - {{id: group, kind: project, project: proj, partitions: 2, retries: 0}}
  - {{id: total, kind: project, project: proj, retries: 0}}
edges:
  - {{from: src, to: work, input: files, partitioner: file}}
  - from: work
    to: group
    input: parts
    partitioner: {{kind: custom, function: "{__name__}:split_unless_broken"}}
  - {{from: group, to: total, input: parts, partitioner: gather}}
"""


@dataclass
class Job:
    launch: TaskLaunch
    phase: str = "running"
    exit_code: int | None = None


class ScriptedExecutor:
    """Stands for the world outside the engine: its jobs outlive any one engine object."""

    name = "scripted"
    traits = ExecutorTraits(exit_zero_is_success=True)  # as the local executor's workers

    def __init__(self, tracking: Tracking) -> None:
        self.tracking = tracking
        self.jobs: dict[str, Job] = {}

    @staticmethod
    def key(launch: TaskLaunch) -> str:
        return f"{launch.run_id}/{launch.node_id}/{launch.partition}/{launch.attempt}"

    def submit(self, launch: TaskLaunch) -> tuple[dict[str, Any], str | None]:
        self.jobs[self.key(launch)] = Job(launch)
        return {"key": self.key(launch)}, None

    def find(self, launch: TaskLaunch) -> tuple[dict[str, Any], str | None] | None:
        return ({"key": self.key(launch)}, None) if self.key(launch) in self.jobs else None

    def observe(self, handle: dict[str, Any]) -> Observation:
        job = self.jobs.get(handle["key"])
        if job is None:
            return Observation("lost")
        return Observation("exited" if job.phase == "exited" else "running", job.exit_code, "scripted")

    def cancel(self, handle: dict[str, Any]) -> None:
        job = self.jobs.get(handle["key"])
        if job is not None and job.phase == "running":
            job.phase, job.exit_code = "exited", -15

    def read_log(self, handle: dict[str, Any]) -> bytes:
        return b""

    def prepare(self) -> None:
        pass

    def wake_on_change(self, wake: Callable[[], None]) -> None:
        pass  # the tests tick the engine themselves

    def close(self) -> None:
        pass

    def running(self, run_id: str) -> list[str]:
        return sorted(k for k, job in self.jobs.items() if k.startswith(run_id) and job.phase == "running")

    def finish(self, key: str, ok: bool) -> None:
        """What a worker does: log one output per input file (naming its source file), end the child run."""
        job = self.jobs[key]
        launch = job.launch
        if ok:
            spec = self.tracking.read_spec(launch.parent_run_id, launch.node_id)
            manifest = self.tracking.read_manifest(
                launch.parent_run_id, launch.node_id, launch.partition, spec
            )
            items = [item for part in manifest.inputs.values() for item in part]
            sources = [str(item.metadata.get("source", item.relpath)) for item in items]
            files = [{"relpath": s, "size": 1, "metadata": {"source": s}} for s in sources]
            self.tracking.log_text(launch.child_run_id, json.dumps({"files": files}), OUTPUT_INDEX)
        self.tracking.terminate(launch.child_run_id, "FINISHED" if ok else "FAILED")
        job.phase, job.exit_code = "exited", 0 if ok else 1


@dataclass
class World:
    store: Store
    tracking: Tracking
    executor: ScriptedExecutor
    base_dir: Path
    settings: EngineSettings


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("engine-states")
    (root / "proj").mkdir()
    (root / "proj" / "MLproject").write_text("name: proj\nentry_points:\n  main:\n    command: 'true'\n")
    (root / "data").mkdir()
    for name in SOURCE_FILES:
        (root / "data" / name).write_text(name)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("states", artifact_location=(root / "artifacts").as_uri())
    tracking = Tracking(uri)
    store = open_store(str(root / "store.db"))
    settings = EngineSettings(cache_dir=root / "cache", max_parallel=8, retry_backoff=0.0, mlflow_threads=2)
    yield World(store, tracking, ScriptedExecutor(tracking), root, settings)
    store.close()


class EngineMachine(RuleBasedStateMachine):
    world: World  # set by the test below

    def __init__(self) -> None:
        super().__init__()
        BROKEN["planner"] = False
        self.engine = self.new_engine()
        dag = parse_dag(DAG)
        self.run_id = self.engine.start(dag, base_dir=self.world.base_dir, overrides={})
        self.checked: str | None = None

    @property
    def hidden(self) -> bool:
        return (self.world.base_dir / "hidden").exists()

    def new_engine(self) -> Engine:
        executors = Executors(self.world.executor)
        return Engine(self.world.store, self.world.tracking, executors, self.world.settings)

    def tick_and_settle(self) -> bool:
        """One pass, then until the plans it started are done (they run in threads; the next pass records
        them), so an example replays the same way."""
        ended = self.engine.tick(self.run_id)
        deadline = time.monotonic() + 60
        while self.engine.planning.planner.planning(self.run_id):
            assert time.monotonic() < deadline, "a plan never finished"
            time.sleep(0.01)
        return ended

    def view(self) -> RunView:
        found = run_view(self.world.store, self.run_id)
        assert found is not None
        return found

    def ended(self) -> bool:
        return self.view().state in ("succeeded", "failed", "cancelled")

    # -- rules ------------------------------------------------------------------------------------------
    @initialize()
    def first_pass(self) -> None:
        self.tick_and_settle()

    @rule()
    def tick(self) -> None:
        self.tick_and_settle()

    @rule(outcomes=st.lists(st.booleans(), min_size=1, max_size=4))
    def tasks_end(self, outcomes: list[bool]) -> None:
        for key, ok in zip(self.world.executor.running(self.run_id), outcomes, strict=False):
            self.world.executor.finish(key, ok)

    @rule()
    def break_planner(self) -> None:
        BROKEN["planner"] = True

    @rule()
    def fix_planner(self) -> None:
        BROKEN["planner"] = False

    @precondition(lambda self: not self.hidden)
    @rule()
    def hide_source(self) -> None:
        (self.world.base_dir / "data").rename(self.world.base_dir / "hidden")

    @precondition(lambda self: self.hidden)
    @rule()
    def restore_source(self) -> None:
        (self.world.base_dir / "hidden").rename(self.world.base_dir / "data")

    @rule()
    def restart_engine(self) -> None:
        self.engine.close()
        self.engine = self.new_engine()

    @rule()
    def cancel(self) -> None:
        tx.request_cancel(self.world.store, self.run_id, "cancelled by the test")
        self.tick_and_settle()

    @precondition(lambda self: self.ended() and self.view().state != "succeeded")
    @rule()
    def retry(self) -> None:
        self.engine.retry(self.run_id)

    @rule()
    def drive_to_the_end(self) -> None:
        """Let every task succeed until the run ends (what most runs do), within a bounded number of passes."""
        for _ in range(40):
            if self.tick_and_settle():
                return
            for key in self.world.executor.running(self.run_id):
                self.world.executor.finish(key, True)
        raise AssertionError(f"run {self.run_id} did not end: {self.view()}")

    # -- invariants -------------------------------------------------------------------------------------
    @invariant()
    def no_stage_succeeds_without_partitions(self) -> None:
        for stage in self.view().stages:
            if stage.state == "succeeded" and stage.node_id != "src":
                assert stage.partitions, f"{stage.node_id} succeeded with {stage.partitions!r} partitions"
                assert stage.counts == {"succeeded": stage.partitions}, stage

    @invariant()
    def no_attempt_outlives_its_run(self) -> None:
        if not self.ended():
            return
        with self.world.store.transaction() as session:
            open_attempts = session.scalars(
                select(AttemptRow.id)
                .join(TaskRow, AttemptRow.task_id == TaskRow.id)
                .where(TaskRow.run_id == self.run_id, AttemptRow.state.in_(["queued", "running"]))
            ).all()
        assert not open_attempts, f"attempts {open_attempts} still active after the run ended"

    @invariant()
    def a_succeeded_run_has_every_output_exactly_once(self) -> None:
        view = self.view()
        if view.state != "succeeded" or self.checked == view.state:
            return
        self.checked = view.state
        with self.world.store.transaction() as session:
            tasks = session.scalars(select(TaskRow).where(TaskRow.run_id == self.run_id)).all()
        for stage in view.stages[1:]:
            partitions = sorted(t.partition for t in tasks if t.node_id == stage.node_id)
            assert partitions == list(range(stage.partitions or 0)), stage
        finished = Counter(
            (c.data.tags["concurrent.node"], c.data.tags["concurrent.partition"])
            for c in self.world.tracking.client.search_runs(
                [view.experiment_id or "0"],
                f"tags.`mlflow.parentRunId` = '{view.mlflow_run_id}' and attributes.status = 'FINISHED'",
            )
        )
        assert set(finished.values()) == {1}, f"a partition completed more than once: {finished}"
        assert len(finished) == sum(s.partitions or 0 for s in view.stages)
        (total,) = (t for t in tasks if t.node_id == "total")
        assert total.mlflow_run_id is not None
        received = [item.relpath for item in self.world.tracking.read_outputs(total.mlflow_run_id, 0)]
        assert sorted(received) == [f"part-00000/{name}" for name in SOURCE_FILES]

    def teardown(self) -> None:
        """Leave nothing running for the next example (the executor and store are shared)."""
        try:
            if not self.ended():
                self.engine.cancel(self.run_id, "the example ended")
        finally:
            self.engine.close()
            BROKEN["planner"] = False
            if self.hidden:
                (self.world.base_dir / "hidden").rename(self.world.base_dir / "data")


def test_engine_keeps_its_promises_through_failures_restarts_cancels_and_retries(world: World) -> None:
    EngineMachine.world = world
    EngineMachine.TestCase.settings = settings(
        max_examples=12,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    EngineMachine.TestCase().runTest()
