"""Cloud sign-in as registered and stored: validated by field, kept encrypted beside the kubeconfig,
shown only as its kind and identity; EKS tokens minted here have EKS's shape."""

from __future__ import annotations

import base64
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet
from sqlalchemy import text
from tests.unit.test_clusters import document, dump

from concurrent_mlflow import cloud_auth
from concurrent_mlflow.cli import main
from concurrent_mlflow.errors import ClusterConfigError
from concurrent_mlflow.settings import Paths
from concurrent_mlflow.store import clusters, open_store
from concurrent_mlflow.store.crypto import KEY_ENV, Cipher, load_cipher
from concurrent_mlflow.store.db import Store


@pytest.fixture
def cipher(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cipher:
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    return load_cipher(tmp_path)


EKS = {
    "kind": "eks",
    "cluster": "prod",
    "region": "eu-west-1",
    "access_key_id": "AKIAX",
    "secret_access_key": "s3cr3t",
}


def userless(**changes: Any) -> str:
    """The `dev` context of the test kubeconfig without its user: an address and a CA only."""
    doc = document(**changes)
    doc["contexts"][0]["context"].pop("user")
    return dump(doc)


def test_a_cloud_sign_in_is_stored_encrypted_and_shown_by_kind_and_identity(
    store: Store, cipher: Cipher
) -> None:
    added = clusters.register(store, cipher, "eks-prod", userless(), cloud=EKS)
    assert added.auth == "eks (prod, eu-west-1, stored access keys)"
    stored = clusters.credentials(store, cipher, "eks-prod")
    assert stored[cloud_auth.CONFIG_KEY] == EKS
    with store.transaction() as session:
        raw = session.execute(text("select secret, config from clusters")).one()
    assert b"s3cr3t" not in raw[0] and "s3cr3t" not in str(raw[1])
    # A new userless kubeconfig keeps the sign-in; one with a token of its own ends it.
    clusters.update(store, cipher, "eks-prod", kubeconfig_text=userless())
    assert clusters.get(store, "eks-prod").auth.startswith("eks (")
    clusters.update(store, cipher, "eks-prod", kubeconfig_text=dump(document()))
    assert clusters.get(store, "eks-prod").auth == "token"
    assert cloud_auth.CONFIG_KEY not in clusters.credentials(store, cipher, "eks-prod")


def test_a_kubeconfig_user_with_credentials_of_its_own_is_refused_with_a_cloud_sign_in(
    store: Store, cipher: Cipher
) -> None:
    with pytest.raises(ClusterConfigError, match="context without a user"):
        clusters.register(store, cipher, "eks-prod", dump(document()), cloud=EKS)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"kind": "aks"}, "not one of eks, gke"),
        ({"kind": "eks", "region": "eu-west-1"}, "`cluster` is required"),
        ({**EKS, "secret_access_key": None}, "give both access_key_id and secret_access_key"),
        ({**EKS, "password": "x"}, "unknown field"),
        ({"kind": "gke", "service_account_key": {"type": "authorized_user"}}, "service-account JSON key"),
    ],
)
def test_bad_sign_ins_are_refused_naming_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ClusterConfigError, match=message):
        cloud_auth.checked(config)


def test_an_eks_token_is_a_presigned_get_caller_identity_for_the_cluster() -> None:
    token = cloud_auth.mint_token({**EKS, "sts_endpoint": "https://sts.eu-west-1.amazonaws.com"})
    assert token.value.startswith("k8s-aws-v1.") and "=" not in token.value
    encoded = token.value.removeprefix("k8s-aws-v1.")
    url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert parts.netloc == "sts.eu-west-1.amazonaws.com" and query["Action"] == "GetCallerIdentity"
    assert query["X-Amz-SignedHeaders"] == "host;x-k8s-aws-id" and query["X-Amz-Expires"] == "60"
    assert query["X-Amz-Credential"].startswith("AKIAX/") and "s3cr3t" not in url


def test_a_failed_sign_in_names_the_identity_and_hides_its_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    key = {"type": "service_account", "client_email": "ci@p.iam.gserviceaccount.com", "private_key": "NOTAKEY",
           "token_uri": "http://127.0.0.1:9/token"}  # fmt: skip
    with pytest.raises(ClusterConfigError) as failed:
        cloud_auth.mint_token({"kind": "gke", "service_account_key": key})
    assert "ci@p.iam.gserviceaccount.com" in str(failed.value) and "NOTAKEY" not in str(failed.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--region", "eu-west-1"], "--region need(s) --eks CLUSTER"),
        (["--eks", "prod"], "--eks needs --region"),
        (["--eks", "a", "--region", "r", "--gke", "p/l/c"], "not both"),
        (["--gke", "p/l"], "expected PROJECT/LOCATION/CLUSTER"),
    ],
)
def test_cli_cloud_options_are_checked(args: list[str], message: str, tmp_path: Path) -> None:
    (tmp_path / "kubeconfig").write_text(userless())
    done = CliRunner().invoke(
        main,
        ["--home", str(tmp_path), "cluster", "add", "x", "--kubeconfig", str(tmp_path / "kubeconfig"), *args],
    )
    assert done.exit_code == 2 and message in done.output, done.output


def test_a_token_cluster_switches_to_a_cloud_sign_in_and_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, Fernet.generate_key().decode())
    (tmp_path / "kubeconfig").write_text(dump(document()))
    (tmp_path / "keys.json").write_text(
        '{"AccessKey": {"AccessKeyId": "AKIAX", "SecretAccessKey": "s3cr3t"}}'
    )
    run = CliRunner().invoke
    home = ["--home", str(tmp_path)]
    added = run(
        main, [*home, "cluster", "add", "dev", "--kubeconfig", str(tmp_path / "kubeconfig"), "--no-check"]
    )
    assert added.exit_code == 0 and "auth token" in added.output, added.output
    switched = run(
        main,
        [
            *home,
            "cluster",
            "update",
            "dev",
            "--eks",
            "prod",
            "--region",
            "eu-west-1",
            "--aws-keys",
            str(tmp_path / "keys.json"),
        ],
    )
    assert switched.exit_code == 0, switched.output
    paths = Paths(tmp_path)
    stored = clusters.credentials(open_store(paths.store_url), load_cipher(paths.home), "dev")
    assert stored["users"] == [] and stored[cloud_auth.CONFIG_KEY]["secret_access_key"] == "s3cr3t"
    assert (
        clusters.get(open_store(paths.store_url), "dev").auth == "eks (prod, eu-west-1, stored access keys)"
    )
    back = run(main, [*home, "cluster", "update", "dev", "--kubeconfig", str(tmp_path / "kubeconfig")])
    assert back.exit_code == 0 and clusters.get(open_store(paths.store_url), "dev").auth == "token"
