"""Wires the store, MLflow tracking and the local executor into an engine for one machine."""

from __future__ import annotations

import os

from concurrent_mlflow.engine import Engine, EngineSettings
from concurrent_mlflow.executors.kubernetes import KubernetesExecutor
from concurrent_mlflow.executors.local import LocalExecutor
from concurrent_mlflow.settings import Paths
from concurrent_mlflow.store import Store, open_store
from concurrent_mlflow.store.crypto import load_cipher
from concurrent_mlflow.tracking import Tracking


def open_engine(paths: Paths, tracking_uri: str, max_parallel: int | None = None) -> tuple[Engine, Store]:
    store = open_store(paths.store_url)
    settings = EngineSettings(cache_dir=paths.cache, max_parallel=max_parallel or os.cpu_count() or 1)
    executor = LocalExecutor(log_root=paths.logs, scratch_root=paths.scratch)
    tracking = Tracking(tracking_uri)
    kubernetes = KubernetesExecutor(store, lambda: load_cipher(paths.home), tracking)
    return Engine(store, tracking, executor, settings, kubernetes), store
