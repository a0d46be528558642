"""DAG runs whose partitions are pods on a real Kubernetes control plane (the testbed), executed for real by
the stand-in kubelet, tracked in a real MLflow server: Jobs, retries and completions go through the real
Job controller and scheduler."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from mlflow import MlflowClient

from concurrent_mlflow.dag import parse_dag
from concurrent_mlflow.engine import reads
from concurrent_mlflow.executors.kubernetes import KubernetesExecutor
from concurrent_mlflow.runner import open_engine
from concurrent_mlflow.settings import Paths
from concurrent_mlflow.store import Store, clusters, open_store
from concurrent_mlflow.store import transitions as tx
from concurrent_mlflow.store.crypto import load_cipher
from concurrent_mlflow.store.queries import run_view
from tests.fixtures.git_server import build_repo, serve_git_http
from tests.integration.conftest import TOOLBOX, RunDag, fan_in_dag, make_files
from tests.k8s.conftest import NAMESPACE, Testbed
from tests.k8s.kubelet import SELECTOR, TOLERATION, Kubelet

HARNESS_POD = {"node_selector": SELECTOR, "tolerations": [TOLERATION]}


def register(home: Path, name: str, bed: Testbed) -> None:
    """Register a testbed as a cluster whose pods land on the stand-in kubelet's node."""
    paths = Paths(home)
    store = open_store(paths.store_url)
    clusters.register(
        store, load_cipher(paths.home), name, bed.kubeconfig_text(), namespace=NAMESPACE, pod=HARNESS_POD
    )


def jobs(bed: Testbed, run_id: str) -> list[client.V1Job]:
    batch = client.BatchV1Api(config.new_client_from_config(str(bed.admin_kubeconfig)))
    selector = f"concurrent-mlflow.io/run-id={run_id}"
    return list(batch.list_namespaced_job(NAMESPACE, label_selector=selector).items)


def task_attempts(store: Store, run_id: str, node_id: str) -> list[int]:
    (stage,) = [s for s in reads.stages(store, run_id) if s.node_id == node_id]
    return [t.attempts for t in reads.stage_tasks(store, stage.id)]


def fan_dag(partitions: int, **options: object) -> str:
    """The integration suite's fan-out/fan-in DAG with `upper` on the testbed, two pods at a time."""
    return fan_in_dag("k8s-fan", partitions, **options).replace(  # type: ignore[arg-type]
        f"partitions: {partitions}", f"partitions: {partitions}\n    cluster: testbed-a\n    parallelism: 2"
    )


def test_fan_out_on_kubernetes_then_fan_in_on_this_machine(
    testbed: Testbed,
    kubelet: Kubelet,
    tracking_env: Path,
    run_dag: RunDag,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = [f"d{i % 2}/file-{i:02d}.txt" for i in range(6)]
    make_files(tmp_path / "data", {name: f"word{i % 2} body {i}\n" for i, name in enumerate(names)})
    register(tracking_env, "testbed-a", testbed)
    monkeypatch.setattr(KubernetesExecutor, "table_chunk", 2)  # the Job's table in two files, not one

    done = run_dag(fan_dag(3))

    assert done.state == "succeeded", done.why
    (job,) = jobs(testbed, done.run_id)  # one Indexed Job for the stage
    assert job.spec.completion_mode == "Indexed" and job.spec.completions == 3 and job.spec.parallelism == 2
    assert job.metadata.labels["concurrent-mlflow.io/node"] == "upper"
    assert job.status.completed_indexes == "0-2"
    upper = done.children("upper")
    assert [r.data.tags["concurrent.partition"] for r in upper] == ["0", "1", "2"]
    assert {r.info.status for r in upper} == {"FINISHED"}
    # Each pod found its own row, also in the table's second file: pod index i ran partition i.
    assert [r.data.tags["concurrent.pod"].split("-")[-2] for r in upper] == ["0", "1", "2"]
    assert all(r.data.tags["concurrent.pod"].startswith(job.metadata.name) for r in upper)  # ran in a pod
    table = done.client.list_artifacts(done.view.mlflow_run_id, f"plan/upper/jobs/{job.metadata.name}")
    assert [Path(f.path).name for f in table] == ["00000.json", "00001.json"]
    env = {e.name: e.value for e in job.spec.template.spec.containers[0].env}
    assert env["CONCURRENT_TABLE_CHUNK"] == "2"
    log = done.artifact_text(upper[1].info.run_id, "logs/task.log", tmp_path / "dl0")
    assert "===== pod " in log and "succeeded" in log and "partition 1 of 3: 2 file(s)" in log
    assert len(kubelet.started) == 3

    (total,) = done.children("total")  # the fan-in ran on this machine, from the pods' outputs
    summary = json.loads(done.artifact_text(total.info.run_id, "outputs/summary.json", tmp_path / "dl1"))
    received = sorted(path.split("/", 1)[1] for path in summary["inputs"]["upper"])
    assert received == sorted(f"text/{name}.out" for name in names)


class Background:
    """A DAG run driven by `run_dag` in a thread, so a test can act on the cluster meanwhile."""

    def __init__(self, run_dag: RunDag, yaml_text: str) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(run_dag, yaml_text), daemon=True)
        self.thread.start()

    def _run(self, run_dag: RunDag, yaml_text: str) -> None:
        try:
            self.result = run_dag(yaml_text)
        except BaseException as exc:  # re-raised by finished()
            self.error = exc

    def finished(self, timeout: float = 300) -> Any:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the run did not end in {timeout}s"
        if self.error:
            raise self.error
        return self.result


