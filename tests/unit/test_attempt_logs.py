"""Reading an attempt's log (engine/logs.py) on a real SQLite store: what "no log" means and what it says."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.test_store import new_run, task_ids

from concurrent_mlflow.engine.logs import open_log
from concurrent_mlflow.errors import NotFoundError
from concurrent_mlflow.executors.local import LocalExecutor
from concurrent_mlflow.executors.registry import Executors
from concurrent_mlflow.store import TaskState, open_store
from concurrent_mlflow.store import transitions as tx
from concurrent_mlflow.tracking import Tracking


def test_a_started_attempt_without_output_is_an_empty_log_and_an_ended_one_without_any_is_a_404(
    tmp_path: Path,
) -> None:
    store = open_store(str(tmp_path / "store.db"))
    run_id = new_run(store)
    first, _ = task_ids(store, run_id)
    attempt = tx.reserve_attempt(store, first, executor="local")
    executors = Executors(LocalExecutor(tmp_path / "logs", tmp_path / "scratch", fork=False))
    tracking = Tracking("http://127.0.0.1:9")  # never asked: the attempt has no MLflow run

    _reader, first_bytes = open_log(store, executors, tracking, run_id, "work", 0, None)
    assert first_bytes == b""  # queued: nothing written yet, and a follower waits for more

    tx.end_attempt(store, attempt, state=TaskState.CANCELLED, exit_code=None, error="cancelled")
    with pytest.raises(NotFoundError) as raised:
        open_log(store, executors, tracking, run_id, "work", 0, 1)
    assert str(raised.value) == (
        f"Run {run_id}: attempt 1 of work[0] left no log: its local executor has none and it has no MLflow run."
    )
    store.close()
