"""/api/v1/dags over real HTTP against a real `concurrent server` (auth off): versions, search and paging,
YAML export/import, and how bad input is refused (problem+json, nothing stored, never a 500).

One server serves the whole module (starting one takes several seconds); every test uses DAG names of its
own, and tests that assert "nothing stored" compare the catalogue before and after.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.fixtures.control_plane import ControlPlane, started
from tests.fixtures.mlflow_server import MlflowServer
from tests.integration.conftest import TOOLBOX

pytestmark = pytest.mark.integration

PROBLEM_TYPE = "https://concurrent-mlflow.invalid/problems/"
MAX_BODY = 1024 * 1024


@pytest.fixture(scope="module")
def plane(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """Like the `control_plane` fixture (SQLite store, auth off on loopback), once for the module."""
    with started(ControlPlane.under(tmp_path_factory.mktemp("api-dags"), mlflow_server.url)) as plane:
        yield plane


@pytest.fixture
def api(plane: ControlPlane) -> Iterator[httpx.Client]:
    with plane.client() as client:
        yield client


def dag_yaml(name: str, partitions: int = 2, description: str | None = None) -> str:
    text = f"name: {name}\n"
    if description is not None:
        text += f"description: {description}\n"
    return (
        text + "nodes:\n"
        "  - {id: raw, kind: source, uri: data}\n"
        f"  - {{id: work, kind: project, project: {TOOLBOX}, entry_point: transform, partitions: {partitions}}}\n"
        "edges:\n"
        "  - {from: raw, to: work, input: text}\n"
    )


def create(api: httpx.Client, name: str, **kwargs: Any) -> dict[str, Any]:
    response = api.post("/dags", json={"yaml": dag_yaml(name, **kwargs)})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_problem(response: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    """An RFC 7807 document with the given status; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys(), body
    assert body["status"] == status
    assert body["type"].startswith(PROBLEM_TYPE)
    if slug is not None:
        assert body["type"] == PROBLEM_TYPE + slug, body
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def catalogue(api: httpx.Client) -> list[tuple[str, int]]:
    """Every stored DAG with its newest version."""
    page = api.get("/dags", params={"limit": 500}).raise_for_status().json()
    assert page["next_offset"] is None, "more than 500 DAGs: page through them"
    return [(item["name"], item["latest_version"]) for item in page["items"]]


def moment(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, f"{text!r} has no UTC offset"
    return parsed


def test_a_created_dag_is_served_back_as_its_newest_version(api: httpx.Client) -> None:
    text = dag_yaml("get-me", description="from the document")
    created = api.post("/dags", json={"yaml": text})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "get-me" and body["version"] == 1
    assert body["yaml"] == text
    assert body["description"] == "from the document"
    assert body["created_by"] == "local"  # auth off: every caller is the local admin

    fetched = api.get("/dags/get-me")
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "application/json"
    again = fetched.json()
    assert (again["name"], again["version"], again["yaml"]) == ("get-me", 1, text)
    # The same instant, with its offset, whether it comes from the POST or from the store.
    assert moment(again["created_at"]) == moment(body["created_at"])

    explicit = api.post("/dags", json={"yaml": dag_yaml("described"), "description": "from the body"})
    assert explicit.status_code == 201 and explicit.json()["description"] == "from the body"


def test_put_saves_version_2_and_leaves_version_1_as_it_was(api: httpx.Client) -> None:
    first = create(api, "versioned")
    v2_text = dag_yaml("versioned", partitions=5)
    saved = api.put("/dags/versioned", json={"yaml": v2_text, "description": "five partitions"})
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] == 2 and saved.json()["yaml"] == v2_text

    newest = api.get("/dags/versioned").json()
    assert (newest["version"], newest["yaml"], newest["description"]) == (2, v2_text, "five partitions")
    old = api.get("/dags/versioned/versions/1")
    assert old.status_code == 200
    assert old.json()["yaml"] == first["yaml"] == dag_yaml("versioned")
    assert old.json()["description"] is None
    assert moment(old.json()["created_at"]) == moment(first["created_at"])
    assert_problem(api.get("/dags/versioned/versions/3"), 404, "not-found")
    assert_problem(api.get("/dags/versioned/versions/0"), 422, "invalid-request")

    api.put("/dags/versioned", json={"yaml": dag_yaml("versioned", partitions=7)}).raise_for_status()
    versions = api.get("/dags/versioned/versions")
    assert versions.status_code == 200
    listed = versions.json()
    assert [v["version"] for v in listed] == [3, 2, 1]
    assert [v["description"] for v in listed] == [None, "five partitions", None]
    assert all(v["created_by"] == "local" for v in listed)
    assert (
        moment(listed[0]["created_at"]) >= moment(listed[1]["created_at"]) >= moment(listed[2]["created_at"])
    )

    summary = api.get("/dags", params={"search": "versioned"}).json()["items"]
    assert [(s["name"], s["latest_version"], s["versions"]) for s in summary] == [("versioned", 3, 3)]


