"""A real `concurrent server` process killed with SIGKILL while its stage runs as pods on the testbed: a new
server process on the same store finds the Job again and finishes the run; nothing is created or run twice.
Throughout, the pods' logs are read through the server's API (and `concurrent logs --server`): while they
run, followed to their end, and after their Job and pods were deleted (from the child run's copy)."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client, config
from mlflow import MlflowClient

from concurrent_mlflow.store import clusters, open_store
from concurrent_mlflow.store.crypto import load_cipher
from tests.fixtures.control_plane import ControlPlane, MakeControlPlane
from tests.integration.conftest import make_files
from tests.k8s.conftest import NAMESPACE, Testbed
from tests.k8s.kubelet import Kubelet
from tests.k8s.test_kubernetes_runs import HARNESS_POD, fan_dag, jobs, wait_until


def test_a_server_killed_mid_stage_is_replaced_and_the_new_one_finishes_the_run(
    testbed: Testbed, kubelet: Kubelet, make_control_plane: MakeControlPlane, tmp_path: Path
) -> None:
    plane = make_control_plane()
    plane.home.mkdir(parents=True)
    store = open_store(plane.store_url)
    kubeconfig = testbed.kubeconfig_text()
    clusters.register(
        store, load_cipher(plane.home), "testbed-a", kubeconfig, namespace=NAMESPACE, pod=HARNESS_POD
    )
    store.close()
    make_files(plane.work_dir / "data", {f"f{i}.txt": f"w{i}\n" for i in range(3)})
    plane.start()
    with plane.client() as api:
        api.post("/dags", json={"yaml": fan_dag(3, sleep=4)}).raise_for_status()
        run = api.post("/runs", json={"dag": "k8s-fan", "base_dir": str(plane.work_dir)}).raise_for_status()
    run_id = run.json()["id"]
    wait_until("two pods run (parallelism 2)", lambda: len(kubelet.started) >= 2)
    wait_until(
        "a running pod's log, read through the API", lambda: "partition 0 of 3" in log(plane, run_id, 0)
    )

    plane.kill()  # mid-stage: the pods carry on, their Job keeps going without anyone watching it
    plane.start()
    with plane.client() as api, api.stream("GET", task_log(run_id, 2), params={"follow": "true"}) as stream:
        followed = b"".join(stream.iter_bytes()).decode()  # ends on its own when partition 2 has ended
    assert "partition 2 of 3: 1 file(s)" in followed and followed.endswith("ended: succeeded -----\n")
    done = plane.wait_for_run(run_id)

    assert done["state"] == "succeeded", (done, plane.logs())
    assert len(jobs(testbed, run_id)) == 1 and len(kubelet.started) == 3  # no Job and no pod twice
    client = MlflowClient(plane.tracking_uri)
    query = f"tags.`mlflow.parentRunId` = '{done['mlflow_run_id']}'"
    children = client.search_runs([done["experiment_id"]], query)
    upper = sorted(
        r.data.tags["concurrent.partition"] for r in children if r.data.tags["concurrent.node"] == "upper"
    )
    assert upper == ["0", "1", "2"]  # one child run per partition
    assert {r.info.status for r in children} == {"FINISHED"}

    assert "partition 1 of 3: 1 file(s)" in plane.cli("--server", plane.url, "logs", run_id, "upper", "1")
    (job,) = jobs(testbed, run_id)
    delete_job(testbed, job.metadata.name)
    # The pods are gone with their logs; the API now answers from the copy saved in each child run.
    assert "partition 0 of 3: 1 file(s)" in log(plane, run_id, 0)


def task_log(run_id: str, partition: int) -> str:
    return f"/runs/{run_id}/tasks/upper/{partition}/log"


def log(plane: ControlPlane, run_id: str, partition: int) -> str:
    with plane.client() as api:
        return api.get(task_log(run_id, partition)).raise_for_status().text


def delete_job(bed: Testbed, name: str) -> None:
    """Delete a Job and its pods, as its TTL or a `kubectl delete` would, and wait until the pods are gone."""
    api = config.new_client_from_config(str(bed.admin_kubeconfig))
    body = client.V1DeleteOptions(propagation_policy="Foreground")
    client.BatchV1Api(api).delete_namespaced_job(name, NAMESPACE, body=body)
    core = client.CoreV1Api(api)
    selector = f"batch.kubernetes.io/job-name={name}"
    wait_until(
        "the Job's pods are deleted",
        lambda: not core.list_namespaced_pod(NAMESPACE, label_selector=selector).items,
    )
