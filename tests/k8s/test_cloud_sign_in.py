"""EKS- and GKE-style sign-in on the testbed's real API server: the control plane mints the tokens itself
(botocore presigned STS URLs against moto, google-auth against a stand-in token endpoint), the API server
asks a token webhook (the clouds' authenticators' stand-in, tests/fixtures/cloud_identity.py), RBAC decides;
a DAG runs through each registration, and forged, foreign and expired tokens are refused."""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
import yaml
from kubernetes import client, config

from concurrent_mlflow import cloud_auth
from concurrent_mlflow.cluster_bootstrap import ROLE, apply, objects
from tests.fixtures.cloud_identity import CloudIdentity, serve
from tests.fixtures.s3_server import S3Server
from tests.integration.conftest import RunDag, fan_in_dag, make_files
from tests.k8s.conftest import Testbed, cluster_cli
from tests.k8s.kubelet import Kubelet
from tests.k8s.test_kubernetes_runs import HARNESS_POD

GKE_EMAIL = "runner@testbed-project.iam.gserviceaccount.com"


@pytest.fixture
def cloud(testbed: Testbed, s3_server: S3Server) -> Iterator[CloudIdentity]:
    yield from serve(CloudIdentity(moto_url=s3_server.endpoint_url, port=testbed.port + 6))


def status_with(testbed: Testbed, token: str, namespace: str) -> int:
    """The HTTP status the API server answers a request made with `token` alone (401: not signed in)."""
    document = testbed.kubeconfig_document()
    document["users"][0]["user"] = {"token": token}  # type: ignore[index]
    api = config.new_client_from_config_dict(document)
    try:
        client.VersionApi(api).get_code()
        client.CoreV1Api(api).list_namespaced_pod(namespace)
    except client.exceptions.ApiException as exc:
        return int(exc.status)
    finally:
        api.close()
    return 200


def test_eks_and_gke_sign_in_run_dags_and_refuse_forged_foreign_and_expired_tokens(
    testbed: Testbed,
    kubelet: Kubelet,
    cloud: CloudIdentity,
    tracking_env: Path,
    run_dag: RunDag,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    namespace = f"cloud-{os.urandom(3).hex()}"
    admin = config.new_client_from_config(str(testbed.admin_kubeconfig))
    apply(admin, objects(namespace))
    keys = cloud.aws_user("ci-eks")
    iam = boto3.client("iam", endpoint_url=cloud.moto_url, region_name="us-east-1")
    arn = iam.get_user(UserName="ci-eks")["User"]["Arn"]
    gke_key = cloud.google_service_account(GKE_EMAIL)
    users = [{"kind": "User", "name": f"aws:{arn}"}, {"kind": "User", "name": f"gcp:{GKE_EMAIL}"}]
    binding = {"metadata": {"name": "cloud-users", "namespace": namespace}, "subjects": users,
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE}}  # fmt: skip
    client.RbacAuthorizationV1Api(admin).create_namespaced_role_binding(namespace, binding)
    (tmp_path / "aws-keys.json").write_text(json.dumps({"AccessKey": keys}))
    (tmp_path / "gcp-key.json").write_text(json.dumps(gke_key))
    (tmp_path / "pod.yaml").write_text(yaml.safe_dump(HARNESS_POD))
    context = str(testbed.kubeconfig_document()["current-context"])
    common = ["--kubeconfig", str(testbed.admin_kubeconfig), "--context", context, "--namespace", namespace]
    common += ["--pod", str(tmp_path / "pod.yaml")]

    eks = cluster_cli(tracking_env, "add", "eks-a", *common, "--eks", cloud.eks_cluster, "--region", "us-east-1",
              "--aws-keys", str(tmp_path / "aws-keys.json"))  # fmt: skip
    assert eks.returncode == 0 and "is reachable" in eks.stdout, eks.stdout + eks.stderr
    gke = cluster_cli(tracking_env, "add", "gke-a", *common, "--gke", "testbed-project/us-central1/testbed",
              "--gcp-key", str(tmp_path / "gcp-key.json"))  # fmt: skip
    assert gke.returncode == 0 and "is reachable" in gke.stdout, gke.stdout + gke.stderr
    assert "auth eks (testbed-eks, us-east-1, stored access keys)" in " ".join(eks.stdout.split())
    assert f"auth gke (testbed-project/us-central1/testbed, {GKE_EMAIL})" in " ".join(gke.stdout.split())
    listed = cluster_cli(tracking_env, "list")
    for secret in (keys["SecretAccessKey"], gke_key["private_key"].splitlines()[1]):
        assert all(
            secret not in out for out in (eks.stdout, gke.stdout, listed.stdout, eks.stderr, gke.stderr)
        )
    assert ("eks", f"aws:{arn}") in cloud.reviews and ("gke", f"gcp:{GKE_EMAIL}") in cloud.reviews

    make_files(tmp_path / "data", {f"f{i}.txt": f"w{i}\n" for i in range(4)})
    for name in ("eks-a", "gke-a"):
        done = run_dag(
            fan_in_dag(f"on-{name}", 2).replace("partitions: 2", f"partitions: 2\n    cluster: {name}")
        )
        assert done.state == "succeeded", (name, done.why)
    assert len(kubelet.started) == 4

    # What the API server refuses: a token signed with another secret, one made for another EKS cluster,
    # one older than 15 minutes, a Google token nobody issued.
    eks_config = {"kind": "eks", "cluster": cloud.eks_cluster, "region": "us-east-1",
                  "access_key_id": keys["AccessKeyId"], "secret_access_key": keys["SecretAccessKey"]}  # fmt: skip
    assert status_with(testbed, cloud_auth.mint_token(eks_config).value, namespace) == 200
    forged = {**eks_config, "secret_access_key": "not-" + keys["SecretAccessKey"]}
    assert status_with(testbed, cloud_auth.mint_token(forged).value, namespace) == 401
    assert (
        status_with(testbed, cloud_auth.mint_token({**eks_config, "cluster": "other"}).value, namespace)
        == 401
    )
    past = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(minutes=20)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: past)
    expired = cloud_auth.mint_token(eks_config).value
    monkeypatch.undo()
    assert status_with(testbed, expired, namespace) == 401
    assert status_with(testbed, "ya29.forged-" + os.urandom(8).hex(), namespace) == 401


def test_a_cloud_token_is_refreshed_before_it_expires_and_never_shown() -> None:
    minted: list[float] = []

    def mint(_: Any) -> cloud_auth.Token:
        minted.append(1)
        return cloud_auth.Token(f"k8s-aws-v1.token{len(minted)}", expires_at=0 if len(minted) == 1 else 4e9)

    source = cloud_auth.TokenSource({"kind": "eks"}, mint)
    assert source.token() == "k8s-aws-v1.token1"
    assert source.token() == "k8s-aws-v1.token2"  # the first had expired: a new one
    assert source.token() == "k8s-aws-v1.token2" and len(minted) == 2
    from concurrent_mlflow.kube import scrub

    assert "token2" not in scrub("401 for Bearer k8s-aws-v1.token2 and k8s-aws-v1.token2", [])
