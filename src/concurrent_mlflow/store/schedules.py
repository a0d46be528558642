"""Stored cron schedules of DAGs, and the bookkeeping of their ticks; every change is one transaction.

A schedule's state is `next_fire_at` (the next tick; None while paused), `last_fire_at` (the last tick that
fired or tried to), `queued_fire_at` (overlap=queue: a tick waiting for a run to end) and `last_error`.
The runs it started carry its id and their window, so the window of the next run is read from the runs
themselves (`window_start`) and a tick already fired is recognised after a crash (`run_for_tick`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from concurrent_mlflow.cron import Cron
from concurrent_mlflow.errors import ScheduleNotFoundError
from concurrent_mlflow.store.db import Store
from concurrent_mlflow.store.models import RunRow, ScheduleRow
from concurrent_mlflow.store.states import TERMINAL, RunState

OVERLAPS = ("skip", "queue")


@dataclass(frozen=True)
class LastRun:
    id: str
    state: str


# -- what the API changes -----------------------------------------------------------------------------------


def create(
    store: Store,
    *,
    dag_name: str,
    cron: Cron,
    overrides: Mapping[str, str],
    overlap: str,
    enabled: bool,
    created_by: str | None,
    now: datetime,
) -> ScheduleRow:
    """A new schedule; enabled, its first tick is the first after `now`."""
    _check_overlap(overlap)
    row = ScheduleRow(
        dag_name=dag_name,
        cron=cron.expression,
        timezone=cron.timezone,
        overrides=dict(overrides),
        overlap=overlap,
        enabled=enabled,
        next_fire_at=cron.next_after(now) if enabled else None,
        created_by=created_by,
    )
    with store.transaction() as session:
        session.add(row)
        session.flush()
    return row


def get(store: Store, schedule_id: int) -> ScheduleRow:
    with store.transaction() as session:
        row = session.get(ScheduleRow, schedule_id)
    if row is None:
        raise not_found(schedule_id)
    return row


def not_found(schedule_id: int) -> ScheduleNotFoundError:
    return ScheduleNotFoundError(
        f"No schedule {schedule_id}; `GET /api/v1/schedules` (`concurrent schedule list`) lists them."
    )


def list_schedules(
    store: Store, *, dag: str | None, dag_names: set[str] | None, offset: int, limit: int
) -> tuple[list[ScheduleRow], int]:
    """Schedules by DAG then id; `dag_names` limits to the DAGs a caller may read (None: all)."""
    query = select(ScheduleRow)
    if dag_names is not None:
        query = query.where(ScheduleRow.dag_name.in_(dag_names))
    if dag:
        query = query.where(ScheduleRow.dag_name == dag)
    with store.transaction() as session:
        total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
        rows = session.scalars(
            query.order_by(ScheduleRow.dag_name, ScheduleRow.id).offset(offset).limit(limit)
        )
        return list(rows), total


def update(
    store: Store,
    schedule_id: int,
    *,
    now: datetime,
    cron: Cron | None = None,
    overlap: str | None = None,
    overrides: Mapping[str, str] | None = None,
    enabled: bool | None = None,
) -> ScheduleRow:
    """Change what is given. A new cron, or a resume, re-plans the next tick from `now`: the ticks of a
    paused spell are not fired late (the next run's window still starts where the last success ended, so
    no data is left out). A pause, or a switch to `skip`, drops a queued tick."""
    with store.transaction() as session:
        row = _row(session, schedule_id)
        if cron is not None:
            row.cron, row.timezone = cron.expression, cron.timezone
        if overlap is not None:
            _check_overlap(overlap)
            row.overlap = overlap
        if overrides is not None:
            row.overrides = dict(overrides)
        if enabled is not None:
            row.enabled = enabled
        if row.overlap == "skip" or not row.enabled:
            row.queued_fire_at = None
        if not row.enabled:
            row.next_fire_at = None
        elif cron is not None or row.next_fire_at is None:
            row.next_fire_at = (cron or Cron(row.cron, row.timezone)).next_after(now)
        return row


def delete(store: Store, schedule_id: int) -> None:
    """Remove a schedule; the runs it started stay (their `schedule_id` becomes null)."""
    with store.transaction() as session:
        session.delete(_row(session, schedule_id))


def last_runs(store: Store, schedule_ids: list[int]) -> dict[int, LastRun]:
    """The newest run of each schedule, for listings."""
    if not schedule_ids:
        return {}
    newest = (
        select(RunRow.schedule_id, func.max(RunRow.created_at).label("at"))
        .where(RunRow.schedule_id.in_(schedule_ids))
        .group_by(RunRow.schedule_id)
        .subquery()
    )
    query = select(RunRow.schedule_id, RunRow.id, RunRow.state).join(
        newest, (RunRow.schedule_id == newest.c.schedule_id) & (RunRow.created_at == newest.c.at)
    )
    with store.transaction() as session:
        return {sid: LastRun(run_id, state) for sid, run_id, state in session.execute(query) if sid}


# -- what the scheduler reads and records -------------------------------------------------------------------


def due(store: Store, now: datetime) -> list[ScheduleRow]:
    """Enabled schedules with a tick at or before `now`, or a queued tick, oldest tick first."""
    query = select(ScheduleRow).where(
        ScheduleRow.enabled.is_(True),
        (ScheduleRow.next_fire_at <= now) | ScheduleRow.queued_fire_at.is_not(None),
    )
    with store.transaction() as session:
        return list(session.scalars(query.order_by(ScheduleRow.next_fire_at, ScheduleRow.id)))


def has_open_run(store: Store, schedule_id: int) -> bool:
    """Whether a run this schedule started has not ended (pending, queued or running)."""
    query = select(RunRow.id).where(RunRow.schedule_id == schedule_id, RunRow.state.not_in(TERMINAL))
    with store.transaction() as session:
        return session.scalars(query.limit(1)).first() is not None


def window_start(store: Store, schedule_id: int) -> datetime | None:
    """Where the next window starts: the end of the latest window that a run of this schedule processed
    successfully. Failed and cancelled runs do not count, so the next run covers their data again."""
    query = select(func.max(RunRow.window_end)).where(
        RunRow.schedule_id == schedule_id, RunRow.state == RunState.SUCCEEDED
    )
    with store.transaction() as session:
        return session.scalar(query)


def run_for_tick(store: Store, schedule_id: int, tick: datetime) -> str | None:
    """The run already started for this tick, if any: the sign of a crash between starting it and
    `record_fire`, so a restarted scheduler records the tick instead of starting a second run."""
    query = select(RunRow.id).where(RunRow.schedule_id == schedule_id, RunRow.window_end == tick)
    with store.transaction() as session:
        return session.scalars(query.limit(1)).first()


def record_fire(
    store: Store, schedule_id: int, *, tick: datetime, next_fire_at: datetime, error: str | None
) -> None:
    """A tick fired (or failed to start a run, `error` says why): it and any queued tick are consumed."""
    with store.transaction() as session:
        row = session.get(ScheduleRow, schedule_id)
        if row is None:  # deleted while the tick was being started
            return
        row.last_fire_at, row.queued_fire_at, row.last_error = tick, None, error
        if row.enabled:
            row.next_fire_at = next_fire_at


def record_skip(store: Store, schedule_id: int, *, next_fire_at: datetime) -> None:
    """overlap=skip: a tick came while a run was going; it is dropped."""
    with store.transaction() as session:
        row = session.get(ScheduleRow, schedule_id)
        if row is not None and row.enabled:
            row.next_fire_at = next_fire_at


def record_queue(store: Store, schedule_id: int, *, tick: datetime, next_fire_at: datetime) -> None:
    """overlap=queue: a tick came while a run was going; it waits, replacing an older queued tick."""
    with store.transaction() as session:
        row = session.get(ScheduleRow, schedule_id)
        if row is not None and row.enabled:
            row.queued_fire_at, row.next_fire_at = tick, next_fire_at


def _row(session: Session, schedule_id: int) -> ScheduleRow:
    row = session.get(ScheduleRow, schedule_id)
    if row is None:
        raise not_found(schedule_id)
    return row


def _check_overlap(overlap: str) -> None:
    if overlap not in OVERLAPS:
        raise ValueError(f"overlap must be one of {OVERLAPS}, not {overlap!r}")
