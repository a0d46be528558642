"""Bearer tokens and per-DAG roles on a real `concurrent server --auth`, with tokens made by the real CLI.

Users: `admin` (admin token), `alice` (creates DAGs, so owns them), `bob` (no role on anything of alice's),
`carol` (reader, granted by alice) and `dave` (runner). Every endpoint the OpenAPI document lists is tried
without a token, with a wrong one and as bob, so an endpoint added later is covered without editing a list.

One server and one set of tokens serve the module (the CLI and the server each take seconds to start).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

from tests.fixtures.control_plane import ControlPlane
from tests.fixtures.mlflow_server import MlflowServer
from tests.integration.conftest import TOOLBOX

pytestmark = pytest.mark.integration

PREFIX = "/api/v1"
WRONG_TOKEN = "cmf_000000000000_nope"
PUBLIC = {("GET", "/health")}
GHOST_SCHEDULE = "987654"  # a schedule id that does not exist
ADMIN_ONLY = {("POST", "/clusters"), ("PATCH", "/clusters/{name}"), ("DELETE", "/clusters/{name}")}
# Any signed-in caller: they read the document or project the caller sends, nothing stored of anyone's.
ANY_CALLER = {("POST", "/dags/validate"), ("GET", "/projects")}
USERS = {"admin": ["--admin"], "alice": [], "bob": [], "carol": [], "dave": [], "erin": []}


@dataclass
class World:
    plane: ControlPlane
    tokens: dict[str, str]
    dag: str  # alice's; carol is its reader, dave its runner, bob has no role
    run_id: str  # a run of it, started by alice
    schedule_id: int = 0  # a (paused) schedule of it, made by alice

    def api(self, user: str | None) -> httpx.Client:
        return self.plane.client(self.tokens[user] if user else None)


def token_id(token: str) -> str:
    return token.split("_")[1]


def dag_yaml(name: str) -> str:
    return (
        f"name: {name}\n"
        "nodes:\n"
        "  - {id: raw, kind: source, uri: data}\n"
        f"  - {{id: work, kind: project, project: {TOOLBOX}, entry_point: transform, partitions: 2}}\n"
        "edges:\n"
        "  - {from: raw, to: work, input: text}\n"
    )


def assert_problem(response: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys() and body["status"] == status, body
    if slug:
        assert body["type"].endswith(f"/problems/{slug}"), body
    if status == 401:
        assert response.headers.get("www-authenticate") == "Bearer", response.headers
    return body


def masked(detail: str, dag: str, run_id: str, schedule_id: str) -> str:
    text = detail.replace(dag, "<dag>").replace(run_id, "<run>")
    return text.replace(f"schedule {schedule_id};", "schedule <id>;")


def full_logs(plane: ControlPlane) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(plane.home.glob("server-*.log")))


@pytest.fixture(scope="module")
def world(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("api-auth")
    # DAGs here name local paths (the work dir, the toolbox project) and run locally: the operator allows it.
    roots = ["--allow-local-root", str(root), "--allow-local-root", str(TOOLBOX)]
    plane = ControlPlane.under(root, mlflow_server.url, "--auth", *roots, "--allow-local-execution")
    try:
        plane.start()
        with ThreadPoolExecutor(max_workers=len(USERS)) as pool:
            made = pool.map(lambda u: plane.cli("token", "create", u, *USERS[u]).strip(), USERS)
            tokens = dict(zip(USERS, made, strict=True))
        assert all(re.fullmatch(r"cmf_[0-9a-f]{12}_\S+", t) for t in tokens.values()), tokens
        world = World(plane, tokens, "alice-dag", "")
        with world.api("alice") as alice:
            created = alice.post("/dags", json={"yaml": dag_yaml(world.dag)})
            assert created.status_code == 201, created.text
            assert created.json()["created_by"] == "alice"
            for user, role in (("carol", "reader"), ("dave", "runner")):
                granted = alice.put(f"/dags/{world.dag}/grants/{user}", json={"role": role})
                assert granted.status_code == 204, granted.text
            started = alice.post("/runs", json={"dag": world.dag})
            assert started.status_code == 201, started.text
            world.run_id = started.json()["id"]
            scheduled = alice.post(
                "/schedules", json={"dag": world.dag, "cron": "0 3 * * *", "enabled": False}
            )
            assert scheduled.status_code == 201, scheduled.text
            world.schedule_id = scheduled.json()["id"]
        yield world
    finally:
        plane.stop()


def operations(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path under /api/v1, operation) for everything the live OpenAPI document publishes."""
    document = httpx.get(f"{world.plane.url}{PREFIX}/openapi.json").raise_for_status().json()
    found = []
    for path, item in document["paths"].items():
        assert path.startswith(PREFIX + "/"), path
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch"):
                found.append((method.upper(), path.removeprefix(PREFIX), operation))
    assert len(found) >= 20, found
    return found


