"""Read-only views of a run for progress displays, the CLI and (later) the API."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select

from concurrent_mlflow.store.db import Store
from concurrent_mlflow.store.models import AttemptRow, RunRow, StageRow, TaskRow
from concurrent_mlflow.store.states import TaskState


@dataclass(frozen=True)
class StageView:
    node_id: str
    state: str
    partitions: int | None
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def count(self, state: TaskState) -> int:
        return self.counts.get(state, 0)


@dataclass(frozen=True)
class FailedAttempt:
    node_id: str
    partition: int
    attempt: int
    error: str | None
    log_path: str | None
    mlflow_run_id: str | None


@dataclass(frozen=True)
class RunView:
    id: str
    dag_name: str
    state: str
    mlflow_run_id: str | None
    experiment_id: str | None
    error: str | None
    stages: list[StageView]


@dataclass(frozen=True)
class AttemptLog:
    node_id: str
    partition: int
    attempt: int
    log_path: str
    partitions: int | None  # of its stage


def attempt_logs(store: Store, run_id: str, after_id: int = 0) -> list[tuple[int, AttemptLog]]:
    """The run's attempts that have a log file on this machine, with ids above `after_id`, oldest first."""
    query = (
        select(AttemptRow.id, TaskRow.node_id, TaskRow.partition, AttemptRow.number, AttemptRow.log_path)
        .add_columns(StageRow.partitions)
        .join(TaskRow, AttemptRow.task_id == TaskRow.id)
        .join(StageRow, TaskRow.stage_id == StageRow.id)
        .where(TaskRow.run_id == run_id, AttemptRow.id > after_id, AttemptRow.log_path.is_not(None))
        .order_by(AttemptRow.id)
    )
    with store.transaction() as session:
        return [
            (attempt_id, AttemptLog(node, partition, number, str(path), partitions))
            for attempt_id, node, partition, number, path, partitions in session.execute(query)
        ]


def run_view(store: Store, run_id: str) -> RunView | None:
    with store.transaction() as session:
        run = session.get(RunRow, run_id)
        if run is None:
            return None
        counts: dict[int, Counter[str]] = {}
        for stage_id, state in session.execute(
            select(TaskRow.stage_id, TaskRow.state).where(TaskRow.run_id == run_id)
        ):
            counts.setdefault(stage_id, Counter())[state] += 1
        stages = [
            StageView(s.node_id, s.state, s.partitions, dict(counts.get(s.id, Counter())), s.error)
            for s in session.scalars(select(StageRow).where(StageRow.run_id == run_id).order_by(StageRow.id))
        ]
        return RunView(
            run.id, run.dag_name, run.state, run.mlflow_run_id, run.experiment_id, run.error, stages
        )


def failed_attempts(store: Store, run_id: str) -> list[FailedAttempt]:
    """The last attempt of every task that ended failed, in node and partition order."""
    with store.transaction() as session:
        rows = session.execute(
            select(TaskRow, AttemptRow)
            .join(AttemptRow, (AttemptRow.task_id == TaskRow.id) & (AttemptRow.number == TaskRow.attempts))
            .where(TaskRow.run_id == run_id, TaskRow.state == TaskState.FAILED)
            .order_by(TaskRow.stage_id, TaskRow.partition)
        ).all()
        return [
            FailedAttempt(t.node_id, t.partition, a.number, a.error, a.log_path, a.mlflow_run_id)
            for t, a in rows
        ]


def list_runs(
    store: Store,
    *,
    dag_names: set[str] | None,
    dag: str | None,
    state: str | None,
    offset: int,
    limit: int,
    schedule_id: int | None = None,
) -> tuple[list[RunRow], int]:
    """Runs newest first; `dag_names` limits to the DAGs a caller may read (None: all)."""
    query = select(RunRow)
    if dag_names is not None:
        query = query.where(RunRow.dag_name.in_(dag_names))
    if dag:
        query = query.where(RunRow.dag_name == dag)
    if state:
        query = query.where(RunRow.state == state)
    if schedule_id is not None:
        query = query.where(RunRow.schedule_id == schedule_id)
    with store.transaction() as session:
        total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
        rows = session.scalars(
            query.order_by(RunRow.created_at.desc(), RunRow.id).offset(offset).limit(limit)
        )
        return list(rows), total


@dataclass(frozen=True)
class TaskView:
    node: str
    partition: int
    state: str
    attempts: int
    input_bytes: int
    error: str | None
    mlflow_run_id: str | None
    started_at: datetime | None
    finished_at: datetime | None


def list_tasks(
    store: Store, run_id: str, *, node: str | None, state: str | None, offset: int, limit: int
) -> tuple[list[TaskView], int]:
    """A run's tasks in node and partition order, with their latest attempt's times."""
    query = (
        select(TaskRow, AttemptRow.started_at, AttemptRow.finished_at)
        .outerjoin(AttemptRow, (AttemptRow.task_id == TaskRow.id) & (AttemptRow.number == TaskRow.attempts))
        .where(TaskRow.run_id == run_id)
    )
    if node:
        query = query.where(TaskRow.node_id == node)
    if state:
        query = query.where(TaskRow.state == state)
    with store.transaction() as session:
        total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
        rows = session.execute(
            query.order_by(TaskRow.stage_id, TaskRow.partition).offset(offset).limit(limit)
        )
        views = [
            TaskView(
                t.node_id,
                t.partition,
                t.state,
                t.attempts - t.retry_base,
                t.input_bytes,
                t.error,
                t.mlflow_run_id,
                started,
                finished,
            )
            for t, started, finished in rows
        ]
        return views, total


def find_attempt(
    store: Store, run_id: str, node: str, partition: int, number: int | None
) -> AttemptRow | None:
    """One attempt of a task; its latest when `number` is None."""
    with store.transaction() as session:
        task = session.scalars(
            select(TaskRow).where(
                TaskRow.run_id == run_id, TaskRow.node_id == node, TaskRow.partition == partition
            )
        ).first()
        if task is None or task.attempts == 0:
            return None
        return session.scalars(
            select(AttemptRow).where(
                AttemptRow.task_id == task.id, AttemptRow.number == (number or task.attempts)
            )
        ).first()


def find_attempt_by_id(store: Store, attempt_id: int) -> AttemptRow | None:
    with store.transaction() as session:
        return session.get(AttemptRow, attempt_id)


def attempt_state(store: Store, attempt_id: int) -> str | None:
    with store.transaction() as session:
        return session.scalar(select(AttemptRow.state).where(AttemptRow.id == attempt_id))
