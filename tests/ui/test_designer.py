"""The DAG designer in a real browser against a real `concurrent server`: drag and connect a DAG, edit it in the
side panel and as YAML, see the server's validation on the nodes and edges it concerns, undo and redo."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from playwright.sync_api import Locator, Page, expect

from tests.fixtures.control_plane import ControlPlane
from tests.integration.conftest import TOOLBOX, make_files
from tests.ui.conftest import store_dag

pytestmark = pytest.mark.ui

PROJECT = str(TOOLBOX)


def stored_dag(plane: ControlPlane, name: str) -> dict[str, Any]:
    with plane.client() as api:
        response = api.get(f"/dags/{name}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def versions(plane: ControlPlane, name: str) -> list[int]:
    with plane.client() as api:
        return [v["version"] for v in api.get(f"/dags/{name}/versions").raise_for_status().json()]


def node_panel(page: Page) -> Locator:
    return page.get_by_role("region", name="Node properties")


def edge_panel(page: Page) -> Locator:
    return page.get_by_role("region", name="Edge properties")


def select_node(page: Page, node_id: str) -> Locator:
    """Clicks the node on the canvas; its property panel."""
    page.get_by_test_id(f"node-{node_id}").locator(".dg-node-head").click()
    panel = node_panel(page)
    expect(panel.get_by_label("Node id")).to_have_value(node_id)
    return panel


# A point on an edge's curve, a third of the way along (clear of its label in the middle), in page pixels.
POINT_ON_EDGE = """path => {
    const at = path.getPointAtLength(path.getTotalLength() / 3);
    const screen = new DOMPoint(at.x, at.y).matrixTransform(path.getScreenCTM());
    return {x: screen.x, y: screen.y};
}"""


def select_edge(page: Page, source: str, target: str) -> Locator:
    """Clicks the edge's curve with the mouse (a straight edge has a zero-height box Playwright cannot click)."""
    curve = page.get_by_test_id(f"edge-{source}->{target}").locator("path.react-flow__edge-path")
    point = curve.evaluate(POINT_ON_EDGE)
    page.mouse.click(point["x"], point["y"])
    panel = edge_panel(page)
    expect(panel.get_by_role("heading")).to_have_text(f"Edge {source} → {target}")
    return panel


def connect(page: Page, source: str, target: str) -> None:
    """Drags from the source node's output handle to the target node's input handle with the mouse."""
    page.get_by_test_id(f"node-{source}").locator(".react-flow__handle.source").drag_to(
        page.get_by_test_id(f"node-{target}").locator(".react-flow__handle.target")
    )
    expect(page.get_by_test_id(f"edge-{source}->{target}")).to_have_count(1)


def open_yaml(page: Page) -> Locator:
    page.get_by_role("tab", name="YAML").click()
    return page.get_by_label("DAG YAML")


def three_node_yaml(name: str) -> str:
    return f"""\
# a DAG stored by the test: comments and flow style are kept as written
name: {name}
nodes:
  - {{id: raw, kind: source, uri: data}}
  - id: upper
    kind: project
    project: "{PROJECT}"
    entry_point: transform
    partitions: 2
    parameters: {{suffix: .up}}
  - {{id: total, kind: project, project: "{PROJECT}", entry_point: count}}
edges:
  - {{from: raw, to: upper, input: text, partitioner: file}}
  - {{from: upper, to: total, input: upper, partitioner: gather}}
"""


