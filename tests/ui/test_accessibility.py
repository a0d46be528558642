"""Accessibility of every page in a real browser: each control has an accessible name (as Chromium itself
computes it, from its accessibility tree), and Tab walks the main controls with a visible focus outline."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from playwright.sync_api import Page, expect

from tests.fixtures.control_plane import ControlPlane
from tests.integration.conftest import fan_in_dag, make_files
from tests.ui.conftest import store_dag

pytestmark = pytest.mark.ui

# Roles of things a user operates; Chromium gives <select> "combobox", <input type=file> "button", and
# <input type=number> "spinbutton".
CONTROL_ROLES = {
    "button",
    "link",
    "textbox",
    "searchbox",
    "combobox",
    "listbox",
    "checkbox",
    "radio",
    "spinbutton",
    "slider",
    "switch",
    "tab",
    "menuitem",
}

DAG = "a11y-dag"


@pytest.fixture(scope="module")
def world(plane: ControlPlane) -> Iterator[dict[str, Any]]:
    """A stored DAG, a finished (failed) run of it, a registered cluster and a schedule: every page has content."""
    make_files(plane.work_dir / "data", {"a.txt": "alpha\n", "b.txt": "beta\n"})
    store_dag(plane, fan_in_dag(DAG, 2, fail_on_partition=1))
    kubeconfig = yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "c",
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
            "users": [{"name": "u", "user": {"token": "a11y-token-0123456789"}}],
        }
    )
    with plane.client() as api:
        run = api.post("/runs", json={"dag": DAG}).raise_for_status().json()
        api.post("/clusters", json={"name": "a11y-cluster", "kubeconfig": kubeconfig}).raise_for_status()
        schedule = api.post("/schedules", json={"dag": DAG, "cron": "0 3 * * *"}).raise_for_status().json()
    done = plane.wait_for_run(run["id"])
    assert done["state"] == "failed", done
    yield {"run_id": run["id"], "schedule_id": schedule["id"]}


def unnamed_controls(page: Page) -> list[str]:
    """Every control in Chromium's accessibility tree whose computed name is empty, as '<role> <html tag>'."""
    cdp = page.context.new_cdp_session(page)
    try:
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
        found = []
        for node in nodes:
            role = node.get("role", {}).get("value", "")
            if node.get("ignored") or role not in CONTROL_ROLES:
                continue
            if str(node.get("name", {}).get("value", "")).strip():
                continue
            described = cdp.send("DOM.describeNode", {"backendNodeId": node["backendDOMNodeId"]})["node"]
            attributes = described.get("attributes", [])
            pairs = " ".join(f'{k}="{v}"' for k, v in zip(attributes[::2], attributes[1::2], strict=True))
            found.append(f"{role} <{described['localName']} {pairs}>")
        return found
    finally:
        cdp.detach()


def controls_count(page: Page) -> int:
    count: int = page.evaluate("document.querySelectorAll('button, a[href], input, select, textarea').length")
    return count


def assert_all_named(page: Page, at_least: int) -> None:
    assert controls_count(page) >= at_least, "the page did not render the controls this check is about"
    assert unnamed_controls(page) == []


# The focused element, described by what a user would call it, and whether its focus is visible: an outline on
# it, or on its label when it is itself visually hidden (the DAG list's file input).
FOCUSED = """() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const labelled = el.getAttribute("aria-labelledby");
    const name = (el.getAttribute("aria-label")
        || (labelled && document.getElementById(labelled)?.textContent)
        || (el.labels && el.labels[0]?.textContent)
        || el.textContent || el.getAttribute("title") || "").trim().replace(/\\s+/g, " ");
    const outlined = (target) => {
        const style = getComputedStyle(target);
        return style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
    };
    const box = el.getBoundingClientRect();
    const hidden = box.width <= 1 || box.height <= 1;
    const visible = hidden ? Boolean(el.labels && [...el.labels].some(outlined)) : outlined(el);
    return {name, tag: el.tagName.toLowerCase(), visible};
}"""


def tab_through(page: Page, *expected: str, limit: int = 60) -> list[dict[str, Any]]:
    """Presses Tab until every expected name (in order) has had the focus; each focus must be visible."""
    page.locator("body").click(position={"x": 1, "y": 1})  # start from the top of the page
    page.evaluate("document.activeElement && document.activeElement.blur()")
    seen: list[dict[str, Any]] = []
    waiting = list(expected)
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused is None:
            continue
        seen.append(focused)
        assert focused["visible"], f"focus on {focused} has no visible outline"
        if waiting and focused["name"] == waiting[0]:
            waiting.pop(0)
        if not waiting:
            return seen
    raise AssertionError(f"Tab never reached {waiting}; it went through {[f['name'] for f in seen]}")


