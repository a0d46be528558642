"""The executor's view of a cluster (executors/clusterwatch.py) against the testbed's real API server.

A Job reaches the watch some time after the create call returns; on a loaded API server that can be after
the engine's next pass. Found missing from the watch, a Job is asked of the API server before its
partitions are declared lost (CI once failed whole stages with "Job ... no longer exists" that way).
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import urllib3
from kubernetes import client, config

from concurrent_mlflow.executors.clusterwatch import ClusterWatch
from tests.k8s.conftest import Testbed


def job(name: str) -> dict[str, Any]:
    container = {"name": "c", "image": "none:0", "command": ["true"]}
    return {
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
    }


def test_a_job_the_watch_has_not_seen_yet_is_confirmed_with_the_api_server_and_a_deleted_one_stays_gone(
    testbed: Testbed,
) -> None:
    admin = config.new_client_from_config(str(testbed.admin_kubeconfig))
    namespace = f"watch-{os.urandom(3).hex()}"
    client.CoreV1Api(admin).create_namespace({"metadata": {"name": namespace}})
    jobs = client.BatchV1Api(admin)
    jobs.create_namespaced_job(namespace, job("fresh"))
    watch = ClusterWatch(admin, namespace, "testbed")  # not started: it has seen nothing, as a lagging one

    assert watch.job("fresh") is None
    confirmed = watch.confirm_job("fresh")
    assert confirmed is not None and confirmed.name == "fresh" and not confirmed.failed
    assert watch.job("fresh") == confirmed  # remembered: the next pass asks nobody
    assert watch.confirm_job("never-made") is None  # the API server's 404 is the only "lost"

    jobs.create_namespaced_job(namespace, job("doomed"))
    watch._apply(
        "jobs", {"type": "DELETED", "object": {"metadata": {"name": "doomed", "resourceVersion": "1"}}}
    )
    assert watch.confirm_job("doomed") is None  # a read older than the watch's DELETED does not revive it

    nowhere = client.Configuration()
    nowhere.host = "https://127.0.0.1:9"  # nothing listens on the discard port
    unreachable = ClusterWatch(client.ApiClient(nowhere), namespace, "x")
    started = time.monotonic()
    with pytest.raises((urllib3.exceptions.HTTPError, OSError)):  # an error, never a verdict of "lost"
        unreachable.confirm_job("fresh")
    assert time.monotonic() - started < 60
    client.CoreV1Api(admin).delete_namespace(namespace)
