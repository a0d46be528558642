"""Control-plane throughput: one run of N partitions of a no-op task through a real `concurrent server`.

Measures, while the run goes:
  - submit -> all tasks dispatched, and submit -> run succeeded (tasks per second);
  - latency of the run-status call (GET /runs/{id}) sampled throughout: p50 / p99 / max;
  - the server's memory (peak RSS).
Side by side: the bare MLflow cost of the same N tasks (create a child run, log the no-op task's output
index, end it, from as many threads as the server's task stand-ins), so the ratio is our overhead on top of
the MLflow calls any tracked execution needs.

The task is a no-op, and so is its execution: the server runs with an executor that completes each task in a
background thread the way a worker ends (output index logged, child run FINISHED) without starting a
process, so the figures are the control plane's own - store, engine, MLflow bookkeeping, API - and not
this 2-core machine's process start-up (bench/local_fanout.py measures real local workers).

Usage: uv run python bench/control_plane.py [--partitions 10000] [--task-threads 8] [--bare-partitions N]
Uses MLFLOW_TRACKING_URI if set, else starts a throwaway MLflow server (SQLite) for the bench.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

DAG = """
name: bench-noop
nodes:
  - {{id: files, kind: source, uri: data}}
  - {{id: noop, kind: project, project: "{project}", entry_point: main, partitions: {partitions}}}
edges:
  - {{from: files, to: noop, input: data, partitioner: file}}
