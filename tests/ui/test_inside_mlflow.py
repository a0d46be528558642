"""Our UI inside MLflow's own server (`mlflow server --app-name concurrent`), in a real browser: MLflow's UI
gains a "DAGs" entry that opens ours under /concurrent/, and a child run's MLflow page links back to its DAG run."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.fixtures.mlflow_app import MlflowApp, serving_mlflow_app
from tests.integration.conftest import TOOLBOX, make_files

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowApp]:
    with serving_mlflow_app(tmp_path_factory.mktemp("ui-mlflow-app")) as served:
        yield served


def finished_run(app: MlflowApp, name: str) -> dict[str, Any]:
    """Stores and runs a two-partition DAG through /concurrent/api/v1; its detail once it has ended."""
    make_files(app.work_dir / "data", {"a.txt": "alpha\n", "b.txt": "beta\n"})
    dag = (
        f"name: {name}\nnodes:\n  - {{id: raw, kind: source, uri: data}}\n"
        f"  - {{id: work, kind: project, project: '{TOOLBOX}', entry_point: transform, partitions: 2}}\n"
        "edges:\n  - {from: raw, to: work, input: text}\n"
    )
    with httpx.Client(base_url=app.api, timeout=60) as api:
        api.post("/dags", json={"yaml": dag}).raise_for_status()
        run = api.post("/runs", json={"dag": name}).raise_for_status().json()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            detail: dict[str, Any] = api.get(f"/runs/{run['id']}").json()
            if detail["state"] in ("succeeded", "failed", "cancelled"):
                return detail
            time.sleep(0.5)
    raise AssertionError(f"run {run['id']} did not end: {detail}")


def test_mlflows_navigation_has_a_dags_entry_that_opens_our_dag_list(page: Page, app: MlflowApp) -> None:
    page.goto(f"{app.url}/")
    dags = page.get_by_role("link", name="DAGs", exact=True)
    expect(dags).to_be_visible(timeout=60_000)
    expect(page.get_by_role("link", name="Experiments", exact=True).first).to_be_visible()
    expect(dags).to_have_count(1)
    dags.click()
    expect(page).to_have_url(f"{app.url}/concurrent/")
    expect(page.get_by_role("heading", name="DAGs", level=1)).to_be_visible()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs")).to_have_attribute(
        "href", "/concurrent/runs"
    )


def test_a_child_runs_mlflow_page_links_back_to_its_dag_run(page: Page, app: MlflowApp) -> None:
    detail = finished_run(app, "inside-ui")
    assert detail["state"] == "succeeded", detail
    with httpx.Client(base_url=app.api, timeout=60) as api:
        tasks = api.get(f"/runs/{detail['id']}/tasks", params={"node": "work"}).raise_for_status().json()
    child = tasks["items"][1]
    child_page = f"{app.url}/#/experiments/{detail['experiment_id']}/runs/{child['mlflow_run_id']}"
    # Served by MLflow itself, the API's links may be relative to it: same page either way.
    assert urljoin(f"{app.url}/concurrent/", child["mlflow_url"]) == child_page

    page.goto(child_page)
    # A child run carries the DAG run's id, node and partition (the DAG's name is on the parent run only).
    name = f"Open DAG run {detail['id'][:8]} (work[1]) in Concurrent"
    back = page.get_by_role("link", name=name, exact=True)
    expect(back).to_be_visible(timeout=60_000)
    expect(page.get_by_role("link", name="DAGs", exact=True)).to_be_visible()
    expect(back).to_have_count(1)  # however often MLflow's UI redraws
    back.click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(app.url)}/concurrent/runs/{detail['id']}\?node=work$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Run {detail['id'][:8]} of inside-ui")
    expect(page.get_by_test_id("monitor-node-work")).to_have_attribute("data-state", "succeeded")
    partitions = page.get_by_role("region", name="Partitions of work")
    expect(partitions.get_by_role("status")).to_have_text("2 partitions")
    # Its links lead back into this same MLflow server, to the page we came from.
    link = partitions.get_by_role("link", name="child run").nth(1)
    expect(link).to_be_visible()
    assert link.evaluate("a => a.href") == child_page
