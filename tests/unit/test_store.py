"""The run store on real SQLite and PostgreSQL databases: transitions, their guards, retry bookkeeping."""

from __future__ import annotations

from datetime import timedelta

import pytest

from concurrent_mlflow.errors import ConflictError, RunNotFoundError
from concurrent_mlflow.store import TaskRow, TaskState
from concurrent_mlflow.store import transitions as tx
from concurrent_mlflow.store.db import Store
from concurrent_mlflow.store.queries import failed_attempts, run_view

S = TaskState


def new_run(store: Store) -> str:
    run_id = tx.create_run(
        store, dag_name="d", dag_yaml="name: d", base_dir="/", node_ids=["src", "work"], overrides={}
    )
    tx.attach_mlflow(store, run_id, mlflow_run_id="parent", experiment_id="1")
    tx.plan_stage(store, run_id, "work", [10, 20])
    return run_id


def task_ids(store: Store, run_id: str) -> list[int]:
    with store.transaction() as session:
        return [t.id for t in session.query(TaskRow).filter_by(run_id=run_id).order_by(TaskRow.partition)]


def test_planning_creates_pending_tasks_and_views_count_them(store: Store) -> None:
    run_id = new_run(store)
    view = run_view(store, run_id)
    assert view is not None and view.state == "running"
    work = next(s for s in view.stages if s.node_id == "work")
    assert (work.state, work.partitions, work.counts) == ("running", 2, {"pending": 2})


def test_failed_attempt_with_retry_left_goes_back_to_pending_with_a_delay(store: Store) -> None:
    run_id = new_run(store)
    first, _ = task_ids(store, run_id)
    attempt = tx.start_attempt(store, first, executor="local", mlflow_run_id="c1", handle={}, log_path="/l")
    tx.mark_running(store, attempt)
    tx.end_attempt(
        store, attempt, state=S.FAILED, exit_code=3, error="exit code 3", retry_in=timedelta(seconds=5)
    )
    with store.transaction() as session:
        task = session.get_one(TaskRow, first)
        assert (task.state, task.attempts, task.error) == ("pending", 1, "exit code 3")
        assert task.retry_at is not None
    second = tx.start_attempt(store, first, executor="local", mlflow_run_id="c2", handle={}, log_path="/l2")
    tx.end_attempt(store, second, state=S.FAILED, exit_code=1, error="exit code 1")
    (failure,) = failed_attempts(store, run_id)
    assert (failure.partition, failure.attempt, failure.mlflow_run_id, failure.log_path) == (
        0,
        2,
        "c2",
        "/l2",
    )


def test_illegal_moves_are_refused(store: Store) -> None:
    run_id = new_run(store)
    first, _ = task_ids(store, run_id)
    attempt = tx.start_attempt(store, first, executor="local", mlflow_run_id="c1", handle={}, log_path=None)
    tx.end_attempt(store, attempt, state=S.SUCCEEDED, exit_code=0)
    with pytest.raises(RuntimeError, match="illegal state change succeeded -> failed"):
        tx.end_attempt(store, attempt, state=S.FAILED)
    with pytest.raises(RuntimeError, match="illegal state change succeeded -> queued"):
        tx.start_attempt(store, first, executor="local", mlflow_run_id="c9", handle={}, log_path=None)


def test_retry_resets_only_unfinished_work_and_keeps_attempt_numbers(store: Store) -> None:
    run_id = new_run(store)
    ok, bad = task_ids(store, run_id)
    for task_id, state in ((ok, S.SUCCEEDED), (bad, S.FAILED)):
        attempt = tx.start_attempt(
            store, task_id, executor="local", mlflow_run_id=f"c{task_id}", handle={}, log_path=None
        )
        tx.end_attempt(store, attempt, state=state)
    tx.end_stage(store, run_id, "work", S.FAILED, "1 of 2 failed")
    with pytest.raises(ConflictError, match="still running"):
        tx.reset_for_retry(store, run_id)
    tx.finish_run(store, run_id, S.FAILED, "work failed")

    assert tx.reset_for_retry(store, run_id) == 1

    with store.transaction() as session:
        kept, redo = session.get_one(TaskRow, ok), session.get_one(TaskRow, bad)
        assert (kept.state, redo.state, redo.attempts, redo.retry_base) == ("succeeded", "pending", 1, 1)
    view = run_view(store, run_id)
    assert view is not None and view.state == "running"
    assert next(s for s in view.stages if s.node_id == "work").state == "running"
    again = tx.start_attempt(store, bad, executor="local", mlflow_run_id="c-again", handle={}, log_path=None)
    with store.transaction() as session:
        assert session.get_one(TaskRow, bad).attempt_rows[-1].number == 2
        assert again


def test_unknown_run_says_how_to_find_runs(store: Store) -> None:
    with pytest.raises(RunNotFoundError, match="concurrent runs list"):
        tx.finish_run(store, "nope", S.FAILED)
