"""An attempt's log, wherever it is now: one reader for the API, the UI's log viewer and `concurrent logs`.

The log comes from the executor that ran the attempt (named on the attempt, looked up in the shared
registry): a local worker's file, or a pod's log through the Kubernetes API server, which also gives a
running task's output as it is written. Once the attempt has ended and its executor has nothing (the pods
were deleted, the cluster is gone, the file was cleaned up), the copy the engine saved in the attempt's
child run (`logs/task.log`) is read instead, so a log outlives its pod. Only an ended attempt with neither
has no log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from concurrent_mlflow.errors import ConcurrentError, NotFoundError, TrackingError
from concurrent_mlflow.executors.registry import Executors
from concurrent_mlflow.store import AttemptRow, Store, queries
from concurrent_mlflow.store.states import ACTIVE
from concurrent_mlflow.tracking import TASK_LOG, Tracking

log = logging.getLogger("concurrent.engine")


class AttemptLog:
    """One attempt's log being read: `more()` reads it again and returns only what is new."""

    def __init__(self, store: Store, executors: Executors, tracking: Tracking, attempt: AttemptRow) -> None:
        self.store, self.executors, self.tracking, self.attempt = store, executors, tracking, attempt
        self.sent = 0
        self.ended = False

    def more(self) -> bytes | None:
        """What was written since the last call (b"" if nothing); None: the attempt has ended and left no
        log anywhere. Sets `ended` once the attempt has ended (the bytes returned then are the last)."""
        self.attempt = queries.find_attempt_by_id(self.store, self.attempt.id) or self.attempt
        self.ended = self.attempt.state not in ACTIVE  # read before the log, so nothing written is missed
        content: bytes | None = self._from_executor()
        if not content and self.ended:
            content = self._saved()
        if content is None:
            return None
        new = content[self.sent :]
        self.sent = max(self.sent, len(content))
        return new

    def _from_executor(self) -> bytes:
        if not self.attempt.handle:  # not started yet, or never started
            return b""
        try:
            return self.executors.get(self.attempt.executor).read_log(self.attempt.handle)
        except ConcurrentError as exc:
            log.warning("could not read the log of attempt %d from its executor: %s", self.attempt.id, exc)
            return b""

    def _saved(self) -> bytes | None:
        if not self.attempt.mlflow_run_id:
            return None
        try:
            return self.tracking.read_bytes(self.attempt.mlflow_run_id, TASK_LOG)
        except TrackingError:
            raise  # MLflow unreachable is not "no log": say so
        except ConcurrentError:
            return None


def open_log(
    store: Store,
    executors: Executors,
    tracking: Tracking,
    run_id: str,
    node: str,
    partition: int,
    number: int | None,
) -> tuple[AttemptLog, bytes]:
    """The log of attempt `number` (the latest if None) of `node[partition]` and its content so far; raises
    NotFoundError, naming the task and attempt, if there is no such attempt or no log of it anywhere."""
    which = f"attempt {number}" if number else "attempt"
    attempt = queries.find_attempt(store, run_id, node, partition, number)
    if attempt is None:
        raise NotFoundError(f"Run {run_id} has no {which} of {node}[{partition}] (yet).")
    reader = AttemptLog(store, executors, tracking, attempt)
    first = reader.more()
    if first is None:
        run = attempt.mlflow_run_id
        saved = f"its MLflow run {run} has no {TASK_LOG}" if run else "it has no MLflow run"
        raise NotFoundError(
            f"Run {run_id}: attempt {attempt.number} of {node}[{partition}] left no log: "
            f"its {attempt.executor} executor has none and {saved}."
        )
    return reader, first


def follow(reader: AttemptLog, first: bytes, poll_seconds: float) -> Iterator[bytes]:
    """`first`, then what is new every `poll_seconds`, until the attempt has ended (for a thread of its own;
    the server follows with asyncio instead, see routes/runs.py)."""
    if first:
        yield first
    while not reader.ended:
        time.sleep(poll_seconds)
        chunk = reader.more()
        if chunk:
            yield chunk
