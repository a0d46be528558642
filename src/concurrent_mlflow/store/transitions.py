"""Every change of a run's, stage's, task's or attempt's state, each in one transaction.

Nothing else writes a state column. A control plane that dies between two of these calls restarts from a
consistent store: a task is never half-dispatched (its attempt row and its state change commit together).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from concurrent_mlflow.errors import ConflictError, RunNotFoundError
from concurrent_mlflow.store.db import Store
from concurrent_mlflow.store.lease import db_now
from concurrent_mlflow.store.models import AttemptRow, RunRow, StageRow, TaskRow, utcnow
from concurrent_mlflow.store.states import TERMINAL, TaskState, check_move

S = TaskState


def create_run(
    store: Store,
    *,
    dag_name: str,
    dag_yaml: str,
    base_dir: str,
    node_ids: Sequence[str],
    overrides: dict[str, str],
    dag_version: int | None = None,
    created_by: str | None = None,
    schedule_id: int | None = None,
    window: tuple[datetime, datetime] | None = None,
    driver: str | None = None,
    driver_ttl: timedelta = timedelta(0),
) -> str:
    """A new run, pending until the engine opens its MLflow parent run. A `driver` (`store.drivers`) holds
    it from the start, so no server's engine ever ticks it; without one the server's engine drives it."""
    run_id = uuid.uuid4().hex[:12]
    with store.transaction() as session:
        expires = db_now(session, store) + driver_ttl if driver else None
        run = RunRow(
            id=run_id,
            dag_name=dag_name,
            dag_yaml=dag_yaml,
            base_dir=base_dir,
            overrides=overrides,
            dag_version=dag_version,
            created_by=created_by,
            schedule_id=schedule_id,
            window_start=window[0] if window else None,
            window_end=window[1] if window else None,
            driver=driver,
            driver_expires_at=expires,
        )
        session.add(run)
        session.add_all(StageRow(run_id=run_id, node_id=n, state=S.PENDING) for n in node_ids)
    return run_id


def request_cancel(store: Store, run_id: str, reason: str) -> bool:
    """Ask the engine to cancel a run; False if it has already ended."""
    with store.transaction() as session:
        run = _run(session, run_id)
        if run.state in TERMINAL:
            return False
        run.cancel_requested = run.cancel_requested or reason
        return True


def attach_mlflow(store: Store, run_id: str, *, mlflow_run_id: str, experiment_id: str) -> None:
    with store.transaction() as session:
        run = _run(session, run_id)
        run.mlflow_run_id, run.experiment_id = mlflow_run_id, experiment_id
        check_move("run", run_id, run.state, S.RUNNING)
        run.state = S.RUNNING


def finish_run(store: Store, run_id: str, state: TaskState, error: str | None = None) -> None:
    with store.transaction() as session:
        run = _run(session, run_id)
        check_move("run", run_id, run.state, state)
        run.state, run.error, run.finished_at = state, error, utcnow()


def plan_stage(store: Store, run_id: str, node_id: str, input_bytes: Sequence[int]) -> None:
    """A stage's manifests are stored: create its tasks (pending) and mark it running."""
    with store.transaction() as session:
        stage = _stage(session, run_id, node_id)
        check_move("stage", node_id, stage.state, S.RUNNING)
        stage.state, stage.partitions = S.RUNNING, len(input_bytes)
        session.add_all(
            TaskRow(
                run_id=run_id, stage_id=stage.id, node_id=node_id, partition=i, state=S.PENDING, input_bytes=b
            )
            for i, b in enumerate(input_bytes)
        )


def end_stage(store: Store, run_id: str, node_id: str, state: TaskState, error: str | None = None) -> None:
    """Finish a stage; a stage that ends unplanned or unfinished takes its open tasks with it."""
    with store.transaction() as session:
        stage = _stage(session, run_id, node_id)
        check_move("stage", node_id, stage.state, state)
        stage.state, stage.error = state, error
        if state in (S.SKIPPED, S.CANCELLED):
            session.execute(
                update(TaskRow)
                .where(TaskRow.stage_id == stage.id, TaskRow.state.in_([S.PENDING, S.QUEUED, S.RUNNING]))
                .values(state=state)
            )


def reserve_attempt(store: Store, task_id: int, *, executor: str) -> int:
    """Record an attempt before anything exists outside the store, so a restart finds and finishes it.

    The child run and the executor's handle are attached by `attach_child` and `attach_handle`; an attempt
    missing either after a restart is completed by the engine (found again, or created), never duplicated.
    """
    return reserve_attempts(store, [task_id], executor=executor)[0]


