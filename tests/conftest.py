"""Shared fixtures. Fixture modules live in tests/fixtures and are loaded here as plugins."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.fixtures.mlflow_server",
    "tests.fixtures.git_server",
    "tests.fixtures.s3_server",
    "tests.fixtures.postgres",
    "tests.fixtures.control_plane",
    "tests.fixtures.browser",
    "tests.fixtures.oci_registry",
]


@pytest.fixture(autouse=True)
def _mlflow_environment_stays_put() -> Iterator[None]:
    """MLflow exports state to os.environ for child processes (`mlflow.set_experiment` sets
    MLFLOW_EXPERIMENT_ID): a test that calls it must not hand it on to later tests' `mlflow` commands."""
    before = {name: value for name, value in os.environ.items() if name.startswith("MLFLOW_")}
    yield
    for name in [name for name in os.environ if name.startswith("MLFLOW_") and name not in before]:
        del os.environ[name]
    os.environ.update(before)
