"""`mlflow server --app-name concurrent` over real HTTP: MLflow's API and UI are untouched but for the nav
script; ours answers under /concurrent/ and runs DAGs tracked into this very MLflow server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from mlflow.tracking import MlflowClient

from concurrent_mlflow.mlflow_plugin.app import bound_address
from tests.fixtures.mlflow_app import MlflowApp, serving_mlflow_app
from tests.integration.conftest import TOOLBOX, make_files

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowApp]:
    with serving_mlflow_app(tmp_path_factory.mktemp("mlflow-app")) as served:
        yield served


def test_mlflow_keeps_its_api_and_ui_and_gains_the_nav_script(app: MlflowApp) -> None:
    index = httpx.get(f"{app.url}/")
    assert index.status_code == 200 and "<title>MLflow</title>" in index.text
    assert index.text.count('<script defer src="/concurrent/mlflow-nav.js"></script></body>') == 1
    assert int(index.headers["content-length"]) == len(index.content)
    script = httpx.get(f"{app.url}/concurrent/mlflow-nav.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "data-concurrent-nav" in script.text

    experiments = httpx.post(f"{app.url}/api/2.0/mlflow/experiments/search", json={"max_results": 10})
    assert experiments.status_code == 200 and "experiments" in experiments.json()
    static = httpx.get(f"{app.url}/static-files/favicon.ico")
    assert static.status_code == 200 and b"</body>" not in static.content


def test_our_ui_and_api_answer_under_concurrent(app: MlflowApp) -> None:
    page = httpx.get(f"{app.url}/concurrent/runs/0123abcd")
    assert page.status_code == 200 and '<base href="/concurrent/" />' in page.text
    assert httpx.get(f"{app.url}/concurrent").headers["location"] == "/concurrent/"
    assert httpx.get(f"{app.api}/health").json()["status"] == "ok"
    missing = httpx.get(f"{app.api}/no-such-endpoint")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


def test_a_dag_run_is_tracked_into_this_very_mlflow_server(app: MlflowApp) -> None:
    make_files(app.work_dir / "data", {"a.txt": "alpha\n", "b.txt": "beta\n"})
    dag = (
        "name: inside-mlflow\nnodes:\n  - {id: raw, kind: source, uri: data}\n"
        f"  - {{id: work, kind: project, project: '{TOOLBOX}', entry_point: transform, partitions: 2}}\n"
        "edges:\n  - {from: raw, to: work, input: text}\n"
    )
    with httpx.Client(base_url=app.api, timeout=60) as api:
        api.post("/dags", json={"yaml": dag}).raise_for_status()
        run = api.post("/runs", json={"dag": "inside-mlflow"}).raise_for_status().json()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            detail = api.get(f"/runs/{run['id']}").json()
            if detail["state"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.5)
    assert detail["state"] == "succeeded", detail
    assert detail["mlflow_url"] == f"/#/experiments/{detail['experiment_id']}/runs/{detail['mlflow_run_id']}"
    # The engine ends the MLflow parent run right after the store says succeeded: allow it that moment.
    client = MlflowClient(app.url)
    deadline = time.monotonic() + 30
    while (parent := client.get_run(detail["mlflow_run_id"])).info.status == "RUNNING":
        assert time.monotonic() < deadline, "the parent run was never ended in MLflow"
        time.sleep(0.5)
    assert parent.data.tags["concurrent.run_id"] == run["id"] and parent.info.status == "FINISHED"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["uvicorn", "--host", "0.0.0.0", "--port", "5005", "--factory", "x:y"], ("0.0.0.0", 5005)),
        (["uvicorn", "--factory", "x:y"], ("127.0.0.1", 5000)),
    ],
)
def test_the_engine_finds_the_address_mlflow_started_uvicorn_on(
    argv: list[str], expected: tuple[str, int]
) -> None:
    assert bound_address(argv) == expected
