"""The engine lease: of several servers sharing one database, exactly one drives the engine.

The holder renews the lease each pass; another server takes it only once it has expired. Times come from
the database's clock, so servers with skewed clocks still agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from concurrent_mlflow.store.db import Store
from concurrent_mlflow.store.models import LeaseRow, utcnow

ENGINE_LEASE = "engine"


def acquire(store: Store, holder: str, ttl: timedelta, name: str = ENGINE_LEASE) -> bool:
    """Take or renew the lease; True while `holder` has it."""
    with store.transaction() as session:
        now = db_now(session, store)
        taken = session.execute(
            update(LeaseRow)
            .where(LeaseRow.name == name, (LeaseRow.holder == holder) | (LeaseRow.expires_at < now))
            .values(holder=holder, expires_at=now + ttl)
        )
        if int(getattr(taken, "rowcount", 0)) == 1:
            return True
        if session.get(LeaseRow, name) is not None:
            return False
    try:
        with store.transaction() as session:
            session.add(LeaseRow(name=name, holder=holder, expires_at=now + ttl))
        return True
    except IntegrityError:  # another server created it first
        return False


def release(store: Store, holder: str, name: str = ENGINE_LEASE) -> None:
    with store.transaction() as session:
        session.execute(
            update(LeaseRow)
            .where(LeaseRow.name == name, LeaseRow.holder == holder)
            .values(expires_at=db_now(session, store))
        )


def holder(store: Store, name: str = ENGINE_LEASE) -> str | None:
    with store.transaction() as session:
        row = session.get(LeaseRow, name)
        return row.holder if row else None


def db_now(session: Session, store: Store) -> datetime:
    """PostgreSQL's clock (shared by every server); SQLite lives on one machine, so its clock will do."""
    if store.dialect == "postgresql":
        now = session.scalar(select(func.now()))
        assert isinstance(now, datetime)
        return now
    return utcnow()
