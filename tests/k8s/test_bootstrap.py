"""`concurrent cluster bootstrap` and `rotate-token` against the testbed's real API server: the objects, the
least privilege of the token it registers (real SubjectAccessReviews), a DAG run with that token alone,
re-running, rotating, and --dry-run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml
from kubernetes import client, config

from concurrent_mlflow.cluster_bootstrap import ACCOUNT, EXECUTOR_RULES, ROLE
from concurrent_mlflow.settings import Paths
from concurrent_mlflow.store import clusters, open_store
from concurrent_mlflow.store.crypto import load_cipher
from tests.integration.conftest import RunDag, fan_in_dag, make_files
from tests.k8s.conftest import Testbed, cluster_cli
from tests.k8s.kubelet import Kubelet
from tests.k8s.test_deploy import GRANTED, REFUSED, TASKS, _allowed
from tests.k8s.test_kubernetes_runs import HARNESS_POD


def stored_token(home: Path, name: str) -> str:
    paths = Paths(home)
    document = clusters.credentials(open_store(paths.store_url), load_cipher(paths.home), name)
    return str(document["users"][0]["user"]["token"])


def test_bootstrap_registers_a_least_privilege_token_that_runs_a_dag(
    testbed: Testbed, kubelet: Kubelet, tracking_env: Path, run_dag: RunDag, tmp_path: Path
) -> None:
    namespace = f"boot-{os.urandom(3).hex()}"
    admin = str(testbed.admin_kubeconfig)
    (tmp_path / "pod.yaml").write_text(yaml.safe_dump(HARNESS_POD))
    common = ["--kubeconfig", admin, "--namespace", namespace, "--pod", str(tmp_path / "pod.yaml")]

    planned = cluster_cli(tracking_env, "bootstrap", "boot", *common, "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert "Nothing was changed" in " ".join(
        planned.stderr.split()
    )  # stdout is only the objects, ready for kubectl apply
    assert [d["kind"] for d in yaml.safe_load_all(planned.stdout)] == [
        "Namespace", "ServiceAccount", "Role", "RoleBinding"
    ]  # fmt: skip
    api = config.new_client_from_config(admin)
    core = client.CoreV1Api(api)
    assert namespace not in {n.metadata.name for n in core.list_namespace().items}  # nothing was changed

    done = cluster_cli(tracking_env, "bootstrap", "boot", *common, "--token-duration", "2h")
    assert done.returncode == 0, done.stderr
    assert (
        "created Namespace" in done.stdout and "registered" in done.stdout and "is reachable" in done.stdout
    )
    labels = core.read_namespace(namespace).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    role = client.RbacAuthorizationV1Api(api).read_namespaced_role(ROLE, namespace)
    assert [(r.api_groups, r.resources, r.verbs) for r in role.rules] == [
        (r["apiGroups"], r["resources"], r["verbs"]) for r in EXECUTOR_RULES
    ]
    user = f"system:serviceaccount:{namespace}:{ACCOUNT}"
    wrong = {
        attributes: allowed
        for attributes, expected in [*((a, True) for a in GRANTED), *((a, False) for a in REFUSED)]
        if (allowed := _allowed(api, user, _in(attributes, namespace))) != expected
    }
    assert not wrong, f"not the executor's least privilege: {wrong}"
    token = stored_token(tracking_env, "boot")
    claims = json.loads(_b64(token.split(".")[1]))
    assert claims["sub"] == user and 2 * 3600 - 60 <= claims["exp"] - claims["iat"] <= 2 * 3600 + 60

    # The registered token alone runs a DAG there: the Role is all the executor needs.
    make_files(tmp_path / "data", {f"f{i}.txt": f"w{i}\n" for i in range(4)})
    ran = run_dag(fan_in_dag("boot-fan", 2).replace("partitions: 2", "partitions: 2\n    cluster: boot"))
    assert ran.state == "succeeded", ran.why
    jobs = client.BatchV1Api(api).list_namespaced_job(namespace).items
    assert jobs and all(j.status.succeeded for j in jobs)

    again = cluster_cli(tracking_env, "bootstrap", "boot", *common)
    assert again.returncode == 0, again.stderr
    assert "updated Role" in again.stdout and "updated with a new token" in again.stdout
    assert stored_token(tracking_env, "boot") != token

    rotated_from = stored_token(tracking_env, "boot")
    rotated = cluster_cli(
        tracking_env, "rotate-token", "boot", "--kubeconfig", admin, "--token-duration", "1h"
    )
    assert rotated.returncode == 0, rotated.stderr
    assert "is reachable" in rotated.stdout and stored_token(tracking_env, "boot") != rotated_from

    too_short = cluster_cli(
        tracking_env, "rotate-token", "boot", "--kubeconfig", admin, "--token-duration", "5m"
    )
    assert too_short.returncode != 0 and "at least 10 minutes" in too_short.stderr
    unknown = cluster_cli(tracking_env, "rotate-token", "nope", "--kubeconfig", admin)
    assert unknown.returncode != 0 and "bootstrap it first" in unknown.stderr


def _in(attributes: tuple[str, str, str, str, str], namespace: str) -> tuple[str, str, str, str, str]:
    return (namespace, *attributes[1:]) if attributes[0] == TASKS else attributes


def _b64(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
