"""Wires the store, MLflow tracking and this machine's executors into an engine for one machine."""

from __future__ import annotations

import os

from concurrent_mlflow.engine import Engine, EngineSettings
from concurrent_mlflow.executors import registry
from concurrent_mlflow.executors.base import Executor
from concurrent_mlflow.settings import Paths
from concurrent_mlflow.store import Store, open_store
from concurrent_mlflow.tracking import Tracking


def open_engine(
    paths: Paths, tracking_uri: str, max_parallel: int | None = None, *, local: Executor | None = None
) -> tuple[Engine, Store]:
    """`local`: this machine's executor, if the caller made (and perhaps prepared) it already."""
    store = open_store(paths.store_url)
    settings = EngineSettings(cache_dir=paths.cache, max_parallel=max_parallel or os.cpu_count() or 1)
    tracking = Tracking(tracking_uri)
    return Engine(store, tracking, registry.standard(paths, store, tracking, local=local), settings), store