"""
HERE = Path(__file__).resolve().parent


# -- the server side: a real server whose executor ends each task at once -------------------------------
class InstantExecutor:
    """Ends each task as a no-op worker would (output index logged, child run FINISHED), in a thread.

    `seconds` keeps each task running that long first, and spaces the ends seconds / threads apart, so that
    a run's counts move steadily (bench/ui_scale.py paces a live run with it).
    """

    name = "instant"

    def __init__(self, tracking_uri: str, threads: int, seconds: float = 0.0) -> None:
        from concurrent_mlflow.tracking import Tracking

        self.tracking = Tracking(tracking_uri)
        self.seconds, self.spacing = seconds, seconds / threads
        self.paced, self.last_end = threading.Lock(), 0.0
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="noop-task")
        self.done: dict[str, bool] = {}

    def submit(self, launch: Any) -> tuple[dict[str, Any], str | None]:
        self.pool.submit(self._run, launch.child_run_id)
        return {"child_run": launch.child_run_id}, None

    def find(self, launch: Any) -> tuple[dict[str, Any], str | None] | None:
        return None

    def _run(self, child: str) -> None:
        from concurrent_mlflow.tracking import OUTPUT_INDEX

        if self.seconds:
            time.sleep(self.seconds)
            with self.paced:
                time.sleep(max(0.0, self.last_end + self.spacing - time.monotonic()))
                self.last_end = time.monotonic()
        self.tracking.log_text(child, json.dumps({"files": []}), OUTPUT_INDEX)
        self.tracking.terminate(child, "FINISHED")
        self.done[child] = True

    def observe(self, handle: dict[str, Any]) -> Any:
        from concurrent_mlflow.executors.base import Observation

        if self.done.pop(handle["child_run"], False):
            return Observation("exited", exit_code=0)
        return Observation("running")

    def cancel(self, handle: dict[str, Any]) -> None:
        pass

    def read_log(self, handle: dict[str, Any]) -> bytes:
        return b"no-op\n"

    def close(self) -> None:
        self.pool.shutdown(wait=False)


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from concurrent_mlflow.server.app import build
    from concurrent_mlflow.server.context import ServerSettings
    from concurrent_mlflow.settings import Paths

    settings = ServerSettings(port=args.port, work_dir=Path(args.work_dir), max_parallel=args.partitions)
    executor = InstantExecutor(args.tracking, args.task_threads, args.task_seconds)
    app, _ = build(settings, Paths(Path(args.home)), args.store, args.tracking, executor=executor)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


# -- the client side --------------------------------------------------------------------------------------
def rss_kib(pid: int, field: str = "VmHWM") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def start_server(
    root: Path, tracking: str, args: argparse.Namespace, task_seconds: float = 0.0
) -> tuple[subprocess.Popen[bytes], str]:
    """`--serve` in a process of its own; `task_seconds` paces its executor (see InstantExecutor)."""
    from concurrent_mlflow.local_mlflow import _free_port

    port = _free_port()
    argv = [sys.executable, __file__, "--serve", "--port", str(port), "--home", str(root / "home")]
    argv += ["--store", str(root / "store.db"), "--tracking", tracking, "--work-dir", str(root)]
    argv += ["--partitions", str(args.partitions), "--task-threads", str(args.task_threads)]
    argv += ["--task-seconds", str(task_seconds)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=(root / "server.log").open("wb"))
    url = f"http://127.0.0.1:{port}/api/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit(f"the server did not start; see {root / 'server.log'}")


def watch(api: httpx.Client, run_id: str, partitions: int, pid: int, started: float) -> dict[str, Any]:
    latencies: list[float] = []
    dispatched_at = None
    while True:
        before = time.perf_counter()
        detail = api.get(f"/runs/{run_id}").raise_for_status().json()
        latencies.append(time.perf_counter() - before)
        stage = next(s for s in detail["stages"] if s["node"] == "noop")
        if dispatched_at is None and stage["partitions"] == partitions and not stage["counts"].get("pending"):
            dispatched_at = time.perf_counter() - started
        if detail["state"] in ("succeeded", "failed", "cancelled"):
            return {
                "state": detail["state"],
                "dispatched_s": dispatched_at,
                "finished_s": time.perf_counter() - started,
                "latencies": latencies,
                "peak_rss_mib": rss_kib(pid) / 1024,
            }
        time.sleep(0.2)


def bare_mlflow(tracking: str, partitions: int, threads: int) -> float:
    """The MLflow calls N tracked no-op tasks need at least, with no orchestration around them."""
    from mlflow.tracking import MlflowClient

    from concurrent_mlflow.tracking import OUTPUT_INDEX

    client = MlflowClient(tracking)
    experiment = client.create_experiment(f"bench-bare-{time.time_ns()}")
    parent = client.create_run(experiment).info.run_id
    started = time.perf_counter()

    def task(partition: int) -> None:
        tags = {"mlflow.parentRunId": parent, "concurrent.partition": str(partition)}
        child = client.create_run(experiment, tags=tags).info.run_id
        client.log_text(child, json.dumps({"files": []}), OUTPUT_INDEX)
        client.set_terminated(child, "FINISHED")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(task, range(partitions)))
    return time.perf_counter() - started


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--partitions", type=int, default=10_000)
    parser.add_argument("--task-threads", type=int, default=8, help="Stand-in workers ending tasks at once.")
    parser.add_argument(
        "--bare-partitions", type=int, default=None, help="Tasks in the bare-MLflow baseline [default: same]."
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--port", "--home", "--store", "--tracking", "--work-dir"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--task-seconds", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        args.port = int(args.port)
        serve(args)
        return

    from concurrent_mlflow import local_mlflow

    with tempfile.TemporaryDirectory(prefix="bench-cp-") as tmp:
        root = Path(tmp)
        tracking = os.environ.get("MLFLOW_TRACKING_URI") or local_mlflow.ensure_server(root / "mlflow")
        data = root / "data"
        data.mkdir()
        for i in range(args.partitions):
            (data / f"f{i:07d}.txt").write_text(f"{i}\n")
        server, url = start_server(root, tracking, args)
        try:
            with httpx.Client(base_url=url, timeout=120) as api:
                dag = DAG.format(project=HERE / "projects" / "noop", partitions=args.partitions)
                api.post("/dags", json={"yaml": dag}).raise_for_status()
                started = time.perf_counter()
                run = api.post("/runs", json={"dag": "bench-noop"}).raise_for_status().json()
                submit_s = time.perf_counter() - started
                result = watch(api, run["id"], args.partitions, server.pid, started)
        finally:
            server.terminate()
            server.wait(timeout=60)
        args.bare_partitions = args.bare_partitions or args.partitions
        bare_s = bare_mlflow(tracking, args.bare_partitions, args.task_threads)
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            local_mlflow.stop_server(root / "mlflow")
    report(args, submit_s, result, bare_s)


def report(args: argparse.Namespace, submit_s: float, result: dict[str, Any], bare_s: float) -> None:
    latencies = [t * 1000 for t in result["latencies"]]
    n = args.partitions
    print(f"\n{n} no-op partitions, {os.cpu_count()} cores, {args.task_threads} task threads\n")
    print(f"  run state                          {result['state']}")
    print(f"  POST /runs answered in             {submit_s:8.2f} s")
    dispatched, finished = result["dispatched_s"], result["finished_s"]
    print(f"  submit -> all dispatched           {dispatched:8.1f} s  ({n / dispatched:.0f}/s)")
    print(f"  submit -> run succeeded            {finished:8.1f} s  ({n / finished:.0f}/s)")
    bare_rate = args.bare_partitions / bare_s
    print(f"  bare MLflow, {args.bare_partitions} tasks            {bare_s:8.1f} s  ({bare_rate:.0f}/s)")
    print(f"  ratio (bare rate / our rate)       {bare_rate / (n / finished):8.2f} x")
    print(
        f"  GET /runs/{{id}} latency            p50 {percentile(latencies, 50):.0f} ms, "
        f"p99 {percentile(latencies, 99):.0f} ms, max {max(latencies):.0f} ms ({len(latencies)} calls)"
    )
    print(f"  server peak RSS                    {result['peak_rss_mib']:8.0f} MiB")


if __name__ == "__main__":
    main()
