"""Durable orchestration state: runs, stages, tasks and attempts (SQLAlchemy 2; SQLite by default).

The store is the truth for orchestration; MLflow is the truth for results. Only `transitions` writes a state
column, and each transition is one transaction.
"""

from concurrent_mlflow.store.db import Store, open_store
from concurrent_mlflow.store.models import AttemptRow, RunRow, StageRow, TaskRow
from concurrent_mlflow.store.states import ACTIVE, TERMINAL, AttemptState, RunState, StageState, TaskState

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "AttemptRow",
    "AttemptState",
    "RunRow",
    "RunState",
    "StageRow",
    "StageState",
    "Store",
    "TaskRow",
    "TaskState",
    "open_store",
]