def test_a_dag_built_by_dragging_and_connecting_is_saved_and_comes_back(
    page: Page, plane: ControlPlane
) -> None:
    make_files(plane.work_dir / "data", {"a/1.txt": "one\n", "b/2.txt": "two\n"})
    page.goto(f"{plane.url}/dags/new")
    canvas = page.locator(".react-flow__pane")
    for kind, x in (("source", 140), ("project", 440), ("project", 740)):
        page.get_by_role("button", name=f"Add {kind} node").drag_to(
            canvas, target_position={"x": x, "y": 220}
        )
    for dropped in ("source-1", "project-1", "project-2"):
        expect(page.get_by_test_id(f"node-{dropped}")).to_be_visible()
    # Dropped where the pointer let go, left to right, not stacked at one spot.
    boxes = [page.get_by_test_id(f"node-{n}").bounding_box() for n in ("source-1", "project-1", "project-2")]
    xs = [box["x"] for box in boxes if box]
    assert xs == sorted(xs) and xs[1] - xs[0] > 200 and xs[2] - xs[1] > 200, xs

    panel = select_node(page, "source-1")
    panel.get_by_label("Node id").fill("raw")
    panel.get_by_label("Source URI").fill("data")
    expect(page.get_by_test_id("node-raw")).to_contain_text("data")

    panel = select_node(page, "project-1")
    panel.get_by_label("Node id").fill("upper")
    panel.get_by_label("Project URI").fill(PROJECT)
    # The entry points come from the server, which read the MLproject: a select, not a free text field.
    entry_point = panel.get_by_role("combobox", name="Entry point")
    expect(entry_point.locator("option")).to_contain_text(
        ["transform", "count", "echo_params"], timeout=30_000
    )
    entry_point.select_option("transform")
    expect(panel.get_by_label("Parameter suffix")).to_have_attribute("placeholder", ".out")
    panel.get_by_label("Parameter suffix").fill(".up")
    panel.get_by_label("Partitions").fill("3")

    panel = select_node(page, "project-2")
    panel.get_by_label("Node id").fill("total")
    panel.get_by_label("Project URI").fill(PROJECT)
    panel.get_by_role("combobox", name="Entry point").select_option("count")

    connect(page, "raw", "upper")
    connect(page, "upper", "total")
    select_edge(page, "raw", "upper").get_by_label("Partitioner").select_option("directory")
    select_edge(page, "upper", "total").get_by_label("Partitioner").select_option("gather")
    expect(page.locator(".dg-edge-label", has_text="raw · directory")).to_be_visible()

    page.get_by_label("DAG name").fill("ui-dragged")
    expect(page.get_by_role("region", name="Problems")).to_contain_text("No problems found.")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".dg-status")).to_have_text("Saved version 1")
    expect(page).to_have_url(f"{plane.url}/dags/ui-dragged")

    document = yaml.safe_load(stored_dag(plane, "ui-dragged")["yaml"])
    assert document["name"] == "ui-dragged"
    assert [(n["id"], n["kind"]) for n in document["nodes"]] == [
        ("raw", "source"),
        ("upper", "project"),
        ("total", "project"),
    ]
    nodes = {n["id"]: n for n in document["nodes"]}
    assert nodes["raw"]["uri"] == "data"
    assert nodes["upper"]["project"] == PROJECT and nodes["upper"]["entry_point"] == "transform"
    assert nodes["upper"]["parameters"] == {"suffix": ".up"} and nodes["upper"]["partitions"] == 3
    assert nodes["total"]["entry_point"] == "count"
    assert [(e["from"], e["to"], e["input"], e["partitioner"]) for e in document["edges"]] == [
        ("raw", "upper", "raw", "directory"),
        ("upper", "total", "upper", "gather"),
    ]

    page.reload()
    expect(page.get_by_role("heading", name="DAG ui-dragged")).to_be_visible()
    for node_id in ("raw", "upper", "total"):
        expect(page.get_by_test_id(f"node-{node_id}")).to_be_visible()
    expect(page.get_by_test_id("node-upper")).to_contain_text(f"{PROJECT} : transform")
    expect(page.locator(".react-flow__edge")).to_have_count(2)
    expect(page.locator(".dg-edge-label", has_text="raw · directory")).to_be_visible()
    expect(page.locator(".dg-edge-label", has_text="upper · gather")).to_be_visible()
    expect(select_edge(page, "raw", "upper").get_by_label("Partitioner")).to_have_value("directory")
    panel = select_node(page, "upper")
    expect(panel.get_by_label("Parameter suffix")).to_have_value(".up")
    expect(panel.get_by_label("Partitions")).to_have_value("3")


