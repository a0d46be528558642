"""/api/v1/clusters and `concurrent cluster --server` against a real `concurrent server --auth`.

Registering, listing, reading, changing and removing clusters; who may do what (admins change, anyone
authenticated reads and checks, nobody anonymous); bad kubeconfigs refused by field with nothing stored; the
reachability check of a cluster that cannot be reached; and that a credential never shows up in a response,
the server's log or the database.

The positive reachability check (a real API server answering, the namespace existing, Jobs allowed) needs a
real Kubernetes control plane; it is covered in tests/k8s once scripts/k8s-testbed lands. No Kubernetes API
server is faked here.
"""

from __future__ import annotations

import base64
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import yaml

from tests.fixtures.control_plane import ControlPlane
from tests.fixtures.mlflow_server import MlflowServer

pytestmark = pytest.mark.integration

TOKEN = "kube-TOKEN-9d8c7b6a5f4e3d2c1b0a"
OTHER_TOKEN = "kube-OTHER-0a1b2c3d4e5f"
KEY_MATERIAL = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCFAKECLIENTKEY0123456789"
CLOUD = "aws-SECRET-ACCESS-KEY-5e4d3c2b1a"
KEY_PEM = f"-----BEGIN PRIVATE KEY-----\n{KEY_MATERIAL}\n-----END PRIVATE KEY-----\n"
CHECK_TIMEOUT = 30.0  # the HTTP client's bound on a check: a check that hangs fails the test


@dataclass
class World:
    plane: ControlPlane
    tokens: dict[str, str]
    responses: list[str] = field(default_factory=list)  # every body seen, searched for secrets at the end

    def api(self, user: str | None = "admin") -> httpx.Client:
        client = self.plane.client(self.tokens[user] if user else None, timeout=CHECK_TIMEOUT)
        client.event_hooks["response"] = [self._keep]
        return client

    def _keep(self, response: httpx.Response) -> None:
        response.read()
        self.responses.append(response.text)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def kubeconfig(server: str, **user: Any) -> str:
    """Two contexts: `work` (the current one, a token) and `other`, whose credentials must not be kept."""
    key = base64.b64encode(KEY_PEM.encode()).decode()
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "work",
            "contexts": [
                {"name": "work", "context": {"cluster": "work", "user": "work", "namespace": "jobs"}},
                {"name": "other", "context": {"cluster": "other", "user": "other"}},
            ],
            "clusters": [
                {"name": "work", "cluster": {"server": server, "insecure-skip-tls-verify": True}},
                {"name": "other", "cluster": {"server": f"https://127.0.0.1:{closed_port()}"}},
            ],
            "users": [
                {"name": "work", "user": user or {"token": TOKEN}},
                {"name": "other", "user": {"token": OTHER_TOKEN, "client-key-data": key}},
            ],
        }
    )


def without_server(text: str) -> str:
    document = yaml.safe_load(text)
    del document["clusters"][0]["cluster"]["server"]
    return yaml.safe_dump(document)