def request_for(
    world: World, method: str, template: str, operation: dict[str, Any], dag: str, run_id: str
) -> dict[str, Any]:
    """A minimal valid request for the operation, aimed at `dag` / `run_id`."""
    values = {
        "name": dag,
        "user": "carol",
        "run_id": run_id,
        "version": "1",
        "node": "work",
        "partition": "0",
        "schedule_id": str(world.schedule_id) if dag == world.dag else GHOST_SCHEDULE,
    }
    params = re.findall(r"{(\w+)}", template)
    unknown = [p for p in params if p not in values]
    assert not unknown, f"{method} {template}: give the path parameter(s) {unknown} a value in this test"
    path = template.format(**{p: values[p] for p in params})
    request: dict[str, Any] = {"method": method, "url": path}
    if (method, template) == ("GET", "/projects"):
        request["params"] = {"uri": str(TOOLBOX)}
    content = operation.get("requestBody", {}).get("content", {})
    if "application/yaml" in content:
        request["content"] = dag_yaml(dag).encode()
        request["headers"] = {"content-type": "application/yaml"}
    elif "application/json" in content:
        bodies = {
            ("POST", "/dags"): {"yaml": dag_yaml(dag)},
            ("POST", "/dags/validate"): {"yaml": dag_yaml(dag)},
            ("PUT", "/dags/{name}"): {"yaml": dag_yaml(dag)},
            ("PUT", "/dags/{name}/grants/{user}"): {"role": "owner"},
            ("POST", "/runs"): {"dag": dag},
            ("POST", "/schedules"): {"dag": dag, "cron": "0 3 * * *", "enabled": False},
            ("PATCH", "/schedules/{schedule_id}"): {"enabled": True},
            ("POST", "/clusters"): {"name": "bobs-cluster", "kubeconfig": "apiVersion: v1"},
            ("PATCH", "/clusters/{name}"): {"namespace": "bobs"},
        }
        assert (method, template) in bodies, f"{method} {template}: add a minimal valid body to this test"
        request["json"] = bodies[(method, template)]
    return request


def test_every_endpoint_wants_a_valid_token_and_bob_cannot_see_alices_dag(world: World) -> None:
    failures: list[str] = []
    ops = operations(world)
    with world.api(None) as anonymous, world.plane.client(WRONG_TOKEN) as wrong, world.api("bob") as bob:
        for method, template, operation in ops:
            label = f"{method} {template}"
            request = request_for(world, method, template, operation, world.dag, world.run_id)
            for who, client in (("no token", anonymous), ("a wrong token", wrong)):
                response = client.request(**request)
                if (method, template) in PUBLIC:
                    ok = response.status_code == 200
                else:
                    ok = response.status_code == 401
                    try:
                        assert_problem(response, 401, "unauthenticated")
                    except AssertionError as exc:
                        failures.append(f"{label} with {who}: {exc}")
                if not ok:
                    failures.append(f"{label} with {who}: {response.status_code} {response.text[:200]}")

            response = bob.request(**request)
            text = response.text
            if (method, template) in PUBLIC:
                continue
            if (method, template) == ("GET", "/whoami"):
                ok = response.status_code == 200 and response.json()["user"] == "bob"
            elif (method, template) in {
                ("GET", "/dags"),
                ("GET", "/runs"),
                ("GET", "/clusters"),
                ("GET", "/schedules"),
            }:
                # Lists are bob's own view: 200, and nothing of alice's in them.
                ok = response.status_code == 200 and world.dag not in text and world.run_id not in text
            elif (method, template) in {("POST", "/dags"), ("POST", "/dags/import")}:
                # DAG names are global, so creating one under a taken name must say it is taken.
                ok = response.status_code == 409
            elif (method, template) in ANY_CALLER:
                ok = response.status_code == 200
            elif (method, template) in ADMIN_ONLY:
                # Clusters are global and not secret by name: changing one is for admins, whatever exists.
                ok = response.status_code == 403 and "Only an admin" in response.json()["detail"]
            else:
                # No role: alice's DAG and its runs answer exactly like ones that do not exist.
                ok = response.status_code == 404
                missing = request_for(world, method, template, operation, "no-such-dag", "0123456789ab")
                ghost = bob.request(**missing)
                try:
                    seen, unseen = assert_problem(response, 404), assert_problem(ghost, 404)
                    assert masked(seen["detail"], world.dag, world.run_id, str(world.schedule_id)) == masked(
                        unseen["detail"], "no-such-dag", "0123456789ab", GHOST_SCHEDULE
                    )
                except AssertionError as exc:
                    failures.append(f"{label} as bob: alice's DAG is told apart from a missing one: {exc}")
            if not ok:
                failures.append(f"{label} as bob: {response.status_code} {text[:300]}")
    assert not failures, "\n".join(failures)

    with world.api("alice") as alice:
        # Nothing bob tried changed anything.
        assert [v["version"] for v in alice.get(f"/dags/{world.dag}/versions").json()] == [1]
        grants = alice.get(f"/dags/{world.dag}/grants").json()
        assert grants == {"alice": "owner", "carol": "reader", "dave": "runner"}
        assert alice.get(f"/runs/{world.run_id}").json()["cancel_requested"] is None
        assert alice.get(f"/schedules/{world.schedule_id}").json()["enabled"] is False
        assert alice.get("/schedules", params={"dag": world.dag}).json()["total"] == 1


