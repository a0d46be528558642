"""Read-only views of a run for progress displays, the CLI and (later) the API."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select

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
    mlflow_run_id: str


@dataclass(frozen=True)
class RunView:
    id: str
    dag_name: str
    state: str
    mlflow_run_id: str | None
    experiment_id: str | None
    error: str | None
    stages: list[StageView]


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
