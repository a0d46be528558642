"""The states of runs, stages, tasks and attempts, and which moves between them are allowed."""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


# Runs, stages and attempts use the same words; a stage or run is `running` once anything in it started.
RunState = TaskState
StageState = TaskState

TERMINAL = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.SKIPPED})
ACTIVE = frozenset({TaskState.QUEUED, TaskState.RUNNING})

_S = TaskState
ALLOWED: dict[TaskState, frozenset[TaskState]] = {
    _S.PENDING: frozenset({_S.QUEUED, _S.RUNNING, _S.CANCELLED, _S.SKIPPED, _S.SUCCEEDED, _S.FAILED}),
    _S.QUEUED: frozenset({_S.RUNNING, _S.PENDING, _S.SUCCEEDED, _S.FAILED, _S.CANCELLED}),
    _S.RUNNING: frozenset({_S.PENDING, _S.SUCCEEDED, _S.FAILED, _S.CANCELLED}),
    # `concurrent run retry` sends what did not succeed back to pending.
    _S.FAILED: frozenset({_S.PENDING}),
    _S.CANCELLED: frozenset({_S.PENDING}),
    _S.SKIPPED: frozenset({_S.PENDING}),
    _S.SUCCEEDED: frozenset(),
}


def check_move(kind: str, ident: object, old: str, new: TaskState) -> None:
    """Refuse a move the state machine does not allow: a bug in the engine, never user error."""
    if new != old and new not in ALLOWED[TaskState(old)]:
        raise RuntimeError(f"{kind} {ident}: illegal state change {old} -> {new}")
