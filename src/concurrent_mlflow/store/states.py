"""The states of runs, stages, tasks and attempts, and which moves between them are allowed.

Each level has its own enum and its own table of moves; `store.transitions` checks every write against
them (bulk updates included), so a state the tables do not allow can never be stored. The values are the
words the database, the API and the UI have always used.

`concurrent run retry` is the only way back from an ended state. Its moves are a separate table per level
(`Machine.retry`), allowed only where `transitions.reset_for_retry` asks for them with `retry=True`:

    run      failed, cancelled          -> running
    stage    failed, cancelled          -> running   (it has tasks: its manifests are kept)
             failed, cancelled, skipped -> pending   (it has none: it is planned again)
    task     failed, cancelled, skipped -> pending
    attempt  (none: a retry makes a new attempt)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class RunState(StrEnum):
    PENDING = "pending"  # stored; its MLflow parent run is not open yet
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StageState(StrEnum):
    PENDING = "pending"  # not planned: waits for its upstream stages
    RUNNING = "running"  # planned: it has its tasks
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # an upstream stage did not succeed


class TaskState(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"  # an attempt is reserved
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


class AttemptState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Words shared by every level, for queries over any of them.
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled", "skipped"})
ACTIVE: frozenset[str] = frozenset({"queued", "running"})

Moves = Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class Machine:
    """One level's states: the moves the engine makes, and the moves only a retry makes."""

    kind: str
    states: frozenset[str]
    moves: Moves
    retry: Moves

    def allows(self, old: str, new: str, *, retry: bool = False) -> bool:
        table = self.retry if retry else self.moves
        return old in self.states and new in self.states and (new == old or new in table.get(old, ()))

    def sources(self, new: str, *, retry: bool = False) -> frozenset[str]:
        """Every state that may move to `new`: what a bulk update may touch (besides `new` itself)."""
        table = self.retry if retry else self.moves
        return frozenset(old for old, targets in table.items() if new in targets)

    def check(self, ident: object, old: str, new: str, *, retry: bool = False) -> None:
        """Refuse a move the tables do not allow: a bug in the engine, never user error."""
        if not self.allows(old, new, retry=retry):
            how = "a retry's" if retry else "a"
            raise RuntimeError(f"{self.kind} {ident}: illegal state change {old} -> {new} ({how} move)")


def _table(moves: Mapping[StrEnum, set[StrEnum]]) -> dict[str, frozenset[str]]:
    return {str(old): frozenset(str(new) for new in targets) for old, targets in moves.items()}


_R, _G, _T, _A = RunState, StageState, TaskState, AttemptState

RUN = Machine(
    "run",
    frozenset(_R),
    _table(
        {
            _R.PENDING: {_R.RUNNING, _R.FAILED, _R.CANCELLED},
            _R.RUNNING: {_R.SUCCEEDED, _R.FAILED, _R.CANCELLED},
        }
    ),
    retry=_table({_R.FAILED: {_R.RUNNING}, _R.CANCELLED: {_R.RUNNING}}),
)

STAGE = Machine(
    "stage",
    frozenset(_G),
    _table(
        {
            # pending -> succeeded: a source stage, which has no tasks (`transitions.settle_source`);
            # pending -> failed: planning failed, so it has no tasks either.
            _G.PENDING: {_G.RUNNING, _G.SUCCEEDED, _G.FAILED, _G.CANCELLED, _G.SKIPPED},
            _G.RUNNING: {_G.SUCCEEDED, _G.FAILED, _G.CANCELLED},
        }
    ),
    retry=_table(
        {
            _G.FAILED: {_G.RUNNING, _G.PENDING},
            _G.CANCELLED: {_G.RUNNING, _G.PENDING},
            _G.SKIPPED: {_G.PENDING},
        }
    ),
)

TASK = Machine(
    "task",
    frozenset(_T),
    _table(
        {
            _T.PENDING: {_T.QUEUED, _T.CANCELLED, _T.SKIPPED},
            # -> pending: the attempt failed with a retry left (after a backoff)
            _T.QUEUED: {_T.RUNNING, _T.PENDING, _T.SUCCEEDED, _T.FAILED, _T.CANCELLED},
            _T.RUNNING: {_T.PENDING, _T.SUCCEEDED, _T.FAILED, _T.CANCELLED},
        }
    ),
    retry=_table({_T.FAILED: {_T.PENDING}, _T.CANCELLED: {_T.PENDING}, _T.SKIPPED: {_T.PENDING}}),
)

ATTEMPT = Machine(
    "attempt",
    frozenset(_A),
    _table(
        {
            _A.QUEUED: {_A.RUNNING, _A.SUCCEEDED, _A.FAILED, _A.CANCELLED},
            _A.RUNNING: {_A.SUCCEEDED, _A.FAILED, _A.CANCELLED},
        }
    ),
    retry={},
)
