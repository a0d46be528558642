"""Table definitions. State columns are written only by `store.transitions`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class DagRow(Base):
    """One saved version of a DAG document; a save never changes an older version."""

    __tablename__ = "dags"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[int]
    yaml: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RunRow(Base):
    """One execution of a DAG with its parameter overrides."""

    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dag_name: Mapped[str] = mapped_column(String(100), index=True)
    dag_version: Mapped[int | None]  # None: started from a file, not a stored DAG
    created_by: Mapped[str | None] = mapped_column(String(100))
    schedule_id: Mapped[int | None] = mapped_column(
        ForeignKey("schedules.id", ondelete="SET NULL"),
        index=True,  # the scheduler reads a schedule's runs
    )
    window_start: Mapped[datetime | None]  # micro-batch window of a scheduled run
    window_end: Mapped[datetime | None]
    cancel_requested: Mapped[str | None] = mapped_column(Text)  # the reason; the engine acts on it
    # The process driving the run (`store.drivers`); None: the server holding the engine lease drives it.
    driver: Mapped[str | None] = mapped_column(String(200))
    driver_expires_at: Mapped[datetime | None]  # the database's clock; renewed while the driver lives
    dag_yaml: Mapped[str] = mapped_column(Text)
    base_dir: Mapped[str] = mapped_column(Text)  # relative paths in the DAG resolve against this
    overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    experiment_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    stages: Mapped[list[StageRow]] = relationship(back_populates="run", order_by="StageRow.id")


class StageRow(Base):
    """One node within a run; planned into tasks once its upstream stages succeeded."""

    __tablename__ = "stages"
    __table_args__ = (UniqueConstraint("run_id", "node_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    partitions: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    run: Mapped[RunRow] = relationship(back_populates="stages")
    tasks: Mapped[list[TaskRow]] = relationship(back_populates="stage", order_by="TaskRow.partition")


class TaskRow(Base):
    """(node, partition) within a run."""

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("stage_id", "partition"),
        Index("ix_tasks_run_state", "run_id", "state"),
        Index("ix_tasks_state", "state"),  # the global limit counts active tasks of all runs
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    stage_id: Mapped[int] = mapped_column(ForeignKey("stages.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(64))
    partition: Mapped[int]
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)  # attempt numbers ever used; never reset
    retry_base: Mapped[int] = mapped_column(default=0)  # attempts before the last `run retry`: not counted
    input_bytes: Mapped[int] = mapped_column(default=0)
    retry_at: Mapped[datetime | None]
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))  # the latest attempt's child run
    error: Mapped[str | None] = mapped_column(Text)
    stage: Mapped[StageRow] = relationship(back_populates="tasks")
    attempt_rows: Mapped[list[AttemptRow]] = relationship(back_populates="task", order_by="AttemptRow.number")


class AttemptRow(Base):
    """One try at a task: a child run in MLflow and a handle in an executor."""

    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("task_id", "number"), Index("ix_attempts_state", "state"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    number: Mapped[int]
    state: Mapped[str] = mapped_column(String(16), default="queued")
    executor: Mapped[str] = mapped_column(String(64))
    handle: Mapped[dict[str, Any]] = mapped_column(default=dict)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))  # None until the child run exists
    log_path: Mapped[str | None] = mapped_column(Text)
    exit_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    task: Mapped[TaskRow] = relationship(back_populates="attempt_rows")


class ScheduleRow(Base):
    """A cron schedule that starts runs of a stored DAG (its newest version at each tick)."""

    __tablename__ = "schedules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_name: Mapped[str] = mapped_column(String(100), index=True)
    cron: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)
    overlap: Mapped[str] = mapped_column(String(8), default="skip")  # skip | queue
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_fire_at: Mapped[datetime | None]
    last_fire_at: Mapped[datetime | None]
    queued_fire_at: Mapped[datetime | None]  # overlap=queue: a tick waiting for the running run to end
    last_error: Mapped[str | None] = mapped_column(Text)  # why the last tick could not start a run
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClusterRow(Base):
    """A place to run tasks: a Kubernetes context and namespace; credentials are stored encrypted."""

    __tablename__ = "clusters"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="kubernetes")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)  # context, namespace, image: no secrets
    secret: Mapped[bytes | None] = mapped_column(LargeBinary)  # encrypted kubeconfig
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    checked_at: Mapped[datetime | None]
    reachable: Mapped[bool | None] = mapped_column(Boolean)
    check_message: Mapped[str | None] = mapped_column(Text)


class TokenRow(Base):
    """An API bearer token; only its SHA-256 is stored."""

    __tablename__ = "tokens"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # public prefix of the token
    user: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64))
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class GrantRow(Base):
    """A user's role on one DAG: reader < runner < editor < owner."""

    __tablename__ = "grants"
    __table_args__ = (UniqueConstraint("dag_name", "user"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_name: Mapped[str] = mapped_column(String(100), index=True)
    user: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))


class LeaseRow(Base):
    """Who drives the engine: the holder renews before `expires_at` or another server takes over."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime]
