"""The cluster registry without a cluster: encryption at rest and its key, kubeconfig validation and reduction,
the store functions (on SQLite and PostgreSQL), scrubbing of check messages, and the embedded CLI.

Reachability checks talk to a network and are in tests/integration/test_api_clusters.py.
"""

from __future__ import annotations

import base64
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from cryptography.fernet import Fernet
from sqlalchemy import text

from concurrent_mlflow import kubeconfig
from concurrent_mlflow.cli import main
from concurrent_mlflow.errors import (
    ClusterConfigError,
    ClusterNotFoundError,
    ConflictError,
    SecretKeyError,
)
from concurrent_mlflow.kube import scrub
from concurrent_mlflow.store import clusters
from concurrent_mlflow.store.crypto import KEY_ENV, KEY_FILE, Cipher, load_cipher
from concurrent_mlflow.store.db import Store

TOKEN = "tok-DEVSECRET-5c1e0f9a7b"
OTHER_TOKEN = "tok-PRODSECRET-91ab33"
KEY_PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQFAKEKEYMATERIAL0123456789abcdefXYZ\n-----END PRIVATE KEY-----\n"
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIC5zCCAc+gAwIBAgIBADANFAKECA\n-----END CERTIFICATE-----\n"


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def document(**changes: Any) -> dict[str, Any]:
    """Two contexts: `dev` (a token; the current one) and `prod` (a client certificate)."""
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "dev",
        "preferences": {},
        "contexts": [
            {"name": "dev", "context": {"cluster": "dev-cluster", "user": "dev-user", "namespace": "team-a"}},
            {"name": "prod", "context": {"cluster": "prod-cluster", "user": "prod-user"}},
        ],
        "clusters": [
            {
                "name": "dev-cluster",
                "cluster": {
                    "server": "https://127.0.0.1:6443",
                    "certificate-authority-data": b64(CA_PEM),
                    "extensions": [{"name": "cluster_info", "extension": {"provider": "minikube"}}],
                },
            },
            {"name": "prod-cluster", "cluster": {"server": "https://prod.example.com:6443"}},
        ],
        "users": [
            {"name": "dev-user", "user": {"token": TOKEN}},
            {
                "name": "prod-user",
                "user": {"client-certificate-data": b64(CA_PEM), "client-key-data": b64(KEY_PEM)},
            },
        ],
    }
    doc.update(changes)
    return doc


def dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def entry(doc: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    key = section[:-1]
    found: dict[str, Any] = next(e[key] for e in doc[section] if e["name"] == name)
    return found


@pytest.fixture
def cipher(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cipher:
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    return load_cipher(tmp_path)


# -- encryption and its key --------------------------------------------------------------------------------


def test_encryption_round_trips_and_the_ciphertext_does_not_hold_the_plaintext(cipher: Cipher) -> None:
    token = cipher.encrypt(TOKEN.encode())
    assert TOKEN.encode() not in token
    assert cipher.decrypt(token, "a test secret") == TOKEN.encode()


def test_the_key_file_is_made_once_with_mode_0600_and_reused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    home = tmp_path / "home"
    first = load_cipher(home)
    path = home / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.where == str(path)
    sealed = first.encrypt(b"x")
    assert load_cipher(home).decrypt(sealed, "x") == b"x"
    assert sorted(p.name for p in home.iterdir()) == [KEY_FILE]  # no temporary file left behind


def test_processes_racing_to_create_the_key_file_all_end_up_with_the_same_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with ThreadPoolExecutor(max_workers=8) as pool:
        ciphers = list(pool.map(lambda _: load_cipher(tmp_path), range(16)))
    sealed = ciphers[0].encrypt(b"shared")
    assert all(c.decrypt(sealed, "x") == b"shared" for c in ciphers)
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]


def test_a_malformed_env_key_is_a_clear_error_that_does_not_echo_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(KEY_ENV, "not-a-key-but-maybe-a-typo-of-one")
    with pytest.raises(SecretKeyError) as caught:
        load_cipher(tmp_path)
    assert KEY_ENV in str(caught.value) and "Fernet.generate_key" in str(caught.value)
    assert "typo" not in str(caught.value)


def test_a_changed_key_names_the_cluster_and_says_what_to_do(
    store: Store, cipher: Cipher, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clusters.register(store, cipher, "dev", dump(document()))
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    with pytest.raises(SecretKeyError) as caught:
        clusters.credentials(store, load_cipher(tmp_path), "dev")
    message = str(caught.value)
    assert "cluster 'dev'" in message
    assert KEY_ENV in message and "rotate-key" in message and "register" in message
    # New credentials repair it under the new key, whatever the old ones were.
    clusters.update(store, load_cipher(tmp_path), "dev", kubeconfig_text=dump(document()))
    assert clusters.credentials(store, load_cipher(tmp_path), "dev")["users"][0]["user"]["token"] == TOKEN


def test_rotating_the_key_reencrypts_under_the_new_one(
    store: Store, cipher: Cipher, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    old = os.environ[KEY_ENV]
    clusters.register(store, cipher, "dev", dump(document()))
    new = Fernet.generate_key().decode()
    monkeypatch.setenv(KEY_ENV, f"{new},{old}")
    both = load_cipher(tmp_path)
    assert entry(clusters.credentials(store, both, "dev"), "users", "dev-user")["token"] == TOKEN
    assert clusters.rotate(store, both) == 1
    monkeypatch.setenv(KEY_ENV, new)
    assert (
        entry(clusters.credentials(store, load_cipher(tmp_path), "dev"), "users", "dev-user")["token"]
        == TOKEN
    )


# -- kubeconfig validation and reduction ------------------------------------------------------------------


def test_the_current_context_is_the_default_and_only_it_is_kept() -> None:
    loaded = kubeconfig.load(dump(document()), None, None)
    assert (loaded.context, loaded.namespace, loaded.server, loaded.auth) == (
        "dev",
        "team-a",
        "https://127.0.0.1:6443",
        "token",
    )
    stored = dump(loaded.document)
    assert TOKEN in stored
    assert OTHER_TOKEN not in stored and b64(KEY_PEM) not in stored and "prod" not in stored
    assert "extensions" not in stored  # tool metadata is not carried along
    assert [c["name"] for c in loaded.document["contexts"]] == ["dev"]


def test_another_context_can_be_chosen_and_keeps_only_its_own_credentials() -> None:
    loaded = kubeconfig.load(dump(document()), "prod", "jobs")
    assert (loaded.context, loaded.namespace, loaded.auth) == ("prod", "jobs", "client-certificate")
    stored = dump(loaded.document)
    assert TOKEN not in stored and "dev-cluster" not in stored
    assert [u["name"] for u in loaded.document["users"]] == ["prod-user"]


def test_a_context_without_a_namespace_runs_in_default() -> None:
    assert kubeconfig.load(dump(document()), "prod", None).namespace == "default"


def broken(**changes: Any) -> str:
    doc = document()
    for path, value in changes.items():
        section, name, key = path.split(".")
        if value is None:
            entry(doc, section, name).pop(key, None)
        else:
            entry(doc, section, name)[key] = value
    return dump(doc)


REFUSED = {
    "no current context": (
        dump(document(**{"current-context": ""})),
        None,
        "no `current-context` set; choose one",
    ),
    "unknown context": (
        dump(document()),
        "staging",
        "no entry named 'staging' in `contexts` (it has: dev, prod)",
    ),
    "no server": (
        broken(**{"clusters.dev-cluster.server": None}),
        None,
        "clusters[dev-cluster].cluster.server is missing",
    ),
    "dangling cluster": (
        broken(**{"contexts.dev.cluster": "gone"}),
        None,
        "no entry named 'gone' in `clusters`",
    ),
    "dangling user": (broken(**{"contexts.dev.user": "nobody"}), None, "no entry named 'nobody' in `users`"),
    "context without cluster": (
        broken(**{"contexts.dev.cluster": None}),
        None,
        "contexts[dev].context.cluster is missing",
    ),
    "not http": (
        broken(**{"clusters.dev-cluster.server": "ftp://x"}),
        None,
        "server must be the http(s):// URL",
    ),
    "userinfo": (
        broken(**{"clusters.dev-cluster.server": "https://u:pw@h"}),
        None,
        "carries credentials in the URL",
    ),
    "exec": (
        broken(**{"users.dev-user.exec": {"command": "sh"}}),
        None,
        "users[dev-user].user.exec would run a command",
    ),
    "auth-provider": (
        broken(**{"users.dev-user.auth-provider": {"name": "oidc"}}),
        None,
        "auth-provider would run",
    ),
    "tokenFile": (
        broken(**{"users.dev-user.tokenFile": "/etc/shadow"}),
        None,
        "users[dev-user].user.tokenFile refers to a file",
    ),
    "ca file": (
        broken(**{"clusters.dev-cluster.certificate-authority": "ca.crt"}),
        None,
        "certificate-authority refers",
    ),
    "impersonation": (
        broken(**{"users.dev-user.as": "system:admin"}),
        None,
        "users[dev-user].user.as is not supported",
    ),
    "not base64": (
        broken(**{"users.dev-user.client-key-data": "not base64!"}),
        None,
        "client-key-data is not base64",
    ),
    "list token": (broken(**{"users.dev-user.token": ["a", "list"]}), None, "token must be a string"),
    "contexts not a list": (dump(document(contexts="dev")), None, "`contexts` is missing or not a list"),
    "not a mapping": ("- just\n- a list\n", None, "expected a mapping"),
    "malformed yaml": (
        f"users:\n  - token: {TOKEN}\n\tbad: tab\n",
        None,
        "not valid YAML at line 3, column 1",
    ),
    "bad date": ("current-context: 2023-13-45\n", None, "not valid YAML"),
    "too deep": ("[" * 5000, None, "not valid YAML"),
    "too large": ("x" * (kubeconfig.MAX_KUBECONFIG + 1), None, "larger than 256 KiB"),
}


@pytest.mark.parametrize(("text", "context", "expected"), REFUSED.values(), ids=REFUSED.keys())
def test_unusable_kubeconfigs_are_refused_naming_the_field(
    text: str, context: str | None, expected: str
) -> None:
    with pytest.raises(ClusterConfigError) as caught:
        kubeconfig.load(text, context, None)
    assert expected in str(caught.value)
    assert TOKEN not in str(caught.value)  # not even the malformed-YAML error quotes the document


def test_a_bad_namespace_is_refused() -> None:
    with pytest.raises(ClusterConfigError, match="namespace: 'Team_A' is not a Kubernetes namespace"):
        kubeconfig.load(dump(document()), None, "Team_A")


def test_flatten_inlines_the_files_a_context_refers_to_relative_to_the_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.crt").write_text(CA_PEM)
    (tmp_path / "certs" / "client.key").write_text(KEY_PEM)
    (tmp_path / "token").write_text(OTHER_TOKEN + "\n")
    doc = document()
    entry(doc, "clusters", "prod-cluster")["certificate-authority"] = "certs/ca.crt"
    entry(doc, "users", "prod-user").pop("client-key-data")
    entry(doc, "users", "prod-user")["client-key"] = "certs/client.key"
    reduced = kubeconfig.reduce(doc, "prod")
    with pytest.raises(ClusterConfigError, match="refers to a file"):
        kubeconfig.validate(reduced, None)
    flat = kubeconfig.flatten(reduced, tmp_path)
    assert entry(flat, "clusters", "prod-cluster")["certificate-authority-data"] == b64(CA_PEM)
    assert entry(flat, "users", "prod-user")["client-key-data"] == b64(KEY_PEM)
    assert "client-key" not in entry(flat, "users", "prod-user")
    assert kubeconfig.validate(flat, None).auth == "client-certificate"


def test_flatten_reports_a_missing_file_by_field(tmp_path: Path) -> None:
    doc = document()
    entry(doc, "users", "dev-user")["tokenFile"] = "missing-token"
    entry(doc, "users", "dev-user").pop("token")
    with pytest.raises(ClusterConfigError, match=r"users\[dev-user\].user.tokenFile: cannot read"):
        kubeconfig.flatten(kubeconfig.reduce(doc, None), tmp_path)


@pytest.mark.parametrize("name", ["dev", "k8s-prod-1", "a", "a" * 63])
def test_valid_cluster_names(name: str) -> None:
    assert clusters.validate_name(name) == name


@pytest.mark.parametrize("name", ["", "Dev", "-dev", "dev-", "dev_1", "dev.prod", "a" * 64, "../x"])
def test_invalid_cluster_names(name: str) -> None:
    with pytest.raises(ClusterConfigError, match="not a valid cluster name"):
        clusters.validate_name(name)


# -- the registry in the store ----------------------------------------------------------------------------


def test_register_list_get_update_delete(store: Store, cipher: Cipher) -> None:
    added = clusters.register(store, cipher, "dev", dump(document()), image="ghcr.io/acme/task:1", user="ann")
    assert (added.name, added.context, added.namespace, added.image, added.created_by) == (
        "dev",
        "dev",
        "team-a",
        "ghcr.io/acme/task:1",
        "ann",
    )
    assert added.reachable is None and added.checked_at is None
    clusters.register(store, cipher, "prod", dump(document()), context="prod")
    assert [c.name for c in clusters.list_clusters(store)] == ["dev", "prod"]
    assert clusters.get(store, "prod").auth == "client-certificate"

    clusters.record_check(store, "dev", False, "cannot connect")
    moved = clusters.update(store, cipher, "dev", namespace="team-b", image="")
    assert (moved.namespace, moved.image, moved.reachable, moved.check_message) == (
        "team-b",
        None,
        None,
        None,
    )
    with pytest.raises(ClusterConfigError, match="stores only context 'dev'"):
        clusters.update(store, cipher, "dev", context="prod")
    switched = clusters.update(store, cipher, "dev", kubeconfig_text=dump(document()), context="prod")
    assert (switched.context, switched.auth, switched.namespace) == ("prod", "client-certificate", "team-b")

    clusters.delete(store, "dev")
    with pytest.raises(ClusterNotFoundError, match="No cluster named 'dev'"):
        clusters.get(store, "dev")
    with pytest.raises(ClusterNotFoundError):
        clusters.delete(store, "dev")


def test_a_taken_name_is_a_conflict_and_nothing_is_half_written(store: Store, cipher: Cipher) -> None:
    clusters.register(store, cipher, "dev", dump(document()))
    with pytest.raises(ConflictError, match="registered already"):
        clusters.register(store, cipher, "dev", dump(document()), context="prod")
    assert clusters.get(store, "dev").context == "dev"
    with pytest.raises(ClusterConfigError):
        clusters.register(store, cipher, "broken", "contexts: []")
    assert [c.name for c in clusters.list_clusters(store)] == ["dev"]


def test_credentials_are_not_in_the_database_in_plaintext(store: Store, cipher: Cipher) -> None:
    clusters.register(store, cipher, "dev", dump(document()))
    clusters.register(store, cipher, "prod", dump(document()), context="prod")
    with store.engine.connect() as connection:
        rows = connection.execute(text("SELECT name, config, secret FROM clusters")).all()
    raw = repr(rows).encode() + b"".join(bytes(r.secret) for r in rows)
    for secret in (TOKEN, OTHER_TOKEN, b64(KEY_PEM), "FAKEKEYMATERIAL"):
        assert secret.encode() not in raw
    assert entry(clusters.credentials(store, cipher, "dev"), "users", "dev-user") == {"token": TOKEN}
    assert all(TOKEN not in repr(c) for c in clusters.list_clusters(store))


# -- what a check may say --------------------------------------------------------------------------------


def test_scrub_removes_credentials_and_anything_shaped_like_them() -> None:
    doc = kubeconfig.load(dump(document()), "prod", None).document
    secrets = kubeconfig.secret_values(kubeconfig.load(dump(document()), None, None).document)
    secrets += kubeconfig.secret_values(doc)
    text = (
        f"failed with token {TOKEN} header Authorization: Bearer abc.def.ghi "
        f"key {b64(KEY_PEM)} pem {KEY_PEM} line MIIEvQFAKEKEYMATERIAL0123456789abcdefXYZ"
    )
    scrubbed = scrub(text, secrets)
    for leaked in (TOKEN, "abc.def.ghi", b64(KEY_PEM), "FAKEKEYMATERIAL"):
        assert leaked not in scrubbed
    assert "Bearer ***" in scrubbed
    assert len(scrub("x" * 5000, [])) <= 500


# -- the CLI on this machine ------------------------------------------------------------------------------


def test_cli_adds_lists_and_removes_a_cluster_in_the_local_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv("CONCURRENT_STORE", raising=False)
    monkeypatch.delenv("CONCURRENT_SERVER", raising=False)
    home = tmp_path / "home"
    kube = tmp_path / "kube"
    kube.mkdir()
    (kube / "client.key").write_text(KEY_PEM)
    doc = document()
    entry(doc, "users", "prod-user").pop("client-key-data")
    entry(doc, "users", "prod-user")["client-key"] = "client.key"
    (kube / "config").write_text(dump(doc))
    runner = CliRunner()

    def cli(*args: str) -> Any:
        return runner.invoke(main, ["--home", str(home), "cluster", *args], catch_exceptions=False)

    added = cli("add", "prod", "--kubeconfig", str(kube / "config"), "--context", "prod", "--no-check")
    assert added.exit_code == 0, added.output
    assert "Cluster 'prod' registered" in added.output and "client-certificate" in added.output
    assert stat.S_IMODE((home / KEY_FILE).stat().st_mode) == 0o600
    stored = b"".join(p.read_bytes() for p in home.glob("concurrent.db*"))  # the database and its WAL
    assert b"FAKEKEYMATERIAL" not in stored and b64(KEY_PEM).encode() not in stored
    listing = cli("list")
    assert listing.exit_code == 0 and "prod" in listing.output and "unchecked" in listing.output
    again = cli("add", "prod", "--kubeconfig", str(kube / "config"), "--no-check")
    assert again.exit_code == 1 and "registered already" in again.output
    bad = cli("add", "Bad_Name", "--kubeconfig", str(kube / "config"), "--no-check")
    assert bad.exit_code == 1 and "not a valid cluster name" in bad.output
    updated = cli("update", "prod", "--namespace", "batch")
    assert updated.exit_code == 0 and "namespace 'batch'" in updated.output
    for result in (added, listing, again, updated):
        assert TOKEN not in result.output and "FAKEKEYMATERIAL" not in result.output
    rotated = cli("rotate-key")
    assert rotated.exit_code == 0 and "credentials of 1 cluster(s)" in rotated.output
    assert cli("remove", "prod").exit_code == 0
    missing = cli("check", "prod")
    assert missing.exit_code == 1 and "No cluster named 'prod'" in missing.output