def test_list_searches_names_and_descriptions_and_pages_through_the_matches(api: httpx.Client) -> None:
    names = [f"pager-{i}" for i in range(7)]
    for name in reversed(names):  # stored out of order; listed by name
        create(api, name)
    create(api, "unrelated-x", description="Holds the NEEDLE in its description")
    create(api, "under_score")

    seen: list[str] = []
    offset: int | None = 0
    pages = []
    while offset is not None:
        response = api.get("/dags", params={"search": "pager-", "offset": offset, "limit": 3})
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["total"] == 7 and page["offset"] == offset
        pages.append((offset, [item["name"] for item in page["items"]], page["next_offset"]))
        seen += [item["name"] for item in page["items"]]
        offset = page["next_offset"]
    assert pages == [(0, names[0:3], 3), (3, names[3:6], 6), (6, names[6:7], None)]
    assert seen == names

    beyond = api.get("/dags", params={"search": "pager-", "offset": 50}).json()
    assert (beyond["items"], beyond["total"], beyond["next_offset"]) == ([], 7, None)

    by_description = api.get("/dags", params={"search": "needle"}).json()
    assert [item["name"] for item in by_description["items"]] == ["unrelated-x"]
    assert by_description["items"][0]["description"] == "Holds the NEEDLE in its description"
    # `_` and `%` are searched for literally, not as SQL wildcards.
    assert [i["name"] for i in api.get("/dags", params={"search": "_"}).json()["items"]] == ["under_score"]
    assert api.get("/dags", params={"search": "%"}).json()["total"] == 0
    assert api.get("/dags", params={"search": "no-such-dag-anywhere"}).json()["total"] == 0

    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"search": "x" * 101}, {"limit": "ten"}):
        assert_problem(api.get("/dags", params=bad), 422, "invalid-request")


def test_export_returns_the_exact_stored_text_as_yaml(api: httpx.Client) -> None:
    # Comments, quoting and blank lines are the user's: export gives back what was saved, byte for byte.
    text = "# owned by the data team\n\n" + dag_yaml("exported").replace(
        "source, uri: data", 'source, uri: "data"'
    )
    api.post("/dags", json={"yaml": text}).raise_for_status()
    exported = api.get("/dags/exported/export")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/yaml")
    assert exported.headers["content-disposition"] == 'attachment; filename="exported-v1.yaml"'
    assert exported.text == text

    v2_text = text + "# second thoughts\n"
    api.put("/dags/exported", json={"yaml": v2_text}).raise_for_status()
    assert api.get("/dags/exported/export").text == v2_text
    first = api.get("/dags/exported/export", params={"version": 1})
    assert first.text == text and 'filename="exported-v1.yaml"' in first.headers["content-disposition"]
    assert_problem(api.get("/dags/exported/export", params={"version": 9}), 404, "not-found")
    assert_problem(api.get("/dags/never-stored/export"), 404, "not-found")