def test_malformed_authorization_headers_are_401(world: World) -> None:
    alice_id = token_id(world.tokens["alice"])
    bad_headers = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {world.tokens['alice']}"},
        {"Authorization": world.tokens["alice"]},
        {"Authorization": f"Bearer cmf_{alice_id}_not-the-secret"},
        {"Authorization": f"Bearer cmf_{alice_id}"},
        {"Authorization": f"Bearer {world.tokens['alice'][:-1]}"},
        {"Authorization": f"Bearer {world.tokens['alice'].removeprefix('cmf_')}"},
        {"Authorization": "Bearer cmf_" + "a" * 5000 + "_x"},
    ]
    for headers in bad_headers:
        response = httpx.get(f"{world.plane.url}{PREFIX}/whoami", headers=headers)
        assert_problem(response, 401, "unauthenticated")
    ok = httpx.get(
        f"{world.plane.url}{PREFIX}/whoami", headers={"Authorization": f"bearer {world.tokens['alice']}"}
    )
    assert ok.status_code == 200 and ok.json() == {"user": "alice", "admin": False, "auth": True}


def test_roles_decide_who_may_read_run_edit_and_delete(world: World) -> None:
    dag = "team-dag"
    data = world.plane.work_dir / "team-data"
    absolute = dag_yaml(dag).replace("uri: data", f"uri: {data}")
    with (
        world.api("alice") as alice,
        world.api("carol") as carol,
        world.api("dave") as dave,
        world.api("admin") as admin,
    ):
        assert alice.post("/dags", json={"yaml": absolute}).status_code == 201
        assert alice.put(f"/dags/{dag}/grants/carol", json={"role": "reader"}).status_code == 204
        assert alice.put(f"/dags/{dag}/grants/dave", json={"role": "runner"}).status_code == 204
        alice_run = alice.post("/runs", json={"dag": dag})
        assert alice_run.status_code == 201, alice_run.text
        run_id = alice_run.json()["id"]
        ended = world.plane.wait_for_run(run_id, token=world.tokens["alice"])
        parent = MlflowClient(world.plane.tracking_uri).get_run(ended["mlflow_run_id"])
        assert parent.data.tags["mlflow.user"] == "alice"  # the token's holder, not the server's OS user

        # carol reads ...
        assert carol.get(f"/dags/{dag}").json()["yaml"] == absolute
        assert [v["version"] for v in carol.get(f"/dags/{dag}/versions").json()] == [1]
        assert carol.get(f"/dags/{dag}/export").text == absolute
        assert dag in [d["name"] for d in carol.get("/dags").json()["items"]]
        assert carol.get(f"/runs/{run_id}").json()["dag"] == dag
        assert run_id in [r["id"] for r in carol.get("/runs", params={"dag": dag}).json()["items"]]
        assert carol.get(f"/runs/{run_id}/tasks").status_code == 200
        # ... and nothing else.
        forbidden = [
            carol.put(f"/dags/{dag}", json={"yaml": absolute}),
            carol.post(
                "/dags/import", content=absolute.encode(), headers={"content-type": "application/yaml"}
            ),
            carol.post("/runs", json={"dag": dag}),
            carol.delete(f"/dags/{dag}"),
            carol.get(f"/dags/{dag}/grants"),
            carol.put(f"/dags/{dag}/grants/carol", json={"role": "owner"}),  # no promoting herself
            carol.delete(f"/dags/{dag}/grants/dave"),
            carol.post(f"/runs/{run_id}/cancel"),
            carol.post(f"/runs/{run_id}/retry"),
        ]
        for response in forbidden:
            body = assert_problem(response, 403, "forbidden")
            assert "carol is reader" in body["detail"], body

        # dave runs, without choosing a base_dir (that is for admins) ...
        started = dave.post("/runs", json={"dag": dag})
        assert started.status_code == 201, started.text
        assert started.json()["created_by"] == "dave" and started.json()["dag_version"] == 1
        body = assert_problem(dave.post("/runs", json={"dag": dag, "base_dir": "/"}), 403, "forbidden")
        assert "admin" in body["detail"]
        assert dave.post(f"/runs/{started.json()['id']}/cancel").status_code == 202
        # ... but does not edit, delete or hand out roles.
        assert_problem(dave.put(f"/dags/{dag}", json={"yaml": absolute}), 403, "forbidden")
        assert_problem(dave.delete(f"/dags/{dag}"), 403, "forbidden")
        assert_problem(dave.put(f"/dags/{dag}/grants/bob", json={"role": "reader"}), 403, "forbidden")
        assert carol.post(f"/runs/{started.json()['id']}/cancel").status_code == 403

        # An admin may choose base_dir; alice, the owner, may not.
        assert_problem(alice.post("/runs", json={"dag": dag, "base_dir": "/"}), 403, "forbidden")
        by_admin = admin.post("/runs", json={"dag": dag, "base_dir": str(world.plane.work_dir)})
        assert by_admin.status_code == 201, by_admin.text
        assert admin.post(f"/runs/{by_admin.json()['id']}/cancel").status_code == 202

        # The owner sees the grants, edits, revokes, and deletes.
        assert alice.get(f"/dags/{dag}/grants").json() == {
            "alice": "owner",
            "carol": "reader",
            "dave": "runner",
        }
        assert alice.put(f"/dags/{dag}", json={"yaml": absolute + "# v2\n"}).json()["version"] == 2
        assert alice.delete(f"/dags/{dag}/grants/dave").status_code == 204
        assert_problem(dave.get(f"/dags/{dag}"), 404, "not-found")  # no role left: hidden again
        deleted = alice.delete(f"/dags/{dag}")
        assert deleted.status_code == 204
        for client in (alice, carol, admin):
            assert_problem(client.get(f"/dags/{dag}"), 404, "not-found")


