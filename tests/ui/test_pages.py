"""The DAG list, clusters and schedules pages, and signing in, in a real browser against a real server; every
change a page makes is checked against the REST API too."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Page, expect

from tests.fixtures.control_plane import ControlPlane, started
from tests.fixtures.mlflow_server import MlflowServer
from tests.integration.conftest import TOOLBOX, fan_in_dag
from tests.ui.conftest import store_dag

pytestmark = pytest.mark.ui


def small_dag(name: str, description: str | None = None) -> str:
    text = (
        f"name: {name}\n" + (f"description: {description}\n" if description else "") + "nodes:\n"
        "  - {id: raw, kind: source, uri: data}\n"
        f'  - {{id: work, kind: project, project: "{TOOLBOX}", entry_point: transform, partitions: 2}}\n'
        "edges:\n"
        "  - {from: raw, to: work, input: text}\n"
    )
    return text


def status_of(plane: ControlPlane, path: str) -> int:
    with plane.client() as api:
        return api.get(path).status_code


def test_the_dag_list_searches_duplicates_exports_deletes_and_imports(
    page: Page, plane: ControlPlane, tmp_path: Path
) -> None:
    store_dag(plane, small_dag("list-alpha", "first of two"))
    store_dag(plane, small_dag("list-beta"))
    page.goto(f"{plane.url}/")
    rows = page.locator("table.grid tbody tr")
    expect(page.get_by_role("link", name="list-alpha", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="list-beta", exact=True)).to_be_visible()

    page.get_by_label("Search DAGs").fill("list-al")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("list-alpha")
    expect(rows).to_contain_text("first of two")
    page.get_by_label("Search DAGs").fill("no-such-dag-anywhere")
    expect(page.get_by_text("No DAGs match “no-such-dag-anywhere”.")).to_be_visible()
    page.get_by_label("Search DAGs").fill("list-")
    expect(rows).to_have_count(2)

    # Export: the newest version's YAML, as stored.
    with page.expect_download() as download:
        page.get_by_role("button", name="Export list-alpha").click()
    assert download.value.suggested_filename == "list-alpha-v1.yaml"
    assert Path(download.value.path()).read_text() == small_dag("list-alpha", "first of two")

    # Duplicate: a new DAG (version 1) with the same document under the new name, opened in the designer.
    page.get_by_role("button", name="Duplicate list-alpha").click()
    dialog = page.get_by_role("dialog", name="Duplicate list-alpha")
    expect(dialog.get_by_label("New DAG name")).to_have_value("list-alpha-copy")
    dialog.get_by_label("New DAG name").fill("list-gamma")
    dialog.get_by_role("button", name="Duplicate").click()
    expect(page).to_have_url(f"{plane.url}/dags/list-gamma")
    expect(page.get_by_test_id("node-work")).to_be_visible()
    with plane.client() as api:
        copy = api.get("/dags/list-gamma").raise_for_status().json()
    original = yaml.safe_load(small_dag("list-alpha", "first of two"))
    assert copy["version"] == 1 and yaml.safe_load(copy["yaml"]) == {**original, "name": "list-gamma"}

    # Delete, after a confirmation.
    page.get_by_role("link", name="DAGs", exact=True).click()
    page.get_by_label("Search DAGs").fill("list-")
    expect(rows).to_have_count(3)
    page.get_by_role("button", name="Delete list-beta").click()
    confirm = page.get_by_role("dialog", name="Delete DAG")
    expect(confirm).to_contain_text("Delete list-beta and all its versions and schedules?")
    confirm.get_by_role("button", name="Delete").click()
    expect(confirm).to_have_count(0)
    expect(rows).to_have_count(2)
    expect(page.get_by_role("link", name="list-beta", exact=True)).to_have_count(0)
    assert status_of(plane, "/dags/list-beta") == 404

    # Import: a broken document shows the server's problems and stores nothing; a good one opens.
    broken = tmp_path / "broken.yaml"
    broken.write_text(small_dag("list-broken").replace("to: work", "to: ghost"))
    page.get_by_label("Import YAML file").set_input_files(broken)
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("edges.raw->ghost")
    expect(alert).to_contain_text("ghost")
    expect(page).to_have_url(f"{plane.url}/")
    assert status_of(plane, "/dags/list-broken") == 404

    good = tmp_path / "good.yaml"
    good.write_text(small_dag("list-imported"))
    page.get_by_label("Import YAML file").set_input_files(good)
    expect(page).to_have_url(f"{plane.url}/dags/list-imported")
    expect(page.get_by_test_id("node-raw")).to_be_visible()
    expect(page.get_by_test_id("edge-raw->work")).to_have_count(1)
    with plane.client() as api:
        imported = api.get("/dags/list-imported").raise_for_status().json()
    assert imported["version"] == 1 and imported["yaml"] == small_dag("list-imported")


def unreachable_kubeconfig() -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "work",
            "contexts": [
                {"name": "work", "context": {"cluster": "work", "user": "work", "namespace": "jobs"}}
            ],
            "clusters": [
                {
                    "name": "work",
                    "cluster": {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True},
                }
            ],
            "users": [{"name": "work", "user": {"token": "ui-test-token-0123456789"}}],
        }
    )


def test_a_registered_cluster_that_cannot_be_reached_is_shown_unreachable(
    page: Page, plane: ControlPlane
) -> None:
    page.goto(f"{plane.url}/clusters")
    expect(page.get_by_text("No clusters registered yet.")).to_be_visible()
    form = page.get_by_role("form", name="Register a cluster")
    form.get_by_label("Cluster name").fill("ui-nowhere")
    form.get_by_label("Kubeconfig", exact=True).fill(unreachable_kubeconfig())
    form.get_by_role("button", name="Register cluster").click()

    verdict = form.get_by_role("status")
    expect(verdict).to_contain_text("ui-nowhere is unreachable: ", timeout=60_000)
    expect(verdict).to_contain_text("https://127.0.0.1:1")
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="ui-nowhere"))
    expect(row).to_contain_text("https://127.0.0.1:1")
    expect(row).to_contain_text("jobs")
    expect(row.locator(".reach")).to_have_text("unreachable")
    with plane.client(timeout=60) as api:
        stored = api.get("/clusters/ui-nowhere").raise_for_status().json()
    assert stored["reachable"] is False and stored["check_message"]
    expect(row).to_contain_text(stored["check_message"])
    expect(verdict).to_have_text(f"ui-nowhere is unreachable: {stored['check_message']}")

    # Checking again from its row checks anew (a new "checked" time) and says the same.
    checked = row.locator("time")
    expect(checked).to_have_attribute("datetime", stored["checked_at"])
    row.get_by_role("button", name="Check ui-nowhere").click()
    expect(checked).not_to_have_attribute("datetime", stored["checked_at"], timeout=60_000)
    expect(row.locator(".reach")).to_have_text("unreachable")
    with plane.client(timeout=60) as api:
        rechecked = api.get("/clusters/ui-nowhere").raise_for_status().json()
    assert rechecked["reachable"] is False and rechecked["checked_at"] > stored["checked_at"]
    expect(checked).to_have_attribute("datetime", rechecked["checked_at"])

    # Deleting it (confirmed) forgets it.
    row.get_by_role("button", name="Delete ui-nowhere").click()
    page.get_by_role("dialog", name="Delete cluster").get_by_role("button", name="Delete").click()
    expect(page.get_by_text("No clusters registered yet.")).to_be_visible()
    assert status_of(plane, "/clusters/ui-nowhere") == 404


def test_schedules_are_created_paused_resumed_and_deleted(page: Page, plane: ControlPlane) -> None:
    store_dag(plane, fan_in_dag("sched-dag", 2))

    def schedules() -> list[dict[str, object]]:
        with plane.client() as api:
            items: list[dict[str, object]] = (
                api.get("/schedules", params={"dag": "sched-dag"}).raise_for_status().json()["items"]
            )
            return items

    page.goto(f"{plane.url}/schedules?dag=sched-dag")
    form = page.get_by_role("form", name="New schedule")
    expect(form.get_by_label("DAG")).to_have_value("sched-dag")
    form.get_by_label("Cron").fill("every day at noon")
    form.get_by_role("button", name="Create schedule").click()
    expect(form.get_by_role("alert")).to_contain_text("cron")
    assert schedules() == []

    form.get_by_label("Cron").fill("0 3 * * *")
    form.get_by_label("Time zone").fill("Europe/Paris")
    form.get_by_role("button", name="Create schedule").click()
    expect(form.get_by_role("alert")).to_have_count(0)
    expect(form.get_by_label("Cron")).to_have_value("")
    [created] = schedules()
    assert (
        created["cron"] == "0 3 * * *"
        and created["timezone"] == "Europe/Paris"
        and created["enabled"] is True
    )
    schedule_id = created["id"]
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=f"sched-dag #{schedule_id}"))
    expect(row).to_contain_text("0 3 * * *")
    expect(row).to_contain_text("Europe/Paris")
    expect(row.get_by_role("cell").nth(3)).to_have_text("active")

    row.get_by_role("button", name=f"Pause schedule {schedule_id}").click()
    expect(row.get_by_role("cell").nth(3)).to_have_text("paused")
    assert schedules()[0]["enabled"] is False
    row.get_by_role("button", name=f"Resume schedule {schedule_id}").click()
    expect(row.get_by_role("cell").nth(3)).to_have_text("active")
    assert schedules()[0]["enabled"] is True

    row.get_by_role("button", name=f"Delete schedule {schedule_id}").click()
    confirm = page.get_by_role("dialog", name="Delete schedule")
    expect(confirm).to_contain_text("0 3 * * *")
    confirm.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    assert schedules() == []
    assert status_of(plane, f"/schedules/{schedule_id}") == 404


def test_a_server_with_auth_asks_for_a_token_and_refuses_a_wrong_one(
    page: Page, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    roots = ["--allow-local-root", str(tmp_path), "--allow-local-root", str(TOOLBOX)]
    with started(ControlPlane.under(tmp_path, mlflow_server.url, "--auth", *roots)) as secured:
        token = secured.cli("token", "create", "ui-user").strip()
        with secured.client(token) as api:
            assert api.post("/dags", json={"yaml": small_dag("auth-dag")}).status_code == 201

        page.goto(f"{secured.url}/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.get_by_role("link", name="DAGs")).to_have_count(0)
        field = page.get_by_label("API token")
        field.fill("cmf_000000000000_nope")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_have_text("That token is not valid (or was revoked).")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

        field.fill(token)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="DAGs", level=1)).to_be_visible()
        expect(page.locator(".topbar .who")).to_have_text("ui-user")
        expect(page.get_by_role("link", name="auth-dag", exact=True)).to_be_visible()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