def test_import_creates_a_dag_then_saves_new_versions_of_it(api: httpx.Client) -> None:
    yaml_headers = {"content-type": "application/yaml"}
    text = dag_yaml("imported", description="came in as a file")
    created = api.post("/dags/import", content=text.encode(), headers=yaml_headers)
    assert created.status_code == 201, created.text
    assert (created.json()["name"], created.json()["version"]) == ("imported", 1)
    assert created.json()["description"] == "came in as a file"
    assert api.get("/dags/imported").json()["yaml"] == text

    # An exported document imports back as the next version of the same DAG, unchanged.
    exported = api.get("/dags/imported/export").text
    again = api.post("/dags/import", content=exported.encode(), headers=yaml_headers)
    assert again.status_code == 201, again.text
    assert again.json()["version"] == 2 and again.json()["yaml"] == text
    changed = dag_yaml("imported", partitions=4)
    third = api.post("/dags/import", content=changed.encode(), headers=yaml_headers)
    assert third.json()["version"] == 3
    assert api.get("/dags/imported/export").text == changed
    assert api.get("/dags/imported/versions/1").json()["yaml"] == text

    before = catalogue(api)
    assert_problem(api.post("/dags/import", content=b"\xff\xfe not utf-8", headers=yaml_headers), 422)
    bad = api.post("/dags/import", content=b"name: half-a-dag\nnodes: [\n", headers=yaml_headers)
    assert_problem(bad, 422, "invalid-dag")
    assert catalogue(api) == before


def test_delete_removes_every_version_and_frees_the_name(api: httpx.Client) -> None:
    create(api, "doomed")
    api.put("/dags/doomed", json={"yaml": dag_yaml("doomed", partitions=3)}).raise_for_status()
    deleted = api.delete("/dags/doomed")
    assert deleted.status_code == 204 and deleted.content == b""

    assert_problem(api.get("/dags/doomed"), 404, "not-found")
    for path in ("/dags/doomed/versions", "/dags/doomed/versions/1", "/dags/doomed/export"):
        assert_problem(api.get(path), 404, "not-found")
    assert "doomed" not in [name for name, _ in catalogue(api)]
    assert_problem(api.delete("/dags/doomed"), 404, "not-found")
    assert_problem(api.put("/dags/doomed", json={"yaml": dag_yaml("doomed")}), 404, "not-found")

    reborn = create(api, "doomed")
    assert reborn["version"] == 1


def test_creating_a_taken_name_conflicts_and_keeps_the_stored_dag(api: httpx.Client) -> None:
    original = create(api, "taken")
    clash = api.post("/dags", json={"yaml": dag_yaml("taken", partitions=9)})
    body = assert_problem(clash, 409, "conflict")
    assert "taken" in body["detail"] and "PUT" in body["detail"]
    assert body["instance"] == "/api/v1/dags"
    kept = api.get("/dags/taken").json()
    assert (kept["version"], kept["yaml"]) == (1, original["yaml"])


def test_put_of_a_document_named_differently_from_the_path_is_refused(api: httpx.Client) -> None:
    create(api, "left")
    create(api, "right")
    mismatch = api.put("/dags/left", json={"yaml": dag_yaml("right")})
    body = assert_problem(mismatch, 422, "invalid-dag")
    assert [e["location"] for e in body["errors"]] == ["name"]
    assert "'right'" in body["errors"][0]["message"] and "'left'" in body["errors"][0]["message"]
    assert [v["version"] for v in api.get("/dags/left/versions").json()] == [1]
    assert [v["version"] for v in api.get("/dags/right/versions").json()] == [1]