def test_secrets_never_leak_and_a_revoked_token_stops_working(world: World) -> None:
    secrets = list(world.tokens.values())
    secret_parts = [t.split("_", 2)[2] for t in secrets]
    bodies: list[str] = []
    for user in ("admin", "alice", "carol"):
        with world.api(user) as client:
            for method, template, operation in operations(world):
                if method != "GET" or template.endswith("/log"):
                    continue
                request = request_for(world, method, template, operation, world.dag, world.run_id)
                response = client.request(**request)
                assert response.status_code < 500, (user, template, response.text)
                bodies.append(response.text)
    bodies.append(httpx.get(f"{world.plane.url}{PREFIX}/openapi.json").text)
    for body in bodies:
        assert "secret_hash" not in body
        assert not any(part in body for part in secret_parts)

    listing = world.plane.cli("token", "list")
    assert token_id(world.tokens["erin"]) in listing
    assert not any(part in listing for part in secret_parts)

    erin = world.tokens["erin"]
    with world.plane.client(erin) as client:
        assert client.get("/whoami").json()["user"] == "erin"
        world.plane.cli("token", "revoke", token_id(erin))
        body = assert_problem(client.get("/whoami"), 401, "unauthenticated")
        assert erin not in body["detail"]
        assert_problem(client.get("/dags"), 401, "unauthenticated")
    with world.api("alice") as alice:
        assert alice.get("/whoami").json()["user"] == "alice"  # revoking one token leaves the others

    logs = full_logs(world.plane)
    assert logs, "the server wrote no log"
    leaked = [part for part in secret_parts if part in logs]
    assert not leaked, "a token secret appears in the server log"
    assert "secret_hash" not in logs
