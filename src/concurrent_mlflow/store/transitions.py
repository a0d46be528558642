"""Every change of a run's, stage's, task's or attempt's state, each in one transaction.

Nothing else writes a state column, and every write here is checked against the tables of `store.states`,
bulk updates and `reset_for_retry` included. A control plane that dies between two of these calls restarts
from a consistent store: a task is never half-dispatched (its attempt row and its state change commit
together), and a stage succeeds only with every one of its partitions succeeded: a stage that planned no
partitions (only a source has none) can never pass for one that did its work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from concurrent_mlflow.dag import SourceNode, parse_dag
from concurrent_mlflow.errors import ConflictError, RunNotFoundError
from concurrent_mlflow.run_id import new_run_id
from concurrent_mlflow.store.db import Store
from concurrent_mlflow.store.lease import db_now
from concurrent_mlflow.store.models import AttemptRow, RunRow, StageRow, TaskRow, utcnow
from concurrent_mlflow.store.states import (
    ATTEMPT,
    RUN,
    STAGE,
    TASK,
    TERMINAL,
    AttemptState,
    RunState,
    StageState,
    TaskState,
)


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
    run_id: str | None = None,
) -> str:
    """A new run, pending until the engine opens its MLflow parent run. A `driver` (`store.drivers`) holds
    it from the start, so no server's engine ever ticks it; without one the server's engine drives it.
    `run_id`: an id chosen by the caller (`new_run_id`), e.g. to name the run in MLflow before this."""
    run_id = run_id or new_run_id()
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
        session.add_all(StageRow(run_id=run_id, node_id=n, state=StageState.PENDING) for n in node_ids)
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
        RUN.check(run_id, run.state, RunState.RUNNING)
        run.state = RunState.RUNNING


def finish_run(store: Store, run_id: str, state: RunState, error: str | None = None) -> None:
    with store.transaction() as session:
        run = _run(session, run_id)
        RUN.check(run_id, run.state, state)
        run.state, run.error, run.finished_at = state, error, utcnow()


def plan_stage(store: Store, run_id: str, node_id: str, input_bytes: Sequence[int]) -> None:
    """A stage's manifests are stored: create its tasks (pending) and mark it running.

    A planned stage has at least one partition (the planner gives even an empty input one): a stage that
    could not be planned is ended failed with no partitions instead, so that a retry plans it again."""
    if not input_bytes:
        raise RuntimeError(f"stage {node_id} of run {run_id}: a planned stage needs at least one partition")
    with store.transaction() as session:
        stage = _stage(session, run_id, node_id)
        STAGE.check(node_id, stage.state, StageState.RUNNING)
        stage.state, stage.partitions = StageState.RUNNING, len(input_bytes)
        session.add_all(
            TaskRow(
                run_id=run_id,
                stage_id=stage.id,
                node_id=node_id,
                partition=i,
                state=TaskState.PENDING,
                input_bytes=b,
            )
            for i, b in enumerate(input_bytes)
        )


def settle_source(store: Store, run_id: str, node_id: str) -> None:
    """A source stage has no tasks: it succeeds, with no partitions, once its listing is known."""
    with store.transaction() as session:
        run = _run(session, run_id)
        node = parse_dag(run.dag_yaml, f"run {run_id}", ours=True).node(node_id)
        if not isinstance(node, SourceNode):
            raise RuntimeError(
                f"stage {node_id} of run {run_id} is not a source: it cannot succeed unplanned"
            )
        stage = _stage(session, run_id, node_id)
        STAGE.check(node_id, stage.state, StageState.SUCCEEDED)
        stage.state, stage.partitions, stage.error = StageState.SUCCEEDED, 0, None


def end_stage(store: Store, run_id: str, node_id: str, state: StageState, error: str | None = None) -> None:
    """Finish a stage; one that ends unplanned or unfinished takes its open tasks (and their attempts) with
    it. A stage succeeds only when it has partitions and every one of them succeeded."""
    with store.transaction() as session:
        stage = _stage(session, run_id, node_id)
        STAGE.check(node_id, stage.state, state)
        if state == StageState.SUCCEEDED:
            _check_all_succeeded(session, stage)
        stage.state, stage.error = state, error
        if state in (StageState.SKIPPED, StageState.CANCELLED):
            _end_open_tasks(session, stage, TaskState(state))


def _check_all_succeeded(session: Any, stage: StageRow) -> None:
    states = list(session.scalars(select(TaskRow.state).where(TaskRow.stage_id == stage.id)))
    if not states or len(states) != stage.partitions or any(s != TaskState.SUCCEEDED for s in states):
        raise RuntimeError(
            f"stage {stage.node_id} of run {stage.run_id}: illegal state change {stage.state} -> succeeded "
            f"with {states.count(TaskState.SUCCEEDED)} of {stage.partitions} partition(s) succeeded"
        )


def _end_open_tasks(session: Any, stage: StageRow, state: TaskState) -> None:
    """Move every task of `stage` the task table lets move to `state`, and end their open attempts."""
    movable = TASK.sources(state) - TERMINAL
    open_ids = select(TaskRow.id).where(TaskRow.stage_id == stage.id, TaskRow.state.in_(movable))
    attempt_state = AttemptState.CANCELLED
    session.execute(
        update(AttemptRow)
        .where(AttemptRow.task_id.in_(open_ids), AttemptRow.state.in_(ATTEMPT.sources(attempt_state)))
        .values(state=attempt_state, error="its stage ended", finished_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    session.execute(
        update(TaskRow).where(TaskRow.id.in_(open_ids)).values(state=state, retry_at=None),
        execution_options={"synchronize_session": False},
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
            TASK.check(task_id, task.state, TaskState.QUEUED)
            task.attempts += 1
            task.state, task.retry_at = TaskState.QUEUED, None
            attempt = AttemptRow(
                task_id=task_id, number=task.attempts, state=AttemptState.QUEUED, executor=executor, handle={}
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
    """The executor saw a queued attempt start; anything later (it ended meanwhile) is left as it is."""
    with store.transaction() as session:
        attempt = session.get_one(AttemptRow, attempt_id)
        if attempt.state == AttemptState.QUEUED:
            ATTEMPT.check(attempt_id, attempt.state, AttemptState.RUNNING)
            TASK.check(attempt.task_id, attempt.task.state, TaskState.RUNNING)
            attempt.state = AttemptState.RUNNING
            attempt.task.state = TaskState.RUNNING


def end_attempt(
    store: Store,
    attempt_id: int,
    *,
    state: AttemptState,
    exit_code: int | None = None,
    error: str | None = None,
    retry_in: timedelta | None = None,
) -> None:
    """An attempt ended; a failed one with a retry left sends its task back to pending after `retry_in`."""
    with store.transaction() as session:
        attempt = session.get_one(AttemptRow, attempt_id)
        task = attempt.task
        ATTEMPT.check(attempt_id, attempt.state, state)
        attempt.state, attempt.exit_code, attempt.error, attempt.finished_at = (
            state,
            exit_code,
            error,
            utcnow(),
        )
        retried = state == AttemptState.FAILED and retry_in is not None
        task_state = TaskState.PENDING if retried else TaskState(state)
        TASK.check(task.id, task.state, task_state)
        task.state, task.error = task_state, error
        task.retry_at = utcnow() + retry_in if retried and retry_in is not None else None


def reset_for_retry(store: Store, run_id: str) -> int:
    """`concurrent run retry`: unfinished work goes back to pending; succeeded tasks keep their outputs.

    Every move is a retry move of `store.states`. A stage with tasks keeps its manifests (running); one
    without (never planned, skipped, or its planning failed) goes back to pending and is planned again.
    """
    with store.transaction() as session:
        run = _run(session, run_id)
        if run.state not in TERMINAL:
            raise ConflictError(f"Run {run_id} is still {run.state}; retry it once it has ended.")
        if not RUN.allows(run.state, RunState.RUNNING, retry=True):
            raise ConflictError(f"Run {run_id} {run.state}: there is nothing to retry.")
        redo = TASK.sources(TaskState.PENDING, retry=True)
        reset = session.execute(
            update(TaskRow)
            .where(TaskRow.run_id == run_id, TaskRow.state.in_(redo))
            .values(state=TaskState.PENDING, retry_base=TaskRow.attempts, error=None, retry_at=None)
        )
        count = int(getattr(reset, "rowcount", 0))
        planned = set(session.scalars(select(TaskRow.stage_id).where(TaskRow.run_id == run_id).distinct()))
        for stage in run.stages:
            if stage.state == StageState.SUCCEEDED:
                continue
            state = StageState.RUNNING if stage.id in planned else StageState.PENDING
            STAGE.check(stage.node_id, stage.state, state, retry=True)
            stage.state, stage.error = state, None
            if state == StageState.PENDING:
                stage.partitions = None
        RUN.check(run_id, run.state, RunState.RUNNING, retry=True)
        run.state, run.error, run.finished_at = RunState.RUNNING, None, None
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