INVALID_DOCUMENTS = {
    "malformed YAML": ("name: broken\nnodes: [\n  {id: a, kind: source\n", r"line "),
    "a cycle": (
        f"name: loop\nnodes:\n  - {{id: a, kind: project, project: {TOOLBOX}}}\n"
        f"  - {{id: b, kind: project, project: {TOOLBOX}}}\n"
        "edges:\n  - {from: a, to: b, input: x}\n  - {from: b, to: a, input: y}\n",
        "edges",
    ),
    "a dangling edge": (
        "name: dangling\nnodes:\n  - {id: raw, kind: source, uri: data}\n"
        "edges:\n  - {from: raw, to: ghost, input: x}\n",
        "edges.raw->ghost.to",
    ),
    "an unknown field": (
        "name: typo\nnodes:\n  - {id: raw, kind: source, uri: data, colour: red}\n",
        "nodes.raw.colour",
    ),
    "no nodes": ("name: empty\nnodes: []\n", "nodes"),
    "an unknown node kind": ("name: kinds\nnodes:\n  - {id: raw, kind: spaceship}\n", "nodes.raw"),
    "a bad DAG name": ("name: ../../etc\nnodes:\n  - {id: raw, kind: source, uri: data}\n", "name"),
    "not a mapping": ("- just\n- a list\n", ""),
}


@pytest.mark.parametrize("case", list(INVALID_DOCUMENTS))
def test_an_invalid_document_is_refused_with_located_errors_and_nothing_is_stored(
    api: httpx.Client, case: str
) -> None:
    text, location = INVALID_DOCUMENTS[case]
    before = catalogue(api)
    for response in (
        api.post("/dags", json={"yaml": text}),
        api.post("/dags/import", content=text.encode(), headers={"content-type": "application/yaml"}),
    ):
        body = assert_problem(response, 422, "invalid-dag")
        assert isinstance(body["errors"], list) and body["errors"], body
        locations = [e["location"] for e in body["errors"]]
        if location.startswith("line "):
            assert any(loc.startswith("line ") for loc in locations), locations
        else:
            assert location in locations, locations
        assert all(isinstance(e["message"], str) and e["message"] for e in body["errors"])
    assert catalogue(api) == before


def test_a_request_body_of_the_wrong_shape_is_a_located_422(api: httpx.Client) -> None:
    before = catalogue(api)
    cases = [
        ({"yaml": dag_yaml("extra-field"), "colour": "red"}, "body.colour"),
        ({"description": "no yaml"}, "body.yaml"),
        ({"yaml": 42}, "body.yaml"),
        ({"yaml": "x" * (512 * 1024 + 1)}, "body.yaml"),
    ]
    for payload, location in cases:
        body = assert_problem(api.post("/dags", json=payload), 422, "invalid-request")
        assert location in [e["location"] for e in body["errors"]], (payload.keys(), body["errors"])
    not_json = api.post("/dags", content=b"{not json", headers={"content-type": "application/json"})
    assert_problem(not_json, 422, "invalid-request")
    assert catalogue(api) == before


HOSTILE_NAMES = [
    "..%2F..%2Fetc",
    "%2E%2E",
    "a" * 101,
    "b" * 5000,
    "%E2%98%83-snowman",
    "caf%C3%A9",
    "%00",
    "name%20with%20space",
    "-leading-dash",
    "semi%3Bcolon",
    "%27%3B%20DROP%20TABLE%20dags%3B--",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: n[:24])
def test_hostile_names_in_the_path_are_refused_never_a_500(
    api: httpx.Client, plane: ControlPlane, name: str
) -> None:
    before = catalogue(api)
    requests = [
        ("GET", f"/dags/{name}", None),
        ("PUT", f"/dags/{name}", {"yaml": dag_yaml("innocent")}),
        ("DELETE", f"/dags/{name}", None),
        ("GET", f"/dags/{name}/versions", None),
        ("GET", f"/dags/{name}/versions/1", None),
        ("GET", f"/dags/{name}/export", None),
        ("GET", f"/dags/{name}/grants", None),
        ("PUT", f"/dags/{name}/grants/someone", {"role": "reader"}),
        ("PUT", f"/dags/innocent/grants/{name}", {"role": "reader"}),
    ]
    for method, path, payload in requests:
        # A pre-encoded path: httpx must send it as is, not re-encode the `%`.
        url = httpx.URL(f"{plane.url}/api/v1{path}")
        response = api.request(method, url, json=payload)
        assert response.status_code in (404, 405, 422), (
            method,
            path[:80],
            response.status_code,
            response.text,
        )
        assert_problem(response, response.status_code)
    assert catalogue(api) == before
    assert "unexpected error" not in plane.logs()


