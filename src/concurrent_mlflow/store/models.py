"""Table definitions. State columns are written only by `store.transitions`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class RunRow(Base):
    """One execution of a DAG with its parameter overrides."""

    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dag_name: Mapped[str] = mapped_column(String(100), index=True)
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
    mlflow_run_id: Mapped[str] = mapped_column(String(64))
    log_path: Mapped[str | None] = mapped_column(Text)
    exit_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    task: Mapped[TaskRow] = relationship(back_populates="attempt_rows")