def wait_until(what: str, condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s")


def test_a_failing_partition_retries_per_index_and_keeps_every_pods_log(
    testbed: Testbed, kubelet: Kubelet, tracking_env: Path, run_dag: RunDag, tmp_path: Path
) -> None:
    make_files(tmp_path / "data", {f"f{i}.txt": f"w{i}\n" for i in range(3)})
    register(tracking_env, "testbed-a", testbed)

    done = run_dag(fan_dag(3, retries=1, fail_on_partition=1))

    assert done.state == "failed"
    (job,) = jobs(testbed, done.run_id)
    assert job.spec.backoff_limit_per_index == 1
    assert (job.status.completed_indexes, job.status.failed_indexes) == ("0,2", "1")
    assert sum(name.startswith(f"{job.metadata.name}-1-") for name in kubelet.started) == 2  # two tries
    upper = done.children("upper")
    assert [(r.data.tags["concurrent.partition"], r.info.status) for r in upper] == [
        ("0", "FINISHED"),
        ("1", "FAILED"),
        ("2", "FINISHED"),
    ]
    assert upper[1].data.tags["concurrent.pod_try"] == "2"
    log = done.artifact_text(upper[1].info.run_id, "logs/task.log", tmp_path / "dl")
    assert log.count("===== pod ") == 2 and log.count("failing on purpose") == 2
    assert "(try 1) =====" in log and "(try 2) =====" in log and log.count("ended: exit code 3 -----") == 2
    stage = done.stage("upper")
    assert "partition 1: exit code 3 (after 2 pod(s))" in stage.error
    assert done.stage("total").state == "skipped"
    assert task_attempts(done.store, done.run_id, "upper") == [1, 1, 1]  # Kubernetes retried, not the engine


def test_an_evicted_pod_is_replaced_without_using_a_retry(
    testbed: Testbed, kubelet: Kubelet, tracking_env: Path, run_dag: RunDag, tmp_path: Path
) -> None:
    make_files(tmp_path / "data", {"only.txt": "w\n"})
    register(tracking_env, "testbed-a", testbed)
    run = Background(run_dag, fan_dag(1, retries=0, sleep=4))
    wait_until("the pod started", lambda: len(kubelet.started) == 1)
    time.sleep(1)
    kubelet.evict(kubelet.started[0], NAMESPACE)

    done = run.finished()

    assert done.state == "succeeded", done.why  # retries: 0, yet the eviction did not fail the partition
    assert len(kubelet.started) == 2
    (upper,) = done.children("upper")
    log = done.artifact_text(upper.info.run_id, "logs/task.log", tmp_path / "dl")
    assert "Evicted: The node was low on resource: memory." in log and log.count("===== pod ") == 2


def test_cancel_deletes_the_job_and_its_pods(
    testbed: Testbed, kubelet: Kubelet, tracking_env: Path, run_dag: RunDag, tmp_path: Path
) -> None:
    make_files(tmp_path / "data", {f"f{i}.txt": "w\n" for i in range(2)})
    register(tracking_env, "testbed-a", testbed)
    run = Background(run_dag, fan_dag(2, sleep=120))
    wait_until("both pods started", lambda: len(kubelet.started) == 2)
    store = open_store(Paths(tracking_env).store_url)
    (run_id,) = reads.open_run_ids(store)
    tx.request_cancel(store, run_id, "cancelled by the test")

    done = run.finished(timeout=60)

    assert done.state == "cancelled", done.why  # (once seen `failed` under a loaded suite: say why)
    assert {r.info.status for r in done.children("upper")} == {"KILLED"}
    wait_until("the Job is gone", lambda: not jobs(testbed, done.run_id), timeout=60)
    wait_until("no pod process is left", lambda: not kubelet.processes, timeout=30)


def test_an_unreachable_cluster_fails_its_node_with_a_clear_error_and_spares_the_others(
    testbed: Testbed, kubelet: Kubelet, tracking_env: Path, run_dag: RunDag, tmp_path: Path
) -> None:
    make_files(tmp_path / "data", {"f.txt": "w\n", "g.txt": "v\n"})
    register(tracking_env, "testbed-a", testbed)
    document = testbed.kubeconfig_document()
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    document["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{closed}"  # type: ignore[index]
    paths = Paths(tracking_env)
    clusters.register(open_store(paths.store_url), load_cipher(paths.home), "gone", yaml.safe_dump(document))
    done = run_dag(f"""
name: k8s-unreachable
nodes:
  - {{id: raw, kind: source, uri: data}}
  - {{id: far, kind: project, project: "{TOOLBOX}", entry_point: count, cluster: gone}}
  - {{id: near, kind: project, project: "{TOOLBOX}", entry_point: count}}
  - id: split
    kind: project
    project: "{TOOLBOX}"
    entry_point: count
    partitions: 2
    clusters: {{gone: 1, testbed-a: 1}}
edges:
  - {{from: raw, to: far, input: rows}}
  - {{from: raw, to: near, input: rows}}
  - {{from: raw, to: split, input: rows}}
""")
    assert done.state == "failed"
    far, near = done.stage("far"), done.stage("near")
    assert near.state == "succeeded"
    assert far.state == "failed"
    assert f"cluster 'gone' (https://127.0.0.1:{closed}): could not create Job" in far.error
    assert "cannot connect" in far.error
    token = str(document["users"][0]["user"]["token"])  # type: ignore[index]
    assert token not in far.error
    # A stage spread over both clusters loses only the unreachable one's share: partition 0 (on `gone`).
    split = done.stage("split")
    assert split.error.startswith("1 of 2 partition(s) failed; partition 0: cluster 'gone'"), split.error
    assert [(r.data.tags["concurrent.partition"], r.info.status) for r in done.children("split")] == [
        ("0", "FAILED"),
        ("1", "FINISHED"),
    ]
    (job,) = jobs(testbed, done.run_id)
    assert job.spec.completions == 1 and job.status.completed_indexes == "0"


def test_two_clusters_share_one_stage_by_weight(
    testbed: Testbed,
    second_testbed: Testbed,
    kubelet: Kubelet,
    tracking_env: Path,
    run_dag: RunDag,
    tmp_path: Path,
) -> None:
    make_files(tmp_path / "data", {f"f{i}.txt": f"w{i}\n" for i in range(4)})
    register(tracking_env, "testbed-a", testbed)
    register(tracking_env, "testbed-b", second_testbed)
    overrides = dict(kubelet.overrides)
    with Kubelet(second_testbed.admin_kubeconfig, tmp_path / "kubelet-b", overrides=overrides) as other:
        dag = fan_dag(4).replace("cluster: testbed-a", "clusters: {testbed-a: 3, testbed-b: 1}")
        done = run_dag(dag)
    assert done.state == "succeeded", done.why
    (job_a,), (job_b,) = jobs(testbed, done.run_id), jobs(second_testbed, done.run_id)
    assert (job_a.spec.completions, job_b.spec.completions) == (3, 1)
    assert (len(kubelet.started), len(other.started)) == (3, 1)
    assert {r.info.status for r in done.children("upper")} == {"FINISHED"}


def test_a_run_survives_an_api_server_restart(
    testbed: Testbed, kubelet: Kubelet, tracking_env: Path, run_dag: RunDag, tmp_path: Path
) -> None:
    make_files(tmp_path / "data", {f"f{i}.txt": "w\n" for i in range(2)})
    register(tracking_env, "testbed-a", testbed)
    run = Background(run_dag, fan_dag(2, sleep=6))
    wait_until("both pods started", lambda: len(kubelet.started) == 2)
    testbed.restart_apiserver()  # the watches break, back off, relist

    done = run.finished()

    assert done.state == "succeeded", done.why
    assert len(kubelet.started) == 2  # nothing was started twice
    assert {r.info.status for r in done.children("upper")} == {"FINISHED"}


def test_a_new_engine_adopts_the_jobs_of_one_that_stopped(
    testbed: Testbed, kubelet: Kubelet, tracking_env: Path, tmp_path: Path
) -> None:
    make_files(tmp_path / "data", {f"f{i}.txt": "w\n" for i in range(3)})
    register(tracking_env, "testbed-a", testbed)
    dag_file = tmp_path / "dag.yaml"
    dag_file.write_text(fan_dag(3, sleep=3))
    paths = Paths(tracking_env)
    first, store = open_engine(paths, os.environ["MLFLOW_TRACKING_URI"], 2)
    run_id = first.start(parse_dag(dag_file.read_text()), base_dir=tmp_path, overrides={})
    wait_until("the Job exists", lambda: first.tick(run_id) or bool(jobs(testbed, run_id)))
    first.close()  # the control plane goes away; the pods carry on

    second, _ = open_engine(paths, os.environ["MLFLOW_TRACKING_URI"], 2)
    try:
        assert second.run_until_done(run_id) == "succeeded"
    finally:
        second.close()
    assert len(jobs(testbed, run_id)) == 1 and len(kubelet.started) == 3  # adopted, nothing twice
    assert task_attempts(store, run_id, "upper") == [1, 1, 1]


class EngineDied(BaseException):
    """Stands for the engine's process dying at one exact point (not an error it could handle)."""


@pytest.mark.parametrize("dies", ["before creating the Job", "after the Job, before its whole table"])
def test_an_engine_that_dies_while_handing_a_stage_over_is_taken_over_without_duplicates(
    dies: str,
    testbed: Testbed,
    kubelet: Kubelet,
    tracking_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_files(tmp_path / "data", {f"f{i}.txt": "w\n" for i in range(3)})
    register(tracking_env, "testbed-a", testbed)
    monkeypatch.setattr(KubernetesExecutor, "table_chunk", 1)  # one table file per pod index
    armed = True
    if dies == "before creating the Job":
        create = KubernetesExecutor._create

        def dying_create(self: KubernetesExecutor, *args: Any) -> None:
            if armed:
                raise EngineDied
            create(self, *args)

        monkeypatch.setattr(KubernetesExecutor, "_create", dying_create)
    else:
        fill = KubernetesExecutor._fill_chunk

        def dying_fill(
            self: KubernetesExecutor, stage: Any, job: Any, group: Any, start: int, *rest: Any
        ) -> Any:
            if armed and start == 1:  # the Job runs, pod 0 has its row, pods 1 and 2 wait for theirs
                raise EngineDied
            return fill(self, stage, job, group, start, *rest)

        monkeypatch.setattr(KubernetesExecutor, "_fill_chunk", dying_fill)
    paths = Paths(tracking_env)
    first, store = open_engine(paths, os.environ["MLFLOW_TRACKING_URI"], 2)
    run_id = first.start(parse_dag(fan_dag(3)), base_dir=tmp_path, overrides={})
    with pytest.raises(EngineDied):
        while not first.tick(run_id):
            time.sleep(0.2)
    first.close()
    armed = False
    assert len(jobs(testbed, run_id)) == (0 if dies == "before creating the Job" else 1)

    second, _ = open_engine(paths, os.environ["MLFLOW_TRACKING_URI"], 2)
    try:
        assert second.run_until_done(run_id) == "succeeded"
    finally:
        second.close()
    assert len(jobs(testbed, run_id)) == 1 and len(kubelet.started) == 3  # one Job, no pod twice
    assert task_attempts(store, run_id, "upper") == [1, 1, 1]
    view = run_view(store, run_id)
    assert view is not None and view.mlflow_run_id
    query = f"tags.`mlflow.parentRunId` = '{view.mlflow_run_id}' and tags.`concurrent.node` = 'upper'"
    upper = MlflowClient().search_runs([view.experiment_id], query)
    assert sorted(r.data.tags["concurrent.partition"] for r in upper) == ["0", "1", "2"]  # one child each
    assert {r.info.status for r in upper} == {"FINISHED"}


def test_a_docker_env_project_runs_in_its_own_image(
    testbed: Testbed, kubelet: Kubelet, tracking_env: Path, run_dag: RunDag, tmp_path: Path
) -> None:
    register(tracking_env, "testbed-a", testbed)
    project = Path(__file__).resolve().parents[1] / "projects" / "conformance_docker"

    done = run_dag(
        f"name: in-image\nnodes:\n  - {{id: answer, kind: project, project: '{project}', partitions: 2, "
        "cluster: testbed-a}\n"
    )

    assert done.state == "succeeded", done.why
    (job,) = jobs(testbed, done.run_id)
    (container,) = job.spec.template.spec.containers
    assert container.image == "python:3.11-slim"  # the MLproject's docker_env image, not the worker's
    assert {e.name: e.value for e in container.env}["CONCURRENT_PROJECT_IMAGE"] == "python:3.11-slim"
    children = done.children("answer")
    assert {c.data.tags["mlflow.project.env"] for c in children} == {"docker"}
    for child in children:
        log = done.artifact_text(child.info.run_id, "logs/task.log", tmp_path / child.info.run_id)
        assert "in this pod, the project's image" in log and "\n42\n" in log
        assert "hello from the MLproject" in log  # its docker_env.environment


def test_a_private_git_project_runs_in_pods_with_its_token_only_in_a_secret(
    testbed: Testbed, kubelet: Kubelet, tracking_env: Path, run_dag: RunDag, tmp_path: Path
) -> None:
    """The pods clone with the token, which they get from a Secret their Job owns: the Job, its pods'
    specs and the MLflow runs they read do not hold it."""
    register(tracking_env, "testbed-a", testbed)
    token = "tok-" + os.urandom(8).hex()
    with serve_git_http(build_repo(tmp_path / "git"), credentials=f"ci-bot:{token}") as server:
        private = server.url.replace("http://", f"http://ci-bot:{token}@")
        done = run_dag(f"""
name: private-git-pods
nodes:
  - {{id: hello, kind: project, project: "{private}#projects/hello", version: v1, parameters: {{alpha: 1}},
     partitions: 2, cluster: testbed-a, env_manager: local}}
""")
    assert done.state == "succeeded", done.why
    assert len(kubelet.started) == 2
    (job,) = jobs(testbed, done.run_id)
    assert token not in json.dumps(job.to_dict(), default=str)
    core = client.CoreV1Api(config.new_client_from_config(str(testbed.admin_kubeconfig)))
    secret = core.read_namespaced_secret(job.metadata.name, NAMESPACE)
    assert [(o.kind, o.uid) for o in secret.metadata.owner_references] == [("Job", job.metadata.uid)]
    assert any(token in base64.b64decode(v).decode() for v in secret.data.values())
    for run in (done.parent, *done.children("hello")):
        assert token not in json.dumps([run.data.tags, run.data.params])
    assert token not in done.artifact_text(done.parent.info.run_id, "plan/hello/spec.json", tmp_path / "spec")
