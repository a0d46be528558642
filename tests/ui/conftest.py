"""Browser tests of the web UI: Debian's Chromium (tests/fixtures/browser.py) against a real `concurrent server`.

Each test module gets one server (`plane`, module-scoped) on its own SQLite store, tracking into the session's
real MLflow server; tests keep apart by giving their DAGs their own names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.fixtures.control_plane import ControlPlane, started
from tests.fixtures.mlflow_server import MlflowServer

# A real server answers within seconds, but a busy 2-core machine running MLflow, the server and its task
# processes can be slow: assertions wait (they never sleep) up to this long.
expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def plane(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """This module's `concurrent server` (auth off, on loopback); relative source URIs resolve in its root."""
    with started(ControlPlane.under(tmp_path_factory.mktemp("ui"), mlflow_server.url)) as server:
        yield server


def store_dag(plane: ControlPlane, yaml_text: str) -> dict[str, Any]:
    """Stores a DAG through the API (a new DAG, version 1); the stored version."""
    with plane.client() as api:
        response = api.post("/dags", json={"yaml": yaml_text})
        assert response.status_code == 201, response.text
        stored: dict[str, Any] = response.json()
        return stored
