"""Stored DAGs: every save is a new version; a run pins the version it ran. Deleting a DAG keeps its runs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from concurrent_mlflow.errors import ConflictError, DagNotFoundError
from concurrent_mlflow.store.db import Store
from concurrent_mlflow.store.models import DagRow, GrantRow, RunRow, ScheduleRow


@dataclass(frozen=True)
class DagSummary:
    name: str
    latest_version: int
    versions: int
    description: str | None
    updated_at: str
    last_run_id: str | None
    last_run_state: str | None


def save_version(
    store: Store, name: str, yaml_text: str, *, description: str | None, user: str | None, create: bool
) -> DagRow:
    """Store a new version; `create` refuses a name that exists, otherwise the name must exist."""
    try:
        return _save_version(store, name, yaml_text, description=description, user=user, create=create)
    except IntegrityError as exc:  # another request saved this name or version in the meantime
        raise ConflictError(
            f"DAG {name!r} was saved by someone else at the same moment; fetch it and save again."
        ) from exc


def _save_version(
    store: Store, name: str, yaml_text: str, *, description: str | None, user: str | None, create: bool
) -> DagRow:
    with store.transaction() as session:
        latest = _latest_version(session, name)
        if create and latest:
            raise ConflictError(
                f"A DAG named {name!r} already exists; save it as a new version (PUT /dags/{name}) instead."
            )
        if not create and not latest:
            raise DagNotFoundError(f"No DAG named {name!r}; create it first.")
        row = DagRow(name=name, version=latest + 1, yaml=yaml_text, description=description, created_by=user)
        session.add(row)
        if create and user:
            session.add(GrantRow(dag_name=name, user=user, role="owner"))
        session.flush()
        return row


def get_version(store: Store, name: str, version: int | None = None) -> DagRow:
    with store.transaction() as session:
        query = select(DagRow).where(DagRow.name == name)
        query = query.where(DagRow.version == version) if version else query.order_by(DagRow.version.desc())
        row = session.scalars(query.limit(1)).first()
    if row is None:
        what = f"version {version} of DAG {name!r}" if version else f"DAG {name!r}"
        raise DagNotFoundError(f"No {what}; `GET /api/v1/dags` lists the stored DAGs.")
    return row


def exists(store: Store, name: str) -> bool:
    with store.transaction() as session:
        return _latest_version(session, name) > 0


def versions(store: Store, name: str) -> list[DagRow]:
    with store.transaction() as session:
        query = select(DagRow).where(DagRow.name == name).order_by(DagRow.version.desc())
        rows = list(session.scalars(query))
    if not rows:
        raise DagNotFoundError(f"No DAG named {name!r}.")
    return rows


def list_dags(
    store: Store, *, search: str | None, names: set[str] | None, offset: int, limit: int
) -> tuple[list[DagSummary], int]:
    """DAGs by name with their newest version and last run; `names` limits to what a user may read."""
    with store.transaction() as session:
        latest = (
            select(DagRow.name, func.max(DagRow.version).label("v"), func.count().label("n"))
            .group_by(DagRow.name)
            .subquery()
        )
        query = select(DagRow, latest.c.n).join(
            latest, (DagRow.name == latest.c.name) & (DagRow.version == latest.c.v)
        )
        if search:
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = query.where(
                DagRow.name.ilike(pattern, escape="\\") | DagRow.description.ilike(pattern, escape="\\")
            )
        if names is not None:
            query = query.where(DagRow.name.in_(names))
        total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
        rows = session.execute(query.order_by(DagRow.name).offset(offset).limit(limit)).all()
        summaries = [_summary(session, row, count) for row, count in rows]
    return summaries, total


def delete_dag(store: Store, name: str) -> int:
    """Remove every version, its schedules and grants; runs keep their own copy of the DAG."""
    with store.transaction() as session:
        removed = session.execute(delete(DagRow).where(DagRow.name == name))
        count = int(getattr(removed, "rowcount", 0))
        if not count:
            raise DagNotFoundError(f"No DAG named {name!r}.")
        session.execute(delete(ScheduleRow).where(ScheduleRow.dag_name == name))
        session.execute(delete(GrantRow).where(GrantRow.dag_name == name))
        return count


def _latest_version(session: Session, name: str) -> int:
    return int(session.scalar(select(func.max(DagRow.version)).where(DagRow.name == name)) or 0)


def _summary(session: Session, row: DagRow, count: int) -> DagSummary:
    last = session.execute(
        select(RunRow.id, RunRow.state)
        .where(RunRow.dag_name == row.name)
        .order_by(RunRow.created_at.desc())
        .limit(1)
    ).first()
    return DagSummary(
        name=row.name,
        latest_version=row.version,
        versions=count,
        description=row.description,
        updated_at=row.created_at.isoformat(),
        last_run_id=last[0] if last else None,
        last_run_state=last[1] if last else None,
    )
