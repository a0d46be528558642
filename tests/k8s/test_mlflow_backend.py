"""`mlflow run -b concurrent` with `{"cluster": ...}`: the project's partitions run as pods on the testbed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.integration.conftest import TOOLBOX, make_files
from tests.k8s.conftest import Testbed
from tests.k8s.kubelet import Kubelet
from tests.k8s.test_kubernetes_runs import jobs, register

MLFLOW = str(Path(sys.executable).with_name("mlflow"))


def test_mlflow_run_on_a_registered_cluster_runs_the_partitions_as_pods(
    testbed: Testbed,
    kubelet: Kubelet,
    tracking_env: Path,
    tmp_path: Path,
) -> None:
    make_files(tmp_path / "data", {f"f{i}.txt": f"word{i}\n" for i in range(4)})
    register(tracking_env, "testbed-a", testbed)  # with pod defaults that put pods on the kubelet's node
    config = {
        "cluster": "testbed-a",
        "inputs": {"text": "data"},
        "partitions": 2,
        "resources": {"cpu": "100m"},
    }
    (tmp_path / "cfg.json").write_text(json.dumps(config))

    done = subprocess.run(
        [MLFLOW, "run", "-b", "concurrent", "--backend-config", "cfg.json", str(TOOLBOX), "-e", "transform"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr
    found = re.search(r"DAG run (\w+) \(MLflow run ([0-9a-f]{32})", done.stderr)
    assert found, done.stderr
    run_id, parent_id = found.groups()
    client = MlflowClient()
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlflow.project.backend"] == "concurrent"
    (job,) = jobs(testbed, run_id)  # one Indexed Job for the project node
    assert job.spec.completions == 2 and job.status.completed_indexes == "0,1"
    env = {e.name: e.value for e in job.spec.template.spec.containers[0].env}
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "1"  # its 100m, not the node's cores
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'")
    assert {c.info.status for c in children} == {"FINISHED"} and len(children) == 2
    assert all(c.data.tags["concurrent.pod"].startswith(job.metadata.name) for c in children)  # ran in pods
    assert len(kubelet.started) == 2
