"""Concurrent for MLflow."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("concurrent-mlflow")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
