"""The same `concurrent` commands against a real `concurrent server` (--server / CONCURRENT_SERVER)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from concurrent_mlflow import local_mlflow
from tests.fixtures.control_plane import ControlPlane
from tests.fixtures.mlflow_server import _free_port
from tests.integration.conftest import make_files
from tests.integration.test_cli import concurrent, write_dag

pytestmark = pytest.mark.integration

DAG = """
name: cli-remote
nodes:
  - {id: raw, kind: source, uri: data}
  - {id: step, kind: project, project: "{toolbox}", entry_point: transform, partitions: 2}
edges:
  - {from: raw, to: step, input: text}
"""


def test_run_on_a_server_stores_the_dag_and_reports_like_a_local_run(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    work = tmp_path / "client"
    make_files(work / "data", {f"f{i}.txt": f"w {i}" for i in range(4)})
    dag = write_dag(work, DAG)
    server = ["--server", control_plane.url]

    failed = concurrent(*server, "run", str(dag), "-P", "step.fail_on_partition=1", cwd=work)
    assert failed.returncode == 1, failed.stderr
    run_id = re.search(r"Run (\w+) of DAG 'cli-remote'", failed.stdout).group(1)  # type: ignore[union-attr]
    assert f"MLflow: {control_plane.tracking_uri}/#/experiments/" in failed.stdout
    assert "Failed partitions" in failed.stderr and "exit code 3" in failed.stderr
    assert f"concurrent logs {run_id} step 1" in failed.stderr  # where the failed partition's log is

    log = concurrent(*server, "logs", run_id, "step", "1", cwd=work)
    assert log.returncode == 0 and "failing on purpose" in log.stdout

    shown = concurrent(*server, "runs", "show", run_id, cwd=work)
    row = next(line for line in shown.stdout.splitlines() if " step " in line)
    assert [c.strip() for c in row.split("│")[1:6]] == ["step", "failed", "2", "1", "0"]
    listing = concurrent(*server, "runs", "list", cwd=work)
    assert run_id in listing.stdout and "failed" in listing.stdout

    with control_plane.client() as api:
        versions = api.get("/dags/cli-remote/versions").json()
        assert [v["version"] for v in versions] == [1]  # the run stored the DAG file as a version

    ok = concurrent(*server, "run", str(dag), cwd=work)
    assert ok.returncode == 0, ok.stderr
    assert "succeeded" in ok.stdout


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    dag = write_dag(tmp_path, DAG)
    url = f"http://127.0.0.1:{_free_port()}"
    result = concurrent("--server", url, "run", str(dag), cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    assert f"Cannot reach the Concurrent server at {url}" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_stops_the_server_and_the_mlflow_server_it_started(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "CONCURRENT_STORE")}
    port = _free_port()
    argv = [sys.executable, "-m", "concurrent_mlflow.cli", "--home", str(home), "server", "--port", str(port)]
    server = subprocess.Popen(
        argv, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while local_mlflow.server_url(home / "mlflow") is None or not _answers(f"http://127.0.0.1:{port}"):
            assert server.poll() is None and time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.5)
        mlflow_url = local_mlflow.server_url(home / "mlflow")
        assert mlflow_url is not None
        assert _processes_in_group(home / "mlflow") == 1  # MLflow's launcher became the server (~280 MB)

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        assert local_mlflow.server_url(home / "mlflow") is None
        assert not _answers(mlflow_url)
    finally:
        if server.poll() is None:
            server.kill()
        local_mlflow.stop_server(home / "mlflow")


def _processes_in_group(root: Path) -> int:
    """How many processes the embedded MLflow server runs as (its process group, from its state file)."""
    pid = json.loads((root / "server.json").read_text())["pid"]
    members = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):  # a process that ended meanwhile
            members += int(stat.read_text().rsplit(")", 1)[1].split()[2]) == pid  # field 5: pgrp
    return members


def _answers(url: str) -> bool:
    try:
        httpx.get(f"{url}/health", timeout=2)
        return True
    except httpx.HTTPError:
        return False
