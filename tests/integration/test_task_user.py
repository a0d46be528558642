"""`concurrent server --auth --allow-local-execution --task-user nobody`, for real: a user with no grants
runs a DAG whose own project code tries to read the server's secret.key and SQLite store, and is refused
(PermissionError), while an ordinary task beside it still succeeds and logs its outputs to MLflow.

Everything the task user must read (the projects, the input) lives in a directory anyone may traverse, as
does the server's data dir, so the refusal comes from the data dir's own modes. Needs root."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from mlflow.tracking import MlflowClient

from concurrent_mlflow.store import access, open_store
from tests.fixtures.control_plane import ControlPlane
from tests.fixtures.mlflow_server import MlflowServer
from tests.fixtures.task_user import needs_nobody, open_world
from tests.integration.conftest import TOOLBOX

pytestmark = [pytest.mark.integration, needs_nobody]

PEEK = """\
import sys
from pathlib import Path

from concurrent_mlflow import task

lines = []
for target in sys.argv[1:]:
    try:
        lines.append(f"{Path(target).name}: read {len(Path(target).read_bytes())} bytes")
    except OSError as exc:
        lines.append(f"{Path(target).name}: {type(exc).__name__}")
print("\\n".join(lines))
(task.output_dir() / "peek.txt").write_text("\\n".join(lines))
"""


@pytest.fixture
def world(mlflow_server: MlflowServer) -> Iterator[Path]:
    with open_world() as root:
        (root / "data").mkdir()
        (root / "data" / "a.txt").write_text("hello\n")
        peek = root / "peek"
        peek.mkdir()
        (peek / "MLproject").write_text(
            "name: peek\nentry_points:\n  main:\n    parameters: {key: string, store: string}\n"
            "    command: python peek.py {key} {store}\n"
        )
        (peek / "peek.py").write_text(PEEK)
        (root / "home").mkdir()
        (root / "home" / "secret.key").write_text(Fernet.generate_key().decode() + "\n")
        yield root


def test_project_code_run_as_the_task_user_cannot_read_the_servers_key_or_store(
    world: Path, mlflow_server: MlflowServer
) -> None:
    roots = ["--allow-local-root", str(world), "--allow-local-root", str(TOOLBOX)]
    plane = ControlPlane.under(
        world,
        mlflow_server.url,
        *["--auth", "--allow-local-execution", "--task-user", "nobody", *roots],
        CONCURRENT_CACHE=str(world / "home" / "cache"),
        CONCURRENT_TASK_HOME=str(world / "tasks"),
        CONCURRENT_SECRET_KEY="",  # the key file in the data dir is the one in use
    )
    dag = (
        "name: nosy\nnodes:\n  - {id: raw, kind: source, uri: data}\n"
        f"  - {{id: work, kind: project, project: '{TOOLBOX}', entry_point: transform}}\n"
        f"  - {{id: peek, kind: project, project: peek, entry_point: main, parameters: "
        f"{{key: '{plane.home / 'secret.key'}', store: '{plane.store_url}'}}}}\n"
        "edges:\n  - {from: raw, to: work, input: text}\n"
    )
    try:
        plane.start()
        store = open_store(plane.store_url)
        token = access.create_token(store, "mallory", "test")  # no grants, no admin
        store.close()
        with plane.client(token) as api:
            assert api.post("/dags", json={"yaml": dag}).status_code == 201, plane.logs()
            run_id = api.post("/runs", json={"dag": "nosy"}).raise_for_status().json()["id"]
            detail = plane.wait_for_run(run_id, token=token, timeout=240)
            assert detail["state"] == "succeeded", (detail, plane.logs())
            peek_log = api.get(f"/runs/{run_id}/tasks/peek/0/log").text
            (work,) = api.get(f"/runs/{run_id}/tasks", params={"node": "work"}).json()["items"]
    finally:
        plane.stop()
    assert "secret.key: PermissionError" in peek_log and "store.db: PermissionError" in peek_log, peek_log
    outputs = MlflowClient(mlflow_server.url).list_artifacts(work["mlflow_run_id"], "outputs/text")
    assert [a.path for a in outputs] == ["outputs/text/a.txt.out"]