def test_the_check_finds_a_control_without_a_name(page: Page, plane: ControlPlane) -> None:
    """The checks below would pass vacuously if they could not see a missing name: show that they do."""
    page.goto(f"{plane.url}/")
    expect(page.get_by_role("heading", name="DAGs", level=1)).to_be_visible()
    page.evaluate(
        """() => {
        const div = document.createElement("div");
        div.innerHTML = '<button id="x-unnamed"><svg width="8" height="8"></svg></button>'
            + '<input id="y-unnamed" type="text"><select id="z-unnamed"></select>'
            + '<label for="w-named">Named</label><input id="w-named">';
        document.body.append(div);
    }"""
    )
    found = unnamed_controls(page)
    assert len(found) == 3, found
    ids = [re.search(r'id="(\w-unnamed)"', f) for f in found]
    assert [m.group(1) if m else f for m, f in zip(ids, found, strict=True)] == [
        "x-unnamed",
        "y-unnamed",
        "z-unnamed",
    ]


def test_the_dag_list_names_every_control_and_tab_walks_it(
    page: Page, plane: ControlPlane, world: dict[str, Any]
) -> None:
    page.goto(f"{plane.url}/")
    expect(page.get_by_role("link", name=DAG, exact=True)).to_be_visible()
    assert_all_named(page, at_least=12)
    tab_through(
        page,
        "Concurrent for MLflow",
        "DAGs",
        "Runs",
        "Schedules",
        "Clusters",
        "New DAG",
        "Import YAML file",
        "Search DAGs",
        DAG,
        f"Run {DAG}",
        f"Duplicate {DAG}",
        f"Export {DAG}",
        f"Delete {DAG}",
    )
    # A dialog's controls too.
    page.get_by_role("button", name=f"Run {DAG}").click()
    dialog = page.get_by_role("dialog", name=f"Start a run of {DAG}")
    expect(dialog.get_by_label("upper.fail_on_partition")).to_be_focused()
    dialog.get_by_role("button", name="Add override").click()
    assert_all_named(page, at_least=5)


def test_the_designer_names_every_control_and_tab_walks_it(
    page: Page, plane: ControlPlane, world: dict[str, Any]
) -> None:
    page.goto(f"{plane.url}/dags/{DAG}")
    node = page.get_by_test_id("node-upper")
    expect(node).to_be_visible()
    expect(page.get_by_role("button", name="Run", exact=True)).to_be_enabled()
    tab_through(
        page,
        "DAGs",
        "Version",
        "Save",
        "Run",
        "Validate",
        "Auto-layout",
        "Canvas",
        "Add source node",
        "Add project node",
        "Add inference node",
    )
    node.locator(".dg-node-head").click()
    panel = page.get_by_role("region", name="Node properties")
    expect(panel.get_by_role("combobox", name="Entry point")).to_have_value("transform")
    expect(panel.get_by_label("Parameter fail_on_partition")).to_have_value("1")
    assert_all_named(page, at_least=30)
    panel.get_by_label("Partitions").focus()
    page.keyboard.press("Tab")
    expect(panel.get_by_label("Parallelism")).to_be_focused()

    page.get_by_role("tab", name="YAML").click()
    expect(page.get_by_label("DAG YAML")).to_be_visible()
    assert_all_named(page, at_least=10)


def test_the_monitor_names_every_control_and_tab_walks_it(
    page: Page, plane: ControlPlane, world: dict[str, Any]
) -> None:
    run_id = world["run_id"]
    page.goto(f"{plane.url}/runs/{run_id}?node=upper")
    partitions = page.get_by_role("region", name="Partitions of upper")
    expect(partitions.get_by_role("status")).to_have_text("2 partitions")
    expect(partitions.get_by_role("link", name="child run")).to_have_count(2)
    assert_all_named(page, at_least=10)
    tab_through(
        page,
        "DAGs",
        "Open in MLflow",
        "Retry failed",
        "Open log of upper[1]",
        "Filter by state",
        "child run",
        "Log of partition 0",
    )
    partitions.get_by_role("button", name="Log of partition 1").click()
    log = page.get_by_role("dialog", name="Log of upper[1]")
    expect(log.get_by_label("Output of upper[1]")).to_contain_text("failing on purpose")
    assert_all_named(page, at_least=3)
    page.keyboard.press("Escape")
    expect(log).to_have_count(0)
    # Focus goes back to what opened the dialog.
    expect(partitions.get_by_role("button", name="Log of partition 1")).to_be_focused()


def test_the_clusters_and_schedules_pages_name_every_control_and_tab_walks_them(
    page: Page, plane: ControlPlane, world: dict[str, Any]
) -> None:
    page.goto(f"{plane.url}/clusters")
    expect(page.get_by_role("rowheader", name="a11y-cluster")).to_be_visible()
    assert_all_named(page, at_least=10)
    tab_through(
        page,
        "Clusters",
        "Check a11y-cluster",
        "Delete a11y-cluster",
        "Cluster name",
        "Kubeconfig",
        "Kubeconfig file",
        "Register cluster",
    )

    page.goto(f"{plane.url}/schedules")
    expect(page.get_by_role("link", name=DAG, exact=True)).to_be_visible()
    assert_all_named(page, at_least=10)
    schedule = world["schedule_id"]
    tab_through(
        page,
        "Schedules",
        DAG,
        f"Pause schedule {schedule}",
        f"Delete schedule {schedule}",
        "DAG",
        "Cron",
        "Time zone",
    )