def test_the_yaml_view_shows_the_stored_text_and_round_trips_with_the_canvas(
    page: Page, plane: ControlPlane
) -> None:
    text = three_node_yaml("ui-yaml")
    store_dag(plane, text)
    page.goto(f"{plane.url}/dags/ui-yaml")
    expect(page.get_by_test_id("node-upper")).to_be_visible()
    editor = open_yaml(page)
    expect(editor).to_have_value(stored_dag(plane, "ui-yaml")["yaml"])
    expect(editor).to_have_value(text)

    # YAML -> canvas: more partitions and a new node; the canvas shows them as soon as the tab is switched.
    audit = f'  - {{id: audit, kind: project, project: "{PROJECT}", entry_point: count}}\n'
    edited = text.replace("partitions: 2", "partitions: 5").replace("edges:\n", audit + "edges:\n")
    edited += "  - {from: upper, to: audit, input: upper, partitioner: broadcast}\n"
    editor.fill(edited)
    page.get_by_role("tab", name="Canvas").click()
    expect(page.get_by_test_id("node-audit")).to_be_visible()
    expect(page.get_by_test_id("edge-upper->audit")).to_have_count(1)
    panel = select_node(page, "upper")
    expect(panel.get_by_label("Partitions")).to_have_value("5")

    # Canvas -> YAML.
    panel.get_by_label("Parameter suffix").fill(".shout")
    editor = open_yaml(page)
    expect(editor).to_have_value(re.compile(r"suffix: \.shout"))
    document = yaml.safe_load(editor.input_value())
    assert [n["id"] for n in document["nodes"]] == ["raw", "upper", "total", "audit"]

    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".dg-status")).to_have_text("Saved version 2")
    assert versions(plane, "ui-yaml") == [2, 1]
    saved = yaml.safe_load(stored_dag(plane, "ui-yaml")["yaml"])
    nodes = {n["id"]: n for n in saved["nodes"]}
    assert set(nodes) == {"raw", "upper", "total", "audit"}
    assert nodes["upper"]["partitions"] == 5 and nodes["upper"]["parameters"] == {"suffix": ".shout"}
    assert {"from": "upper", "to": "audit", "input": "upper", "partitioner": "broadcast"} in saved["edges"]

    # Text that is not a DAG document: an alert, and the canvas keeps the last good document.
    editor = open_yaml(page)
    editor.fill("name: ui-yaml\nnodes: [\n")
    expect(page.get_by_role("alert")).to_contain_text("The YAML is not a usable DAG document")
    page.get_by_role("tab", name="Canvas").click()
    for node_id in ("raw", "upper", "total", "audit"):
        expect(page.get_by_test_id(f"node-{node_id}")).to_be_visible()
    expect(page.locator(".react-flow__edge")).to_have_count(3)


def test_the_servers_problems_show_on_the_node_or_edge_and_an_invalid_dag_is_not_saved(
    page: Page, plane: ControlPlane
) -> None:
    store_dag(plane, three_node_yaml("ui-problems"))
    page.goto(f"{plane.url}/dags/ui-problems")
    problems = page.get_by_role("list", name="Problems")
    editor = open_yaml(page)
    expect(editor).to_have_value(three_node_yaml("ui-problems"))

    # An unknown parameter and an entry point the MLproject lacks: the server names the node of each.
    editor.fill(
        three_node_yaml("ui-problems")
        .replace("parameters: {suffix: .up}", "parameters: {suffix: .up, bogus: 1}")
        .replace("entry_point: count", "entry_point: no-such-entry")
    )
    page.get_by_role("tab", name="Canvas").click()
    upper, total = page.get_by_test_id("node-upper"), page.get_by_test_id("node-total")
    expect(upper).to_have_attribute("data-invalid", "true")
    expect(upper).to_contain_text("bogus")
    expect(total).to_have_attribute("data-invalid", "true")
    expect(total).to_contain_text("no-such-entry")
    expect(page.get_by_test_id("node-raw")).not_to_have_attribute("data-invalid", "true")
    expect(problems.get_by_role("listitem").filter(has_text="node upper.parameters")).to_contain_text("bogus")
    expect(problems.get_by_role("listitem").filter(has_text="node total")).to_contain_text("no-such-entry")

    # Fixing both on the canvas clears them.
    panel = select_node(page, "upper")
    expect(panel).to_contain_text("bogus")
    panel.get_by_label("Parameter bogus").fill("")
    panel = select_node(page, "total")
    panel.get_by_role("combobox", name="Entry point").select_option("count")
    expect(upper).not_to_have_attribute("data-invalid", "true")
    expect(total).not_to_have_attribute("data-invalid", "true")
    expect(problems.get_by_role("listitem")).to_have_count(0)

    # A `key` partitioner without its key: the problem is the edge's.
    edge = page.get_by_test_id("edge-raw->upper")
    panel = select_edge(page, "raw", "upper")
    panel.get_by_label("Partitioner").select_option("key")
    expect(edge).to_have_attribute("data-invalid", "true")
    expect(page.locator(".dg-edge-label.invalid")).to_contain_text("the `key` partitioner needs `key:`")
    expect(problems.get_by_role("listitem").filter(has_text="edge raw->upper.partitioner.key")).to_have_count(
        1
    )

    # Saving it is refused with the server's 422 problems, and nothing new is stored.
    page.get_by_role("button", name="Save", exact=True).click()
    banner = page.locator(".error-banner[role=alert]")
    expect(banner).to_contain_text("edges.raw->upper.partitioner.key")
    expect(banner).to_contain_text("the `key` partitioner needs `key:`")
    expect(page.locator(".dg-status")).not_to_contain_text("Saved")
    assert versions(plane, "ui-problems") == [1]
    assert stored_dag(plane, "ui-problems")["yaml"] == three_node_yaml("ui-problems")

    panel.get_by_label("Key", exact=True).fill("key")
    expect(edge).not_to_have_attribute("data-invalid", "true")
    expect(problems.get_by_role("listitem")).to_have_count(0)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".dg-status")).to_have_text("Saved version 2")
    saved = yaml.safe_load(stored_dag(plane, "ui-problems")["yaml"])
    assert saved["edges"][0]["partitioner"] == {"kind": "key", "key": "key"}


