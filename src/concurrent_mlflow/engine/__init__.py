"""The engine: drives DAG runs from the store's desired state through an executor to MLflow."""

from concurrent_mlflow.engine.reconcile import Engine, EngineSettings

__all__ = ["Engine", "EngineSettings"]
