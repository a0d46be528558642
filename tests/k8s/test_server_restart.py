"""A real `concurrent server` process killed with SIGKILL while its stage runs as pods on the testbed: a new
server process on the same store finds the Job again and finishes the run; nothing is created or run twice."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from concurrent_mlflow.store import clusters, open_store
from concurrent_mlflow.store.crypto import load_cipher
from tests.fixtures.control_plane import MakeControlPlane
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

    plane.kill()  # mid-stage: the pods carry on, their Job keeps going without anyone watching it
    plane.start()
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
