"""What `concurrent cluster bootstrap` creates: the same rights as the shipped manifests, no more."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import yaml

from concurrent_mlflow.cli.clusters import _seconds
from concurrent_mlflow.cluster_bootstrap import EXECUTOR_RULES, objects, token_kubeconfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def test_the_role_is_the_one_the_deploy_manifests_grant() -> None:
    (shipped,) = [
        d for d in yaml.safe_load_all((DEPLOY / "tasks-rbac.yaml").read_text()) if d["kind"] == "Role"
    ]
    assert shipped["rules"] == EXECUTOR_RULES
    role = next(o for o in objects("tasks") if o["kind"] == "Role")
    assert role["rules"] == EXECUTOR_RULES and role["metadata"]["namespace"] == "tasks"


def test_the_namespace_enforces_the_restricted_pod_security_level() -> None:
    namespace = objects("tasks")[0]
    assert namespace["kind"] == "Namespace"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_registered_kubeconfig_keeps_the_cluster_and_holds_only_the_token() -> None:
    admin = {
        "clusters": [
            {"name": "eks", "cluster": {"server": "https://k.example", "certificate-authority-data": "Q0E="}}
        ],
        "users": [{"name": "me", "user": {"exec": True}}],
    }
    made = token_kubeconfig(admin, "t0k", "tasks", "prod")
    assert made["clusters"][0]["cluster"] == admin["clusters"][0]["cluster"]
    assert made["users"] == [{"name": "prod", "user": {"token": "t0k"}}]
    assert made["contexts"][0]["context"]["namespace"] == "tasks"


@pytest.mark.parametrize(
    ("text", "seconds"), [("90m", 5400), ("12h", 43200), ("30d", 2592000), (" 2H ", 7200)]
)
def test_durations(text: str, seconds: int) -> None:
    assert _seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "h", "1.5h", "-3d", "3w"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(click.BadParameter, match=r"e\.g\. 90m, 12h, 30d"):
        _seconds(text)