def reserve_attempts(store: Store, task_ids: Sequence[int], *, executor: str) -> list[int]:
    """`reserve_attempt` for many tasks in one transaction (a stage handed to Kubernetes at once)."""
    with store.transaction() as session:
        attempts = []
        for task_id in task_ids:
            task = session.get_one(TaskRow, task_id)
            check_move("task", task_id, task.state, S.QUEUED)
            task.attempts += 1
            task.state, task.retry_at = S.QUEUED, None
            attempt = AttemptRow(
                task_id=task_id, number=task.attempts, state=S.QUEUED, executor=executor, handle={}
            )
            session.add(attempt)
            attempts.append(attempt)
        session.flush()
        return [a.id for a in attempts]


def attach_child(store: Store, attempt_id: int, mlflow_run_id: str) -> None:
    with store.transaction() as session:
        attempt = session.get_one(AttemptRow, attempt_id)
        attempt.mlflow_run_id = attempt.task.mlflow_run_id = mlflow_run_id


def attach_handle(store: Store, attempt_id: int, handle: dict[str, Any], log_path: str | None) -> None:
    with store.transaction() as session:
        attempt = session.get_one(AttemptRow, attempt_id)
        attempt.handle, attempt.log_path = handle, log_path


def attach_handles(store: Store, handles: Mapping[int, dict[str, Any]]) -> None:
    """`attach_handle` for many attempts in one transaction: all of a Job's partitions, or none."""
    with store.transaction() as session:
        for attempt_id, handle in handles.items():
            session.get_one(AttemptRow, attempt_id).handle = handle


def start_attempt(
    store: Store,
    task_id: int,
    *,
    executor: str,
    mlflow_run_id: str,
    handle: dict[str, Any],
    log_path: str | None,
) -> int:
    """Reserve, attach the child run and the handle in one go (for callers that already have all three)."""
    attempt_id = reserve_attempt(store, task_id, executor=executor)
    attach_child(store, attempt_id, mlflow_run_id)
    attach_handle(store, attempt_id, handle, log_path)
    return attempt_id


def mark_running(store: Store, attempt_id: int) -> None:
    with store.transaction() as session:
        attempt = session.get_one(AttemptRow, attempt_id)
        if attempt.state == S.QUEUED:
            attempt.state = S.RUNNING
            attempt.task.state = S.RUNNING


def end_attempt(
    store: Store,
    attempt_id: int,
    *,
    state: TaskState,
    exit_code: int | None = None,
    error: str | None = None,
    retry_in: timedelta | None = None,
) -> None:
    """An attempt ended; a failed one with a retry left sends its task back to pending after `retry_in`."""
    with store.transaction() as session:
        attempt = session.get_one(AttemptRow, attempt_id)
        task = attempt.task
        check_move("attempt", attempt_id, attempt.state, state)
        attempt.state, attempt.exit_code, attempt.error, attempt.finished_at = (
            state,
            exit_code,
            error,
            utcnow(),
        )
        task_state = S.PENDING if (state == S.FAILED and retry_in is not None) else state
        check_move("task", task.id, task.state, task_state)
        task.state, task.error = task_state, error
        task.retry_at = utcnow() + retry_in if task_state == S.PENDING and retry_in is not None else None


def reset_for_retry(store: Store, run_id: str) -> int:
    """`concurrent run retry`: unfinished work goes back to pending; succeeded tasks keep their outputs."""
    with store.transaction() as session:
        run = _run(session, run_id)
        if run.state not in TERMINAL:
            raise ConflictError(f"Run {run_id} is still {run.state}; retry it once it has ended.")
        reset = session.execute(
            update(TaskRow)
            .where(TaskRow.run_id == run_id, TaskRow.state.in_([S.FAILED, S.CANCELLED, S.SKIPPED]))
            .values(state=S.PENDING, retry_base=TaskRow.attempts, error=None, retry_at=None)
        )
        count = int(getattr(reset, "rowcount", 0))
        for stage in run.stages:
            if stage.state == S.SUCCEEDED:
                continue
            # A stage that never planned plans again; a planned one keeps its manifests.
            stage.state = S.RUNNING if stage.partitions is not None else S.PENDING
            stage.error = None
        run.state, run.error, run.finished_at = S.RUNNING, None, None
        return count


def _run(session: Any, run_id: str) -> RunRow:
    run = session.get(RunRow, run_id)
    if run is None:
        raise RunNotFoundError(
            f"No run {run_id!r} in this store; `concurrent runs list` shows the known runs."
        )
    return run  # type: ignore[no-any-return]


def _stage(session: Any, run_id: str, node_id: str) -> StageRow:
    stage: StageRow = session.execute(
        select(StageRow).where(StageRow.run_id == run_id, StageRow.node_id == node_id)
    ).scalar_one()
    return stage
