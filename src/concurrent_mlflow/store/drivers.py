"""Run drivers: every run is driven by one process, which holds a lease on it in the store.

A `concurrent run` (or `mlflow run -b concurrent`) process writes its id into the run's `driver` column and
renews `driver_expires_at` every few seconds; a run with no driver belongs to the server holding the engine
lease (`store.lease`). A run whose driver's lease expired is orphaned: `engine.orphans` settles it. Times are
the database's clock, so processes on machines with skewed clocks still agree on who is alive.

Every change of a driver is a compare-and-set in one statement: of two commands settling the same orphan,
exactly one takes it over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from concurrent_mlflow.store.db import Store
from concurrent_mlflow.store.lease import db_now
from concurrent_mlflow.store.models import RunRow
from concurrent_mlflow.store.states import TERMINAL


@dataclass(frozen=True)
class Driven:
    """An open run with a driver of its own, and whether that driver's lease has expired."""

    run_id: str
    driver: str
    expired: bool


def driven_runs(store: Store) -> list[Driven]:
    """Open runs driven by a process (not by the server), oldest first."""
    with store.transaction() as session:
        now = db_now(session, store)
        rows = session.execute(
            select(RunRow.id, RunRow.driver, RunRow.driver_expires_at < now)
            .where(RunRow.state.not_in(TERMINAL), RunRow.driver.is_not(None))
            .order_by(RunRow.created_at, RunRow.id)
        ).all()
        return [Driven(run_id, str(driver), bool(expired)) for run_id, driver, expired in rows]


def driver_of(store: Store, run_id: str) -> str | None:
    with store.transaction() as session:
        return session.scalar(select(RunRow.driver).where(RunRow.id == run_id))


def take_over(store: Store, run_id: str, driver: str, ttl: timedelta, *, dead: str) -> bool:
    """Become the driver of an open run whose driver `dead` died; False if another process was first."""
    with store.transaction() as session:
        now = db_now(session, store)
        taken = session.execute(
            update(RunRow)
            .where(RunRow.id == run_id, RunRow.driver == dead, RunRow.state.not_in(TERMINAL))
            .values(driver=driver, driver_expires_at=now + ttl)
        )
        return int(getattr(taken, "rowcount", 0)) == 1


def take_ended(store: Store, run_id: str, driver: str | None, ttl: timedelta) -> bool:
    """Become the driver of a run that has ended, before `run retry` opens it again (None: hand it to the
    server). False while the run is open: its driver, alive or to be settled, still has it."""
    with store.transaction() as session:
        now = db_now(session, store)
        taken = session.execute(
            update(RunRow)
            .where(RunRow.id == run_id, RunRow.state.in_(TERMINAL))
            .values(driver=driver, driver_expires_at=now + ttl if driver else None)
        )
        return int(getattr(taken, "rowcount", 0)) == 1


def renew(store: Store, run_id: str, driver: str, ttl: timedelta) -> bool:
    """Extend `driver`'s lease on the run; False if it is no longer the run's driver."""
    with store.transaction() as session:
        now = db_now(session, store)
        renewed = session.execute(
            update(RunRow)
            .where(RunRow.id == run_id, RunRow.driver == driver)
            .values(driver_expires_at=now + ttl)
        )
        return int(getattr(renewed, "rowcount", 0)) == 1
