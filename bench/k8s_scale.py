"""Kubernetes scale: one stage of N partitions on the testbed's real control plane, kwok completing the pods.

Measures, for one run of N partitions handed to one cluster as one Indexed Job:
  - submit -> Job complete (the Kubernetes side) and submit -> run succeeded (partitions per second);
  - the API requests the whole run cost the API server (its own `apiserver_request_total`, by verb and
    resource: our engine's, the Job controller's, the scheduler's and kwok's), and the requests our executor
    made itself (lists, watches, Job creates, pod log reads);
  - objects created (Jobs, pods) and peak memory of the API server, etcd and the engine's process.

kwok's pods run nothing, so no worker logs to MLflow: the bench's executor does a worker's MLflow part for
each partition Kubernetes reports done (output index logged, child run FINISHED, from `--task-threads`
threads) before the engine sees it, as bench/control_plane.py does for local tasks. Everything else - child
runs, the Job table, the Job, the watches, pod logs, the engine's bookkeeping - is the product's own path.

Usage: uv run python bench/k8s_scale.py [--partitions 10000] [--task-threads 8]
Starts its own testbed (scripts/k8s-testbed, name `bench`) and a throwaway MLflow server.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TESTBED = ROOT / "scripts" / "k8s-testbed"
DAG = """
name: bench-k8s
nodes:
  - {{id: files, kind: source, uri: data}}
  - id: noop
    kind: project
    project: "{project}"
    partitions: {partitions}
    parallelism: {partitions}
    cluster: bench
edges:
  - {{from: files, to: noop, input: data, partitioner: file}}