def test_a_body_over_the_limit_is_refused_with_413_and_nothing_stored(api: httpx.Client) -> None:
    before = catalogue(api)
    huge = "x" * (2 * MAX_BODY)
    as_json = api.post("/dags", json={"yaml": f"name: huge\ndescription: {huge}\nnodes: []\n"})
    assert as_json.status_code == 413, as_json.text[:300]
    as_yaml = api.post(
        "/dags/import",
        content=f"name: huge\ndescription: {huge}\n".encode(),
        headers={"content-type": "application/yaml"},
    )
    assert as_yaml.status_code == 413, as_yaml.text[:300]
    assert catalogue(api) == before


def test_a_streamed_body_over_the_limit_is_a_413_problem(api: httpx.Client) -> None:
    """Without Content-Length (chunked), the limit trips while the body is read."""
    before = catalogue(api)

    def chunks() -> Iterator[bytes]:
        yield b"name: huge\ndescription: "
        for _ in range(32):
            yield b"y" * (64 * 1024)

    streamed = api.post("/dags/import", content=chunks(), headers={"content-type": "application/yaml"})
    assert_problem(streamed, 413, "too-large")
    assert catalogue(api) == before


def test_a_body_with_content_length_over_the_limit_is_a_413_problem(api: httpx.Client) -> None:
    response = api.post("/dags", json={"yaml": "x" * (2 * MAX_BODY)})
    assert_problem(response, 413, "too-large")


def test_an_imported_document_over_the_yaml_limit_is_a_413_problem(api: httpx.Client) -> None:
    """Under the body limit (1 MiB) but over what a DAG document may be (512 KiB, as for POST /dags)."""
    before = catalogue(api)
    text = "name: big-import\ndescription: " + "z" * (600 * 1024) + "\nnodes: []\n"
    response = api.post("/dags/import", content=text.encode(), headers={"content-type": "application/yaml"})
    assert str(512 * 1024) in assert_problem(response, 413, "too-large")["detail"]
    assert catalogue(api) == before


def test_nul_characters_are_refused_wherever_text_goes_in(api: httpx.Client) -> None:
    """PostgreSQL cannot store NUL in text: refused up front as 422, on SQLite as on PostgreSQL."""
    before = catalogue(api)
    as_field = api.post("/dags", json={"yaml": dag_yaml("nul-desc"), "description": "a\u0000b"})
    assert "NUL" in assert_problem(as_field, 422)["detail"]
    escaped = dag_yaml("nul-yaml", description='"made by \\0 escape"')
    in_yaml = assert_problem(api.post("/dags", json={"yaml": escaped}), 422, "invalid-dag")
    assert {"location": "description", "message": "contains a NUL character"} in in_yaml["errors"]
    assert_problem(api.get("/dags", params={"search": "x\x00"}), 422)
    created = create(api, "nul-run")
    start = api.post("/runs", json={"dag": created["name"], "overrides": {"work.size": "1\u00002"}})
    assert_problem(start, 422)
    assert api.get("/runs", params={"dag": "nul-run"}).json()["total"] == 0
    assert set(catalogue(api)) == {*before, ("nul-run", 1)}


