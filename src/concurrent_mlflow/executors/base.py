"""The executor contract: submit a task, observe it, cancel it, read its log.

The engine owns all state; an executor only answers "what is true now" for the handles it gave out, so an
engine that restarts can re-observe tasks by handle (local: process id; Kubernetes: labelled Job). It also
says when that may have changed (`wake_on_change`), so the engine waits for events rather than polling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Phase = Literal["queued", "running", "exited", "lost"]


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


class Executor(Protocol):
    name: str

    def submit(self, launch: TaskLaunch) -> tuple[dict[str, Any], str | None]:
        """Start the task; return a JSON-able handle and where its log is (a local path, if any)."""
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
