"""The engine's reads of the store: small, aggregate queries so a tick stays cheap at 10,000 partitions."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import func, or_, select

from concurrent_mlflow.errors import RunNotFoundError
from concurrent_mlflow.store import AttemptRow, RunRow, StageRow, Store, TaskRow
from concurrent_mlflow.store.lease import db_now
from concurrent_mlflow.store.states import ACTIVE, TERMINAL, TaskState


def run(store: Store, run_id: str) -> RunRow:
    with store.transaction() as session:
        row = session.get(RunRow, run_id)
        if row is None:
            raise RunNotFoundError(f"No run {run_id!r} in this store.")
        return row


def open_run_ids(store: Store) -> list[str]:
    """Runs the server's engine drives (no driver of their own) that have not ended, oldest first (so
    earlier runs get free slots first). A run a `concurrent run` process drives is that process's alone."""
    with store.transaction() as session:
        return list(
            session.scalars(
                select(RunRow.id)
                .where(RunRow.state.not_in(TERMINAL), RunRow.driver.is_(None))
                .order_by(RunRow.created_at, RunRow.id)
            )
        )


def stages(store: Store, run_id: str) -> list[StageRow]:
    with store.transaction() as session:
        return list(session.scalars(select(StageRow).where(StageRow.run_id == run_id).order_by(StageRow.id)))


def task_counts(store: Store, run_id: str) -> dict[int, Counter[str]]:
    """Per stage id: how many tasks are in each state."""
    counts: dict[int, Counter[str]] = {}
    with store.transaction() as session:
        for stage_id, state, n in session.execute(
            select(TaskRow.stage_id, TaskRow.state, func.count())
            .where(TaskRow.run_id == run_id)
            .group_by(TaskRow.stage_id, TaskRow.state)
        ):
            counts.setdefault(stage_id, Counter())[state] = n
    return counts


def first_unsucceeded(store: Store, stage_id: int) -> TaskRow | None:
    with store.transaction() as session:
        return session.scalars(
            select(TaskRow)
            .where(TaskRow.stage_id == stage_id, TaskRow.state != TaskState.SUCCEEDED)
            .order_by(TaskRow.partition)
            .limit(1)
        ).first()


def ready_tasks(store: Store, stage_id: int, now: datetime, limit: int) -> list[TaskRow]:
    """Pending tasks of a stage whose retry delay (if any) has passed, in partition order."""
    with store.transaction() as session:
        return list(
            session.scalars(
                select(TaskRow)
                .where(
                    TaskRow.stage_id == stage_id,
                    TaskRow.state == TaskState.PENDING,
                    or_(TaskRow.retry_at.is_(None), TaskRow.retry_at <= now),
                )
                .order_by(TaskRow.partition)
                .limit(limit)
            )
        )


def next_retry(store: Store, run_id: str, now: datetime) -> datetime | None:
    """When the earliest pending task of a run that waits out a retry's backoff may start, if any does."""
    with store.transaction() as session:
        moment = session.scalar(
            select(func.min(TaskRow.retry_at)).where(
                TaskRow.run_id == run_id, TaskRow.state == TaskState.PENDING, TaskRow.retry_at > now
            )
        )
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=now.tzinfo)  # SQLite's are naive (UTC)


def stage_tasks(store: Store, stage_id: int) -> list[TaskRow]:
    with store.transaction() as session:
        return list(
            session.scalars(select(TaskRow).where(TaskRow.stage_id == stage_id).order_by(TaskRow.partition))
        )


def active_attempts(store: Store, run_id: str) -> list[tuple[TaskRow, AttemptRow]]:
    """Every queued or running task of a run with its current attempt."""
    with store.transaction() as session:
        rows = session.execute(
            select(TaskRow, AttemptRow)
            .join(AttemptRow, (AttemptRow.task_id == TaskRow.id) & (AttemptRow.number == TaskRow.attempts))
            .where(TaskRow.run_id == run_id, TaskRow.state.in_(ACTIVE))
            .order_by(TaskRow.id)
        ).all()
        return [(t, a) for t, a in rows]


def count_active(store: Store, run_id: str | None = None, executor: str | None = None) -> int:
    """Queued or running tasks, of one run or of all runs (the global limit), on any or one executor.
    Only runs with a live driver count: the tasks of a run whose driver's lease expired hold no slot."""
    query = (
        select(func.count())
        .select_from(TaskRow)
        .join(RunRow, RunRow.id == TaskRow.run_id)
        .where(TaskRow.state.in_(ACTIVE))
    )
    if run_id is not None:
        query = query.where(TaskRow.run_id == run_id)
    if executor is not None:
        query = query.where(
            select(AttemptRow.id)
            .where(
                AttemptRow.task_id == TaskRow.id,
                AttemptRow.executor == executor,
                AttemptRow.state.in_(ACTIVE),
            )
            .exists()
        )
    with store.transaction() as session:
        live = or_(RunRow.driver.is_(None), RunRow.driver_expires_at >= db_now(session, store))
        return int(session.scalar(query.where(live)) or 0)