def cli(
    plane: ControlPlane, *args: str, token: str | None = None, server: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONCURRENT_HOME": str(plane.home), "CONCURRENT_STORE": plane.store_url}
    env.pop("CONCURRENT_TOKEN", None)
    if token:
        env["CONCURRENT_TOKEN"] = token
    prefix = ["--server", plane.url] if server else []
    return subprocess.run(
        [sys.executable, "-m", "concurrent_mlflow.cli", *prefix, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_problem(response: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status, body
    if slug:
        assert body["type"].endswith(f"/problems/{slug}"), body
    return body


@pytest.fixture(scope="module")
def world(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("api-clusters")
    plane = ControlPlane.under(root, mlflow_server.url, "--auth", CONCURRENT_SECRET_KEY="")
    try:
        plane.start()
        tokens = {}
        for user, flags in (("admin", ["--admin"]), ("alice", [])):
            made = cli(plane, "token", "create", user, *flags)
            assert made.returncode == 0, made.stderr
            tokens[user] = made.stdout.strip()
        yield World(plane, tokens)
    finally:
        plane.stop()


def register(world: World, name: str, server: str | None = None, **body: Any) -> dict[str, Any]:
    payload = {"name": name, "kubeconfig": kubeconfig(server or f"https://127.0.0.1:{closed_port()}"), **body}
    with world.api() as admin:
        response = admin.post("/clusters", json=payload)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_register_list_get_update_and_delete(world: World) -> None:
    created = register(world, "crud", image="ghcr.io/acme/task:1")
    assert created["name"] == "crud" and created["kind"] == "kubernetes"
    assert (created["context"], created["namespace"], created["auth"]) == ("work", "jobs", "token")
    assert created["image"] == "ghcr.io/acme/task:1" and created["created_by"] == "admin"
    assert created["reachable"] is None and created["checked_at"] is None
    assert not {"kubeconfig", "secret", "token", "config"} & created.keys()

    with world.api("alice") as alice:  # reading is for anyone authenticated
        assert "crud" in [c["name"] for c in alice.get("/clusters").raise_for_status().json()]
        assert alice.get("/clusters/crud").raise_for_status().json() == created
    with world.api() as admin:
        changed = admin.patch("/clusters/crud", json={"namespace": "batch", "image": None})
        assert changed.status_code == 200, changed.text
        assert (changed.json()["namespace"], changed.json()["image"]) == ("batch", None)
        assert_problem(admin.patch("/clusters/crud", json={"context": "other"}), 422, "invalid-cluster")
        assert admin.delete("/clusters/crud").status_code == 204
        body = assert_problem(admin.get("/clusters/crud"), 404, "not-found")
        assert "No cluster named 'crud'" in body["detail"]
        assert_problem(admin.delete("/clusters/crud"), 404, "not-found")


def test_only_admins_change_clusters_and_nobody_anonymous_sees_them(world: World) -> None:
    register(world, "guarded")
    body = {"name": "alices", "kubeconfig": kubeconfig("https://127.0.0.1:1")}
    with world.api("alice") as alice, world.api(None) as anonymous:
        for response in (
            alice.post("/clusters", json=body),
            alice.patch("/clusters/guarded", json={"namespace": "mine"}),
            alice.delete("/clusters/guarded"),
        ):
            assert "Only an admin" in assert_problem(response, 403, "forbidden")["detail"]
        for response in (
            anonymous.get("/clusters"),
            anonymous.get("/clusters/guarded"),
            anonymous.post("/clusters", json=body),
            anonymous.patch("/clusters/guarded", json={"namespace": "mine"}),
            anonymous.delete("/clusters/guarded"),
            anonymous.post("/clusters/guarded/check"),
        ):
            assert_problem(response, 401, "unauthenticated")
        assert alice.get("/clusters/guarded").json()["namespace"] == "jobs"  # nothing changed
        assert_problem(alice.get("/clusters/alices"), 404)


def test_bad_registrations_are_refused_by_field_and_nothing_is_stored(world: World) -> None:
    register(world, "taken")
    good = kubeconfig("https://127.0.0.1:1")
    exec_user = kubeconfig("https://127.0.0.1:1", exec={"command": "/bin/sh", "args": ["-c", "id"]})
    cases = [
        ({"name": "taken", "kubeconfig": good}, 409, "registered already"),
        ({"name": "Bad_Name", "kubeconfig": good}, 422, "name"),
        ({"name": "ctx", "kubeconfig": good, "context": "nope"}, 422, "no entry named 'nope' in `contexts`"),
        ({"name": "exec", "kubeconfig": exec_user}, 422, "users[work].user.exec would run a command"),
        ({"name": "yaml", "kubeconfig": f"users: [token: {TOKEN}\n"}, 422, "not valid YAML at line"),
        (
            {"name": "noserver", "kubeconfig": without_server(good)},
            422,
            "clusters[work].cluster.server is missing",
        ),
        ({"name": "big", "kubeconfig": "#" * (256 * 1024 + 1)}, 422, "kubeconfig"),
        ({"name": "ns", "kubeconfig": good, "namespace": "Not A Namespace"}, 422, "namespace"),
        ({"name": "extra", "kubeconfig": good, "token": TOKEN}, 422, "token"),
    ]
    with world.api() as admin:
        before = admin.get("/clusters").json()
        for body, status, expected in cases:
            problem = assert_problem(admin.post("/clusters", json=body), status)
            assert expected in problem["detail"], (body["name"], problem)
            assert TOKEN not in problem["detail"]
        assert admin.get("/clusters").json() == before


def test_an_unreachable_cluster_is_reported_and_recorded(world: World) -> None:
    port = closed_port()
    register(world, "down", server=f"https://127.0.0.1:{port}")
    with world.api("alice") as alice:  # any authenticated caller may check
        response = alice.post("/clusters/down/check")
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["reachable"] is False and result["server_version"] is None
        assert f"https://127.0.0.1:{port}: cannot connect" in result["message"]
        assert "refused" in result["message"].lower()
        shown = alice.get("/clusters/down").json()
    assert shown["reachable"] is False and shown["check_message"] == result["message"]
    assert shown["checked_at"] == result["checked_at"]


def test_a_server_that_is_not_kubernetes_is_reported_without_echoing_the_token(
    world: World, mlflow_server: MlflowServer
) -> None:
    register(world, "not-k8s", server=mlflow_server.url)
    with world.api() as admin:
        result = admin.post("/clusters/not-k8s/check").raise_for_status().json()
    assert result["reachable"] is False
    assert "the API server answered HTTP 404" in result["message"], result
    assert TOKEN not in result["message"]


def test_the_cli_talks_to_the_server_and_needs_an_admin_to_register(world: World, tmp_path: Any) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig(f"https://127.0.0.1:{closed_port()}"))
    plane, tokens = world.plane, world.tokens
    refused = cli(
        plane, "cluster", "add", "by-cli", "--kubeconfig", str(config), token=tokens["alice"], server=True
    )
    assert refused.returncode == 1 and "Only an admin may register clusters" in refused.stderr
    added = cli(
        plane, "cluster", "add", "by-cli", "--kubeconfig", str(config), token=tokens["admin"], server=True
    )
    assert added.returncode == 0, added.stderr
    assert "Cluster 'by-cli' registered" in added.stdout and "is not reachable" in added.stderr
    listing = cli(plane, "cluster", "list", token=tokens["alice"], server=True)
    assert listing.returncode == 0 and "by-cli" in listing.stdout and "no" in listing.stdout
    checked = cli(plane, "cluster", "check", "by-cli", token=tokens["alice"], server=True)
    assert checked.returncode == 1 and "cannot connect" in checked.stderr
    removed = cli(plane, "cluster", "remove", "by-cli", token=tokens["admin"], server=True)
    assert removed.returncode == 0, removed.stderr
    for result in (refused, added, listing, checked, removed):
        assert TOKEN not in result.stdout + result.stderr
    with world.api() as admin:
        assert_problem(admin.get("/clusters/by-cli"), 404)


def test_credentials_never_appear_in_responses_the_log_or_the_database(world: World) -> None:
    """Runs last in the module: searches everything the tests above saw, too."""
    key = base64.b64encode(KEY_PEM.encode()).decode()
    register(world, "secretive")
    register(world, "certified", context="other")
    userless = yaml.safe_load(kubeconfig(f"https://127.0.0.1:{closed_port()}"))
    del userless["contexts"][0]["context"]["user"]
    cloud = {
        "kind": "eks",
        "cluster": "c",
        "region": "eu-west-1",
        "access_key_id": "AKIAC",
        "secret_access_key": CLOUD,
    }
    register(world, "cloudy", kubeconfig=yaml.safe_dump(userless), cloud=cloud)
    with world.api() as admin:
        checked = admin.post("/clusters/cloudy/check").json()  # mints a token, then cannot connect
        assert checked["reachable"] is False and "k8s-aws-v1." not in str(checked)
        assert admin.get("/clusters/cloudy").json()["auth"] == "eks (c, eu-west-1, stored access keys)"
        admin.patch("/clusters/secretive", json={"kubeconfig": kubeconfig("https://127.0.0.1:1")})
        admin.post("/clusters/secretive/check")
        admin.post("/clusters/certified/check")
        admin.get("/clusters")
        admin.get("/clusters/certified")
        admin.get("/openapi.json")
        assert admin.get("/clusters/certified").json()["auth"] == "token"
    assert len(world.responses) > 30
    secrets = [TOKEN, OTHER_TOKEN, key, KEY_MATERIAL, CLOUD, "k8s-aws-v1."]
    for body in world.responses:
        assert not [s for s in secrets if s in body], body[:500]

    logs = "\n".join(p.read_text(errors="replace") for p in world.plane.home.glob("server-*.log"))
    assert "cluster secretive registered by admin" in logs  # the log does talk about clusters ...
    assert not [s for s in secrets if s in logs]  # ... but never about their credentials (nor cloud tokens)

    stored = b"".join(p.read_bytes() for p in world.plane.home.parent.glob("store.db*"))
    assert b"secretive" in stored
    assert not [s for s in secrets if s.encode() in stored]
    key_file = world.plane.home / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
