"""The testbed is a real control plane: the cluster check sees it, Jobs run through its controllers, and
pods on the harness's node really execute, retry per index and serve their logs through the API server."""

from __future__ import annotations

import time
from pathlib import Path

from kubernetes import client, config

from concurrent_mlflow import kube
from tests.k8s.conftest import NAMESPACE, Testbed, python_on_path
from tests.k8s.kubelet import SELECTOR, TOLERATION, Kubelet


def test_the_cluster_check_reaches_the_testbed_and_reads_rbac(testbed: Testbed) -> None:
    admin = kube.check(testbed.kubeconfig_document("admin"), NAMESPACE)
    assert admin.reachable, admin.message
    assert admin.server_version == "v1.36.3"
    assert "may create Jobs there" in admin.message

    tenant = kube.check(testbed.kubeconfig_document("tenant"), NAMESPACE)  # a user with no role yet
    assert "may NOT create Jobs there" in tenant.message
    missing = kube.check(testbed.kubeconfig_document("admin"), "no-such-namespace")
    assert not missing.reachable and "does not exist" in missing.message


def _wait_for_job(batch: client.BatchV1Api, name: str, timeout: float = 90) -> client.V1Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = batch.read_namespaced_job(name, NAMESPACE)
        if any(c.type in ("Complete", "Failed") and c.status == "True" for c in job.status.conditions or []):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {name} did not finish in {timeout}s: {job.status}")


def test_harness_pods_run_for_real_and_retry_per_index(testbed: Testbed, tmp_path: Path) -> None:
    api_client = config.new_client_from_config(str(testbed.admin_kubeconfig))
    batch, core = client.BatchV1Api(api_client), client.CoreV1Api(api_client)
    script = 'echo "index $JOB_COMPLETION_INDEX of $POD"; exit $(( JOB_COMPLETION_INDEX == 2 ? 3 : 0 ))'
    container = {
        "name": "task",
        "image": "unused",
        "command": ["sh", "-c", script],
        "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    }
    spec = {
        "restartPolicy": "Never",
        "nodeSelector": SELECTOR,
        "tolerations": [TOLERATION],
        "containers": [container],
    }
    job = {
        "metadata": {"name": "harness-smoke"},
        "spec": {
            "completions": 3,
            "parallelism": 3,
            "completionMode": "Indexed",
            "backoffLimitPerIndex": 1,
            "template": {"spec": spec},
        },
    }
    with Kubelet(testbed.admin_kubeconfig, tmp_path, overrides={"PATH": python_on_path()}):
        batch.create_namespaced_job(NAMESPACE, job)
        finished = _wait_for_job(batch, "harness-smoke")
        pods = core.list_namespaced_pod(NAMESPACE, label_selector="job-name=harness-smoke").items
        failed = next(p for p in pods if p.status.container_statuses[0].state.terminated.exit_code == 3)
        log = core.read_namespaced_pod_log(failed.metadata.name, NAMESPACE)  # through the API server's proxy
    assert finished.status.completed_indexes == "0,1"
    assert finished.status.failed_indexes == "2"
    by_index: dict[str, list[client.V1Pod]] = {}
    for pod in pods:
        by_index.setdefault(pod.metadata.annotations["batch.kubernetes.io/job-completion-index"], []).append(
            pod
        )
    assert {i: len(p) for i, p in by_index.items()} == {"0": 1, "1": 1, "2": 2}  # one retry of index 2
    assert log == f"index 2 of {failed.metadata.name}\n"
    batch.delete_namespaced_job("harness-smoke", NAMESPACE, propagation_policy="Foreground")