def test_delete_key_removes_a_node_with_its_edges_and_undo_redo_bring_them_back_and_forth(
    page: Page, plane: ControlPlane
) -> None:
    store_dag(plane, three_node_yaml("ui-undo"))
    page.goto(f"{plane.url}/dags/ui-undo")
    edges = page.locator(".react-flow__edge")
    expect(edges).to_have_count(2)
    select_node(page, "upper")
    page.keyboard.press("Delete")
    expect(page.get_by_test_id("node-upper")).to_have_count(0)
    expect(edges).to_have_count(0)
    expect(page.get_by_test_id("node-raw")).to_be_visible()
    expect(page.get_by_text("● unsaved changes")).to_be_visible()

    page.keyboard.press("Control+z")
    expect(page.get_by_test_id("node-upper")).to_be_visible()
    expect(page.get_by_test_id("edge-raw->upper")).to_have_count(1)
    expect(page.get_by_test_id("edge-upper->total")).to_have_count(1)
    expect(page.get_by_text("● unsaved changes")).to_have_count(0)

    page.keyboard.press("Control+Shift+z")
    expect(page.get_by_test_id("node-upper")).to_have_count(0)
    expect(edges).to_have_count(0)

    # The toolbar does the same for whoever does not know the shortcuts.
    page.get_by_role("button", name="Undo").click()
    expect(page.get_by_test_id("node-upper")).to_be_visible()
    expect(edges).to_have_count(2)
    # Nothing was saved meanwhile.
    assert versions(plane, "ui-undo") == [1]


def test_a_node_spread_over_clusters_keeps_its_weights_in_the_document(
    page: Page, plane: ControlPlane
) -> None:
    store_dag(plane, three_node_yaml("ui-weights"))
    page.goto(f"{plane.url}/dags/ui-weights")
    panel = select_node(page, "upper")
    weights = panel.get_by_label("Spread over clusters")
    weights.fill("east=2, west")  # not a list of weights yet: the document is left as it was
    editor = open_yaml(page)
    assert "clusters" not in yaml.safe_load(editor.input_value())["nodes"][1]

    page.get_by_role("tab", name="Canvas").click()
    panel = select_node(page, "upper")
    panel.get_by_label("Spread over clusters").fill("east=2, west=1")
    editor = open_yaml(page)
    expect(editor).to_have_value(re.compile(r"clusters:"))
    assert yaml.safe_load(editor.input_value())["nodes"][1]["clusters"] == {"east": 2, "west": 1}

    page.get_by_role("tab", name="Canvas").click()
    select_node(page, "upper").get_by_label("Spread over clusters").fill("")
    editor = open_yaml(page)
    assert "clusters" not in yaml.safe_load(editor.input_value())["nodes"][1]
