"""The executor contract: start tasks, observe them, cancel them, read their logs.

The engine owns all state; an executor only answers "what is true now" for the handles it gave out, so an
engine that restarts can re-observe tasks by handle (local: process id; Kubernetes: labelled Job). It also
says when that may have changed (`wake_on_change`), so the engine waits for events rather than polling.

An executor starts tasks one way or the other, as its `traits` say: one at a time (`submit`: the local
executor, whose slots are the machine's cores, shared by every run and stage, so the engine hands over
as many tasks as slots are free and each starts as soon as its child run exists) or a whole stage at once
(`start_stage`: Kubernetes, where one Indexed Job holds the stage and the cluster keeps its parallelism).
The traits also say how its tasks differ in what the engine must do itself (retries, timeouts, reading
the child run's status back), so the engine asks the executor instead of comparing executor names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Phase = Literal["queued", "running", "exited", "lost"]
KUBERNETES = "kubernetes"  # the name of the executor of nodes with a `placement`


@dataclass(frozen=True)
class ExecutorTraits:
    """What the engine must know of how an executor runs tasks."""

    whole_stages: bool = False
    """It starts a stage's tasks at once (`start_stage`), not one at a time (`submit`)."""
    retries_inside: bool = False
    """A started attempt has had the node's retries already (Kubernetes: `backoffLimitPerIndex`)."""
    own_deadlines: bool = False
    """It enforces the node's timeout itself (Kubernetes: `activeDeadlineSeconds`)."""
    exit_zero_is_success: bool = False
    """Exit code 0 means the worker marked its child run FINISHED: no need to read the status back."""


@dataclass(frozen=True)
class TaskLaunch:
    """Everything needed to start one attempt of one task."""

    run_id: str
    node_id: str
    partition: int
    partitions: int
    attempt: int
    parent_run_id: str
    child_run_id: str
    tracking_uri: str
    env: dict[str, str] = field(default_factory=dict)
    task: str | None = None  # a TaskFile's JSON: the spec and manifest, so the worker need not read MLflow


@dataclass(frozen=True)
class Observation:
    """What an executor sees of one task: its phase and, once exited, its exit code."""

    phase: Phase
    exit_code: int | None = None
    detail: str | None = None


@dataclass(frozen=True)
class StageTask:
    partition: int
    attempt: int
    child_run_id: str | None  # None: not made yet (the executor asks for it when its table chunk is due)


ChildRuns = Callable[[Sequence[StageTask]], Mapping[int, str]]
"""Makes the child runs of these tasks; returns partition -> child run id."""


@dataclass
class StageSubmission:
    handles: dict[int, dict[str, Any]] = field(default_factory=dict)  # partition -> handle
    failed: dict[int, str] = field(default_factory=dict)  # partition -> why it could not start


@dataclass(frozen=True)
class StageLaunch:
    """A stage's partitions to start at once, with what the DAG node says about where they run."""

    run_id: str
    node_id: str
    parent_run_id: str
    tracking_uri: str
    placement: Mapping[str, int]  # cluster -> weight
    tasks: Sequence[StageTask]
    parallelism: int
    retries: int
    timeout: float | None
    env: Mapping[str, str] = field(default_factory=dict)
    cpu: str | None = None
    memory: str | None = None
    gpu: int | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    image: str | None = None  # a docker_env project's own image, instead of the cluster's worker image
    secret_env: Mapping[str, str] = field(default_factory=dict)  # reaches the tasks through a Secret


class Executor(Protocol):
    name: str
    traits: ExecutorTraits

    def submit(self, launch: TaskLaunch) -> tuple[dict[str, Any], str | None]:
        """Start one task; return a JSON-able handle and where its log is (a local path, if any).
        Executors whose traits say `whole_stages` refuse it."""
        ...

    def start_stage(self, stage: StageLaunch, child_runs: ChildRuns) -> StageSubmission:
        """Start a stage's tasks (or adopt those an engine that died already started), asking `child_runs`
        for their child runs as it goes; the handle of each started task and why the others failed.
        Executors whose traits do not say `whole_stages` refuse it."""
        ...

    def find(self, launch: TaskLaunch) -> tuple[dict[str, Any], str | None] | None:
        """The task `launch` describes if it was already started (by an engine that died before it could
        record the handle), else None. Never starts anything."""
        ...

    def observe(self, handle: dict[str, Any]) -> Observation: ...

    def cancel(self, handle: dict[str, Any]) -> None:
        """Stop the task and everything it started. Safe to call on a task that already ended."""
        ...

    def read_log(self, handle: dict[str, Any]) -> bytes: ...

    def prepare(self) -> None:
        """Get ready for tasks in the background (the local fork server's imports); returns at once."""
        ...

    def wake_on_change(self, wake: Callable[[], None]) -> None:
        """Call `wake` (from any thread) when a task may have ended: the engine then observes at once."""
        ...

    def close(self) -> None:
        """Release what the executor holds (helper processes, watches); running tasks are left running."""
        ...
