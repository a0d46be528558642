"""Wires the store, MLflow tracking and the local executor into an engine for one machine."""

from __future__ import annotations

import os

from concurrent_mlflow.engine import Engine, EngineSettings
from concurrent_mlflow.executors.local import LocalExecutor
from concurrent_mlflow.settings import Paths
from concurrent_mlflow.store import Store, open_store
from concurrent_mlflow.tracking import Tracking


def open_engine(paths: Paths, tracking_uri: str, max_parallel: int | None = None) -> tuple[Engine, Store]:
    store = open_store(paths.store_url)
    settings = EngineSettings(cache_dir=paths.cache, max_parallel=max_parallel or os.cpu_count() or 1)
    executor = LocalExecutor(log_root=paths.logs, scratch_root=paths.scratch)
    return Engine(store, Tracking(tracking_uri), executor, settings), store