def test_unknown_routes_and_methods_are_problems_too(api: httpx.Client, plane: ControlPlane) -> None:
    body = assert_problem(api.get("/no-such-endpoint"), 404, "not-found")
    assert body["instance"] == "/api/v1/no-such-endpoint"
    assert_problem(api.get("/dags/x/versions/1/nothing-here"), 404, "not-found")
    assert_problem(api.post("/no-such-endpoint", json={}), 404, "not-found")
    page = httpx.get(f"{plane.url}/not-the-api/dags/x")  # the web UI's: it routes in the browser
    assert page.status_code == 200 and '<base href="/" />' in page.text
    posted = httpx.post(f"{plane.url}/not-the-api")
    assert_problem(posted, 405, "method-not-allowed")
    assert posted.headers["allow"] == "GET, HEAD"
    not_allowed = api.patch("/dags/anything")
    assert_problem(not_allowed, 405, "method-not-allowed")
    assert set(not_allowed.headers["allow"].replace(" ", "").split(",")) == {"GET", "PUT", "DELETE"}
    assert_problem(api.delete("/dags"), 405, "method-not-allowed")


def test_the_openapi_document_is_served_and_lists_the_dag_endpoints(plane: ControlPlane) -> None:
    response = httpx.get(f"{plane.url}/api/v1/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Concurrent for MLflow"
    paths = document["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/dags"])
    assert {"get", "put", "delete"} <= set(paths["/api/v1/dags/{name}"])
    assert "post" in paths["/api/v1/dags/import"]
    assert "get" in paths["/api/v1/dags/{name}/export"]
    assert "application/yaml" in paths["/api/v1/dags/import"]["post"]["requestBody"]["content"]
    docs = httpx.get(f"{plane.url}/api/v1/docs")
    assert docs.status_code == 200 and "openapi.json" in docs.text


def test_the_server_logged_no_unexpected_errors(plane: ControlPlane) -> None:
    """Runs last in this module: nothing above should have reached the 500 handler."""
    logs = "\n".join(p.read_text(errors="replace") for p in sorted(plane.home.glob("server-*.log")))
    assert "unexpected error" not in logs and "Traceback" not in logs, logs[-4000:]


# -- what the designer asks before it saves -------------------------------------------------------------
def test_validate_reports_every_problem_of_projects_and_parameters_and_saves_nothing(
    api: httpx.Client,
) -> None:
    before = api.get("/dags").json()["total"]
    good = api.post("/dags/validate", json={"yaml": dag_yaml("checked")})
    assert good.status_code == 200 and good.json() == {"valid": True, "errors": []}

    bad_params = dag_yaml("checked").replace(
        "entry_point: transform", "entry_point: echo_params, parameters: {alpha: x, gamma: 1}"
    )
    result = api.post("/dags/validate", json={"yaml": bad_params}).json()
    assert result["valid"] is False
    messages = {e["location"]: e["message"] for e in result["errors"]}
    assert set(messages) == {"nodes.work.parameters"}
    problems = [e["message"] for e in result["errors"]]
    assert any("gamma" in m for m in problems) and any("alpha" in m and "float" in m for m in problems), (
        problems
    )

    unknown = dag_yaml("checked").replace("entry_point: transform", "entry_point: nope")
    (error,) = api.post("/dags/validate", json={"yaml": unknown}).json()["errors"]
    assert error["location"] == "nodes.work.parameters" and "nope" in error["message"]

    missing = dag_yaml("checked").replace(str(TOOLBOX), "/no/such/project")
    (error,) = api.post("/dags/validate", json={"yaml": missing}).json()["errors"]
    assert error["location"] == "nodes.work.project" and "/no/such/project" in error["message"]

    cyclic = dag_yaml("checked") + "  - {from: work, to: work, input: again}\n"
    errors = api.post("/dags/validate", json={"yaml": cyclic}).json()["errors"]
    assert {"location": "edges.work->work", "message": "an edge cannot join a node to itself"} in errors

    not_yaml = api.post("/dags/validate", json={"yaml": "name: [unclosed"}).json()
    assert not not_yaml["valid"] and "not valid YAML" in not_yaml["errors"][0]["message"]
    assert_problem(api.post("/dags/validate", json={"yaml": "x", "extra": 1}), 422)
    assert api.get("/dags").json()["total"] == before


