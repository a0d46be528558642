"""The run monitor in a real browser: runs started from the UI on a real `concurrent server` with real task
processes tracked into a real MLflow server; states, counts, partitions, logs, overrides and cancel."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.fixtures.control_plane import ControlPlane
from tests.integration.conftest import fan_in_dag, make_files
from tests.ui.conftest import store_dag

pytestmark = pytest.mark.ui

RUN_URL = re.compile(r"/runs/([0-9a-f]{8,})")
# How long a whole small run may take on a loaded 2-core machine (task processes start MLflow each).
RUN_TIMEOUT_MS = 240_000


def dag_on(plane: ControlPlane, name: str, files: int, partitions: int, **params: object) -> str:
    """fan_in_dag (raw -> upper: toolbox transform -> total: gather count) over its own data directory."""
    make_files(plane.work_dir / f"data-{name}", {f"f{i}.txt": f"word{i} body\n" for i in range(files)})
    return fan_in_dag(name, partitions, retries=0, **params).replace("uri: data}", f"uri: data-{name}}}")


def run_id_of(page: Page) -> str:
    expect(page).to_have_url(RUN_URL)
    match = RUN_URL.search(page.url)
    assert match
    return match.group(1)


def run_state(page: Page) -> Locator:
    return page.locator(".run-header .run-title [data-state]")


def api_run(plane: ControlPlane, run_id: str) -> dict[str, Any]:
    with plane.client() as api:
        body: dict[str, Any] = api.get(f"/runs/{run_id}").raise_for_status().json()
        return body


def runs_of(plane: ControlPlane, dag: str) -> list[dict[str, Any]]:
    with plane.client() as api:
        items: list[dict[str, Any]] = api.get("/runs", params={"dag": dag}).raise_for_status().json()["items"]
        return items


def test_a_run_started_from_the_dag_list_shows_states_counts_partitions_and_the_failed_log(
    page: Page, plane: ControlPlane
) -> None:
    store_dag(plane, dag_on(plane, "ui-fails", files=6, partitions=4, fail_on_partition=2))
    page.goto(f"{plane.url}/")
    page.get_by_role("button", name="Run ui-fails").click()
    dialog = page.get_by_role("dialog", name="Start a run of ui-fails")
    expect(dialog.get_by_label("upper.fail_on_partition")).to_have_attribute("placeholder", "2")
    dialog.get_by_role("button", name="Start run").click()
    run_id = run_id_of(page)
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Run {run_id[:8]} of ui-fails v1")

    expect(run_state(page)).to_have_attribute("data-state", "failed", timeout=RUN_TIMEOUT_MS)
    detail = api_run(plane, run_id)
    assert detail["state"] == "failed"
    stages = {s["node"]: s for s in detail["stages"]}
    assert stages["upper"]["counts"] == {"succeeded": 3, "failed": 1}, stages

    upper = page.get_by_test_id("monitor-node-upper")
    expect(upper).to_have_attribute("data-state", "failed")
    expect(upper).to_contain_text("3 / 4 succeeded · 1 failed")
    expect(upper).to_have_attribute(
        "aria-label", re.compile(r"^Node upper, failed, 3 / 4 succeeded · 1 failed$")
    )
    expect(page.get_by_test_id("monitor-node-total")).to_have_attribute(
        "data-state", stages["total"]["state"]
    )
    expect(page.get_by_test_id("monitor-node-raw")).to_have_attribute("data-state", "source")

    # The partition table of the failed node: one row per partition, in order, with its state.
    upper.click()
    expect(page).to_have_url(re.compile(r"\?node=upper$"))
    partitions = page.get_by_role("region", name="Partitions of upper")
    expect(partitions.get_by_role("status")).to_have_text("4 partitions")
    rows = partitions.locator(".vbody [role=row]")
    expect(rows).to_have_count(4)
    for index, state in enumerate(["succeeded", "succeeded", "failed", "succeeded"]):
        cells = rows.nth(index).get_by_role("cell")
        expect(cells.nth(0)).to_have_text(str(index))
        expect(cells.nth(1)).to_have_text(state)
        expect(cells.nth(2)).to_have_text("1")  # attempts: retries 0

    # Child run links go to the MLflow server, one per task, as the API lists them.
    with plane.client() as api:
        tasks = api.get(f"/runs/{run_id}/tasks", params={"node": "upper"}).raise_for_status().json()["items"]
    links = partitions.get_by_role("link", name="child run")
    expect(links).to_have_count(4)
    hrefs = [links.nth(i).get_attribute("href") for i in range(4)]
    assert hrefs == [t["mlflow_url"] for t in tasks]
    experiment = detail["experiment_id"]
    assert all(h and h.startswith(f"{plane.tracking_uri}/#/experiments/{experiment}/runs/") for h in hrefs)

    # The failure list names the first failed partition and opens its log: the task's real stderr.
    failures = page.get_by_role("region", name="Failures")
    expect(failures).to_contain_text("upper — 1 partition failed, first: upper[2]")
    failures.get_by_role("button", name="Open log of upper[2]").click()
    log = page.get_by_role("dialog", name="Log of upper[2]")
    output = log.get_by_label("Output of upper[2]")
    expect(output).to_contain_text("partition 2 of 4: ")
    expect(output).to_contain_text("failing on purpose")
    expect(log.get_by_role("status")).to_have_text("Latest attempt.")
    with page.expect_download() as download:
        log.get_by_role("button", name="Download").click()
    assert download.value.suggested_filename == "upper-2.log"
    assert Path(download.value.path()).read_text() == output.inner_text()
    log.get_by_role("button", name="Close").click()
    expect(log).to_have_count(0)

    # The same log from the partition's row; a succeeded partition's log has no failure in it.
    partitions.get_by_role("button", name="Log of partition 2").click()
    expect(page.get_by_label("Output of upper[2]")).to_contain_text("failing on purpose")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    partitions.get_by_role("button", name="Log of partition 1").click()
    expect(page.get_by_label("Output of upper[1]")).to_contain_text("partition 1 of 4: ")
    expect(page.get_by_label("Output of upper[1]")).not_to_contain_text("failing on purpose")
    page.get_by_role("dialog").get_by_role("button", name="Close").click()

    expect(page.get_by_role("link", name="Open in MLflow")).to_have_attribute("href", detail["mlflow_url"])
    expect(page.get_by_role("button", name="Retry failed")).to_be_enabled()
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)


def test_a_run_with_an_override_from_the_dialog_succeeds_and_a_bad_override_starts_nothing(
    page: Page, plane: ControlPlane
) -> None:
    store_dag(plane, dag_on(plane, "ui-override", files=2, partitions=2, fail_on_partition=1))
    page.goto(f"{plane.url}/dags/ui-override")
    expect(page.get_by_test_id("node-upper")).to_be_visible()
    page.get_by_role("button", name="Run", exact=True).click()
    dialog = page.get_by_role("dialog", name="Start a run of ui-override")
    dialog.get_by_label("upper.fail_on_partition").fill("-1")
    dialog.get_by_role("button", name="Start run").click()
    run_id = run_id_of(page)
    expect(page.locator(".run-facts")).to_contain_text("upper.fail_on_partition=-1")
    expect(run_state(page)).to_have_attribute("data-state", "succeeded", timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_test_id("monitor-node-upper")).to_contain_text("2 / 2 succeeded")
    expect(page.get_by_test_id("monitor-node-total")).to_have_attribute("data-state", "succeeded")
    detail = api_run(plane, run_id)
    assert detail["state"] == "succeeded" and detail["overrides"] == {"upper.fail_on_partition": "-1"}
    expect(page.get_by_role("region", name="Failures")).to_have_count(0)
    expect(page.get_by_role("button", name="Retry failed")).to_have_count(0)

    # An override of a parameter the entry point does not have: the server's problem, in the dialog.
    page.goto(f"{plane.url}/runs?dag=ui-override")
    page.get_by_role("button", name="Start run").click()
    dialog = page.get_by_role("dialog", name="Start a run of ui-override")
    dialog.get_by_role("button", name="Add override").click()
    dialog.get_by_label("Override 1 key").fill("upper.no_such_param")
    dialog.get_by_label("Override 1 value").fill("1")
    dialog.get_by_role("button", name="Start run").click()
    expect(dialog.get_by_role("alert")).to_contain_text("no_such_param")
    expect(dialog).to_be_visible()
    expect(page).to_have_url(re.compile(r"/runs\?dag=ui-override$"))
    assert [r["id"] for r in runs_of(plane, "ui-override")] == [run_id]


def test_cancel_run_stops_a_running_run(page: Page, plane: ControlPlane) -> None:
    store_dag(plane, dag_on(plane, "ui-cancel", files=2, partitions=2, sleep=120))
    with plane.client() as api:
        started = api.post("/runs", json={"dag": "ui-cancel"})
        assert started.status_code == 201, started.text
        run_id = started.json()["id"]
    page.goto(f"{plane.url}/runs/{run_id}")
    upper = page.get_by_test_id("monitor-node-upper")
    expect(upper).to_have_attribute("data-state", "running", timeout=RUN_TIMEOUT_MS)
    page.get_by_role("button", name="Cancel run").click()
    confirm = page.get_by_role("dialog", name=f"Cancel run {run_id[:8]}?")
    confirm.get_by_role("button", name="Yes, cancel run").click()
    expect(confirm).to_have_count(0)
    expect(run_state(page)).to_have_attribute("data-state", "cancelled", timeout=RUN_TIMEOUT_MS)
    assert api_run(plane, run_id)["state"] == "cancelled"
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    expect(page.get_by_role("button", name="Retry failed")).to_be_visible()
