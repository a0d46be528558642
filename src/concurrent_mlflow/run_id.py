"""DAG run ids. Kept apart from the store so that `mlflow run -b concurrent` can choose a run's id, and name
it in MLflow, without importing the store (SQLAlchemy) in the caller's process."""

from __future__ import annotations

import uuid


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]