"""


def kwok_executor(store: Any, cipher: Any, tracking: Any, threads: int) -> Any:
    """The product's KubernetesExecutor, plus a worker's MLflow part for each partition kwok completes."""
    from concurrent_mlflow.executors.base import Observation
    from concurrent_mlflow.executors.kubernetes import KubernetesExecutor
    from concurrent_mlflow.tracking import OUTPUT_INDEX

    class KwokExecutor(KubernetesExecutor):
        def __init__(self) -> None:
            super().__init__(store, cipher, tracking)
            self.pool = ThreadPoolExecutor(threads, thread_name_prefix="stand-in-worker")
            self.children: dict[tuple[str, int], str] = {}
            self.ended: dict[tuple[str, int], bool] = {}
            self.calls = Counter[str]()

        def start_stage(self, stage: Any, child_runs: Any) -> Any:
            made: dict[int, str] = {}

            def recorded(tasks: Any) -> Any:
                made.update(child_runs(tasks))
                return made

            submitted = super().start_stage(stage, recorded)
            for task in stage.tasks:
                handle = submitted.handles[task.partition]
                self.children[(handle["job"], handle["index"])] = task.child_run_id or made[task.partition]
            self.calls["create job"] += len({h["job"] for h in submitted.handles.values()})
            return submitted

        def observe(self, handle: dict[str, Any]) -> Observation:
            seen = super().observe(handle)
            key = (handle["job"], int(handle["index"]))
            if seen.phase != "exited" or seen.exit_code != 0:
                return seen
            if key not in self.ended:
                self.ended[key] = False
                self.pool.submit(self._work, key)
            return seen if self.ended[key] else Observation("running")

        def _work(self, key: tuple[str, int]) -> None:
            child = self.children[key]
            tracking.log_text(child, json.dumps({"files": []}), OUTPUT_INDEX)
            tracking.terminate(child, "FINISHED")
            self.ended[key] = True

        def cluster_watch(self, name: str) -> Any:
            return self._cluster(name).watch

        def read_log(self, handle: dict[str, Any]) -> bytes:
            self.calls["read pod log"] += 1
            return super().read_log(handle)

    return KwokExecutor()


def testbed(*args: str) -> str:
    return subprocess.run([str(TESTBED), *args], check=True, capture_output=True, text=True).stdout


def apiserver_requests(state: Path) -> Counter[str]:
    """`apiserver_request_total` summed by verb and resource, read from the API server's /metrics."""
    config = yaml.safe_load((state / "admin.kubeconfig").read_text())
    server, token = config["clusters"][0]["cluster"]["server"], config["users"][0]["user"]["token"]
    context = ssl.create_default_context(cafile=str(state / "pki" / "ca.crt"))
    request = urllib.request.Request(f"{server}/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, context=context, timeout=30) as response:
        text = response.read().decode()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            resource = "/".join(filter(None, (labels.get("resource"), labels.get("subresource"))))
            counts[f"{labels['verb']} {resource}".strip()] += int(float(line.rsplit(" ", 1)[1]))
    return counts


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def job_done_at(api: Any, namespace: str, run_id: str, started: float, result: dict[str, float]) -> None:
    """Note when the Job appears and when it reports every index complete (the Kubernetes side)."""
    from kubernetes.client import BatchV1Api

    batch = BatchV1Api(api)
    while "job_s" not in result:
        for job in batch.list_namespaced_job(
            namespace, label_selector=f"concurrent-mlflow.io/run-id={run_id}"
        ).items:
            result.setdefault("job_created_s", time.perf_counter() - started)
            if any(c.type == "Complete" and c.status == "True" for c in job.status.conditions or []):
                result["job_s"] = time.perf_counter() - started
        time.sleep(0.5)


def run_bench(args: argparse.Namespace, root: Path, state: Path) -> dict[str, Any]:
    from kubernetes import config as kube_config

    from concurrent_mlflow import local_mlflow
    from concurrent_mlflow.dag import parse_dag
    from concurrent_mlflow.engine import Engine, EngineSettings
    from concurrent_mlflow.executors.local import LocalExecutor
    from concurrent_mlflow.executors.registry import Executors
    from concurrent_mlflow.settings import Paths
    from concurrent_mlflow.store import clusters, open_store
    from concurrent_mlflow.store.crypto import load_cipher
    from concurrent_mlflow.tracking import Tracking

    tracking_uri = local_mlflow.ensure_server(root / "mlflow")
    paths = Paths(root / "home")
    store = open_store(paths.store_url)
    cipher = load_cipher(paths.home)
    clusters.register(
        store, cipher, "bench", (state / "admin.kubeconfig").read_text(), namespace="concurrent"
    )
    tracking = Tracking(tracking_uri)
    kubernetes = kwok_executor(store, lambda: cipher, tracking, args.task_threads)
    local = LocalExecutor(paths.logs, paths.scratch, fork=False)
    settings = EngineSettings(cache_dir=paths.cache, poll_interval=0.5)
    engine = Engine(store, tracking, Executors(local, kubernetes), settings)
    data = root / "data"
    data.mkdir()
    for i in range(args.partitions):
        (data / f"f{i:07d}.txt").write_text(f"{i}\n")
    dag = parse_dag(DAG.format(project=ROOT / "bench" / "projects" / "noop", partitions=args.partitions))
    before = apiserver_requests(state)
    started = time.perf_counter()
    run_id = engine.start(dag, base_dir=root, overrides={})
    result: dict[str, Any] = {}
    api = kube_config.new_client_from_config(str(state / "admin.kubeconfig"))
    threading.Thread(
        target=job_done_at, args=(api, "concurrent", run_id, started, result), daemon=True
    ).start()
    try:
        result["state"] = engine.run_until_done(run_id)
        result["run_s"] = time.perf_counter() - started
        result["ours"] = {**kubernetes.calls, "list+watch": kubernetes.cluster_watch("bench").calls}
    finally:
        engine.close()
        local_mlflow.stop_server(root / "mlflow")
    result["requests"] = apiserver_requests(state) - before
    pids = {c: int((state / "pids" / c).read_text()) for c in ("apiserver", "etcd")}
    result["rss"] = {name: peak_rss_mib(pid) for name, pid in pids.items()} | {
        "engine": peak_rss_mib(os.getpid())
    }
    return result


def report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    n, requests = args.partitions, result["requests"]
    print(f"\n{n} partitions, one Indexed Job on the testbed (kwok nodes), {os.cpu_count()} cores\n")
    print(f"  run state                            {result['state']}")
    if "job_created_s" in result:
        print(f"  submit -> Job created                {result['job_created_s']:8.1f} s")
    if "job_s" in result:
        print(
            f"  submit -> Job complete (Kubernetes)  {result['job_s']:8.1f} s  ({n / result['job_s']:.0f}/s)"
        )
    print(f"  submit -> run succeeded              {result['run_s']:8.1f} s  ({n / result['run_s']:.0f}/s)")
    print(f"  API server requests, all clients     {sum(requests.values()):8d}")
    for key, count in requests.most_common(8):
        print(f"      {key:32} {count:8d}")
    print(
        f"  objects created                      jobs {requests['POST jobs']}, pods {requests['POST pods']}"
    )
    print(f"  our executor's own requests          {json.dumps(result['ours'])}")
    rss = result["rss"]
    print(f"  peak RSS (MiB)                       apiserver {rss['apiserver']:.0f}, etcd {rss['etcd']:.0f}, "
          f"engine process {rss['engine']:.0f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--partitions", type=int, default=10_000)
    parser.add_argument("--task-threads", type=int, default=8, help="stand-in workers' MLflow calls at once")
    parser.add_argument("--port", type=int, default=36443, help="the bench testbed's API server port")
    args = parser.parse_args()
    testbed("up", "--name", "bench", "--port", str(args.port), "--nodes", "4")
    state = Path(json.loads(testbed("env", "--name", "bench", "--json"))["state"])
    try:
        with tempfile.TemporaryDirectory(prefix="bench-k8s-") as tmp:
            result = run_bench(args, Path(tmp), state)
    finally:
        testbed("down", "--name", "bench")
    report(args, result)


if __name__ == "__main__":
    sys.exit(main())
