"""Plugins that MLflow loads from this package's entry points: the `mlflow run -b concurrent` project
backend (backend.py, with request.py turning a request into a DAG)."""
