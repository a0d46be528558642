"""The execution policy on a real `concurrent server --auth`: a token holder reaches only what the operator
allowed, whatever role they hold.

The server allows one local root, `root`, which also holds its data dir (`root/home`: secret.key, logs), its
SQLite store and two symbolic links planted there that lead out (`outlink` -> /etc, `keylink` -> the key).
Every user (no grants, reader, runner, editor, owner, admin) sends hostile DAGs naming the key, the data
dir, the store, another DAG's logs and /etc through source URIs, project paths, inference models, `..` and
the links; every one is refused with a 403 problem that names the field and the policy, and nothing is
stored. No local execution is allowed, so runs of project nodes without a cluster are refused too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from concurrent_mlflow.dag import parse_dag
from concurrent_mlflow.engine.reconcile import new_run
from concurrent_mlflow.store import access, catalog, open_store
from tests.fixtures.control_plane import ControlPlane
from tests.fixtures.mlflow_server import MlflowServer
from tests.integration.conftest import TOOLBOX

pytestmark = pytest.mark.integration

ROLES = {"carol": "reader", "dave": "runner", "erin": "editor"}  # on alice's DAG; bob has none
USERS = ["bob", *ROLES, "alice", "admin"]
POLICY_SLUG = "/problems/execution-policy"


@dataclass
class World:
    plane: ControlPlane
    root: Path
    tokens: dict[str, str]

    def api(self, user: str) -> httpx.Client:
        return self.plane.client(self.tokens[user])

    @property
    def home(self) -> Path:
        return self.plane.home


def benign(name: str, project: Path | str = TOOLBOX, cluster: str = "") -> str:
    extra = f", cluster: {cluster}" if cluster else ""
    return (
        f"name: {name}\nnodes:\n  - {{id: raw, kind: source, uri: data}}\n"
        f'  - {{id: work, kind: project, project: "{project}", entry_point: transform{extra}}}\n'
        "edges:\n  - {from: raw, to: work, input: text}\n"
    )


def hostile_sources(world: World) -> list[str]:
    home = world.home
    return [
        str(home / "secret.key"),
        f"file://{home}/secret.key",
        "home/secret.key",  # relative to the work dir, which is the allowed root
        str(home),
        str(home / "logs"),  # every DAG's task logs
        world.plane.store_url,
        ".",  # the root itself holds the data dir
        "/etc",
        "file:///etc/passwd",
        "data/../../../../../../../../etc",
        f"{world.root}/data/../home",
        "outlink",
        "keylink",
        "outlink/passwd",
        "zip://passwd::file:///etc/passwd",
    ]


def hostile_dags(world: World, name: str) -> list[tuple[str, str]]:
    """(field the refusal must name, document) for every attack."""
    source = [
        ("nodes.raw.uri", f"name: {name}\nnodes:\n  - {{id: raw, kind: source, uri: '{uri}'}}\n")
        for uri in hostile_sources(world)
    ]
    project = [
        ("nodes.work.project", benign(name, project=path))
        for path in ("/etc", world.home, f"file://{world.home}/repo.git", "outlink", "data/../home")
    ]
    model = (
        "nodes.score.model",
        f"name: {name}\nnodes:\n  - {{id: raw, kind: source, uri: data}}\n"
        f"  - {{id: score, kind: inference, model: '{world.home}/mlflow', cluster: east}}\n"
        "edges:\n  - {from: raw, to: score, input: rows}\n",
    )
    return [*source, *project, model]


def assert_refused(response: httpx.Response, field: str) -> dict[str, Any]:
    assert response.status_code == 403, (response.request.method, response.request.url, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"].endswith(POLICY_SLUG), body
    assert field in body["detail"] and "execution policy" in body["detail"], body
    assert [e["location"] for e in body["errors"]] == [field], body
    return body


@pytest.fixture(scope="module")
def world(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("api-policy")
    (root / "data").mkdir()
    (root / "data" / "a.txt").write_text("hello\n")
    home = root / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    key = home / "secret.key"
    key.write_text(Fernet.generate_key().decode() + "\n")
    key.chmod(0o644)  # as an older version (or a careless restore) may have left it
    (root / "outlink").symlink_to("/etc")
    (root / "keylink").symlink_to(key)
    roots = ["--allow-local-root", str(root), "--allow-local-root", str(TOOLBOX)]
    plane = ControlPlane.under(root, mlflow_server.url, "--auth", *roots, CONCURRENT_SECRET_KEY="")
    try:
        plane.start()
        store = open_store(plane.store_url)
        tokens = {user: access.create_token(store, user, "test", admin=user == "admin") for user in USERS}
        store.close()
        world = World(plane, root, tokens)
        with world.api("alice") as alice:
            assert alice.post("/dags", json={"yaml": benign("alice-dag")}).status_code == 201
            for user, role in ROLES.items():
                alice.put(f"/dags/alice-dag/grants/{user}", json={"role": role}).raise_for_status()
        yield world
    finally:
        plane.stop()


def test_hostile_dags_are_refused_for_every_role_and_nothing_is_stored(world: World) -> None:
    attacks = hostile_dags(world, "NAME")
    for user in USERS:
        with world.api(user) as api:
            for index, (field, text) in enumerate(attacks):
                document = text.replace("NAME", f"{user}-{index}")
                assert_refused(api.post("/dags", json={"yaml": document}), field)
                imported = api.post(
                    "/dags/import", content=document.encode(), headers={"content-type": "application/yaml"}
                )
                assert_refused(imported, field)
                assert_refused(api.post("/dags/validate", json={"yaml": document}), field)
                if user in ("erin", "alice", "admin"):  # may edit alice's DAG: the policy still refuses
                    edited = text.replace("NAME", "alice-dag")
                    assert_refused(api.put("/dags/alice-dag", json={"yaml": edited}), field)
    with world.api("admin") as admin:
        names = [d["name"] for d in admin.get("/dags", params={"limit": 500}).json()["items"]]
        assert names == ["alice-dag"], names  # the tests after this one add their own
        assert [v["version"] for v in admin.get("/dags/alice-dag/versions").json()] == [1]
        assert admin.get("/runs", params={"dag": "alice-dag"}).json()["total"] == 0


def test_refusals_name_the_policy_and_the_fix(world: World) -> None:
    with world.api("bob") as bob:
        text = f"name: bobs\nnodes:\n  - {{id: raw, kind: source, uri: '{world.home}/secret.key'}}\n"
        body = assert_refused(bob.post("/dags", json={"yaml": text}), "nodes.raw.uri")
    assert "--allow-local-root" in body["detail"] and "git/s3 URI" in body["detail"], body
    assert f"local paths only under {world.root}" in body["detail"], body


def test_get_projects_is_no_existence_oracle(world: World) -> None:
    with world.api("bob") as bob:
        details = []
        for uri in (
            "/etc",
            "/no/such/directory",
            str(world.home),
            f"{world.home}/none",
            "outlink",
            "keylink",
        ):
            body = assert_refused(bob.get("/projects", params={"uri": uri}), "uri")
            details.append(body["detail"].replace(repr(uri), "<uri>"))
        assert len(set(details)) == 1, details
        assert bob.get("/projects", params={"uri": str(TOOLBOX)}).status_code == 200


def test_base_dir_outside_the_roots_is_refused_whether_or_not_it_exists(world: World) -> None:
    with world.api("admin") as admin:
        details = []
        for base_dir in ("/etc", "/no/such/dir", str(world.home), str(world.root / "outlink")):
            response = admin.post("/runs", json={"dag": "alice-dag", "base_dir": base_dir})
            details.append(assert_refused(response, "base_dir")["detail"].replace(base_dir, "<dir>"))
        assert len(set(details)) == 1, details
        assert admin.get("/runs", params={"dag": "alice-dag"}).json()["total"] == 0


def test_local_execution_is_refused_under_auth_without_the_flag(world: World) -> None:
    with world.api("alice") as alice, world.api("dave") as dave:
        for client in (alice, dave):
            body = assert_refused(client.post("/runs", json={"dag": "alice-dag"}), "nodes.work.cluster")
            assert "--allow-local-execution" in body["detail"] and "cluster" in body["detail"]
        scheduled = alice.post("/schedules", json={"dag": "alice-dag", "cron": "0 3 * * *", "enabled": False})
        assert_refused(scheduled, "nodes.work.cluster")
        assert alice.get("/runs").json()["total"] == 0 and alice.get("/schedules").json()["total"] == 0


def test_a_dag_stored_before_the_policy_is_refused_at_run_time_by_api_and_engine(world: World) -> None:
    """Rows written before this policy existed (here straight into the store): POST /runs refuses the DAG,
    and the engine refuses a pending run of it before listing anything."""
    text = f"name: old-dag\nnodes:\n  - {{id: raw, kind: source, uri: '{world.home}'}}\n"
    store = open_store(world.plane.store_url)
    try:
        catalog.save_version(store, "old-dag", text, description=None, user="admin", create=True)
        run_id = new_run(store, parse_dag(text), base_dir=world.root, overrides={})
    finally:
        store.close()
    with world.api("admin") as admin:
        assert_refused(admin.post("/runs", json={"dag": "old-dag"}), "nodes.raw.uri")
    detail = world.plane.wait_for_run(run_id, token=world.tokens["admin"], timeout=120)
    assert detail["state"] == "failed", detail
    (stage,) = detail["stages"]
    assert "execution policy" in stage["error"] and "nodes.raw.uri" in stage["error"], stage


def test_a_link_inside_an_allowed_source_that_leads_out_fails_the_listing(world: World) -> None:
    inbox = world.root / "inbox"
    inbox.mkdir()
    (inbox / "ok.txt").write_text("fine\n")
    (inbox / "key").symlink_to(world.home / "secret.key")
    text = "name: linked\nnodes:\n  - {id: raw, kind: source, uri: inbox}\n"
    with world.api("bob") as bob:
        assert bob.post("/dags", json={"yaml": text}).status_code == 201
        started = bob.post("/runs", json={"dag": "linked"})
        assert started.status_code == 201, started.text
    detail = world.plane.wait_for_run(started.json()["id"], token=world.tokens["bob"], timeout=120)
    assert detail["state"] == "failed", detail
    (stage,) = detail["stages"]
    assert "symbolic link" in stage["error"] and "execution policy" in stage["error"], stage


def test_the_data_dir_key_and_store_are_private(world: World) -> None:
    for directory in (world.home, world.home / "logs", world.home / "scratch", world.home / "mlflow"):
        assert directory.stat().st_mode & 0o777 == 0o700, directory
    assert (world.home / "secret.key").stat().st_mode & 0o777 == 0o600
    store = Path(world.plane.store_url)
    for path in (store, Path(f"{store}-wal"), Path(f"{store}-shm")):
        if path.exists() or path == store:
            assert path.stat().st_mode & 0o777 == 0o600, path
    logs = "\n".join(p.read_text(errors="replace") for p in world.home.glob("server-*.log"))
    assert f"tightened {world.home / 'secret.key'} from mode 644 to 600" in logs