# Fewer bytes than the 505 a user posted, standing for 9**9 strings through nested YAML aliases.
ALIAS_BOMB = "name: bomb\nnodes: [{id: s, kind: source, uri: d}]\nx:\n" + "".join(
    f"  - &a{i} [{','.join([f'*a{i - 1}' if i else 'lol'] * 9)}]\n" for i in range(9)
)


@pytest.mark.timeout(120)  # a safety net: before the bound, one such request held a server thread ~20 min
def test_an_alias_bomb_is_refused_as_invalid_and_stores_nothing(api: httpx.Client) -> None:
    assert len(ALIAS_BOMB.encode()) < 505
    before = catalogue(api)
    result = api.post("/dags/validate", json={"yaml": ALIAS_BOMB}).json()
    assert result["valid"] is False
    (error,) = result["errors"]
    assert error["message"].startswith("the document expands to more than 100,000 nodes")
    assert error["message"].endswith("through YAML aliases; write the values out or use fewer aliases")
    body = assert_problem(api.post("/dags", json={"yaml": ALIAS_BOMB}), 422, "invalid-dag")
    assert "through YAML aliases" in body["detail"]
    yaml_headers = {"content-type": "application/yaml"}
    assert_problem(
        api.post("/dags/import", content=ALIAS_BOMB.encode(), headers=yaml_headers), 422, "invalid-dag"
    )
    assert catalogue(api) == before


def test_validate_checks_the_size_of_a_sweep_and_the_type_of_every_value(api: httpx.Client) -> None:
    def grid(sweep: str) -> str:
        node = f"{{id: work, kind: project, project: {TOOLBOX}, entry_point: echo_params, sweep: {sweep}}}"
        return f"name: grid\nnodes:\n  - {node}\n"

    assert api.post("/dags/validate", json={"yaml": grid("{alpha: [0.5, 1], beta: [a, b]}")}).json()["valid"]
    (error,) = api.post("/dags/validate", json={"yaml": grid("{alpha: [0.5, 1, fast]}")}).json()["errors"]
    assert error["location"] == "nodes.work.sweep.alpha"
    assert error["message"].endswith("must be a number (MLproject type float), got 'fast'")
    huge = (
        "{alpha: [" + ", ".join(str(i) for i in range(10_000)) + "], beta: [" + ", ".join("abcdefghij") + "]}"
    )
    (error,) = api.post("/dags/validate", json={"yaml": grid(huge)}).json()["errors"]
    assert error["location"] == "nodes.work.sweep"
    assert error["message"].startswith(
        "has 100,000 combinations (10,000 alpha x 10 beta), more than the 10,000"
    )


def test_a_project_describes_its_entry_points_with_typed_parameters(api: httpx.Client) -> None:
    response = api.get("/projects", params={"uri": str(TOOLBOX)})
    assert response.status_code == 200, response.text
    project = response.json()
    assert project["name"] == "toolbox" and project["commit"] is None
    entry_points = {e["name"]: {p["name"]: p for p in e["parameters"]} for e in project["entry_points"]}
    assert set(entry_points) == {"transform", "count", "echo_params", "crash"}
    assert entry_points["echo_params"]["alpha"] == {"name": "alpha", "type": "float", "default": None}
    assert entry_points["transform"]["suffix"] == {"name": "suffix", "type": "string", "default": ".out"}
    assert entry_points["count"] == {}

    missing = assert_problem(api.get("/projects", params={"uri": "/no/such/project"}), 422, "invalid-project")
    assert "/no/such/project" in missing["detail"]
    assert_problem(api.get("/projects", params={"uri": "../../etc\x00"}), 422)
    assert_problem(api.get("/projects"), 422)
