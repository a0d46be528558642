"""Control-plane throughput: one run of N partitions of a no-op task through a real `concurrent server`.

Measures, while the run goes:
  - submit -> all tasks dispatched, and submit -> run succeeded (tasks per second);
  - latency of the run-status call (GET /runs/{id}), polled every second as the UI does: p50 / p99 / max;
  - the server's memory (peak RSS).
Side by side: the bare MLflow cost of the same N tasks (create a child run, log the no-op task's output
index, end it, from as many threads as the server's task stand-ins), so the ratio is our overhead on top of
the MLflow calls any tracked execution needs.

The task is a no-op, and so is its execution: the server runs with an executor that completes each task in a
background thread the way a worker ends (output index logged, child run FINISHED) without starting a
process, so the figures are the control plane's own - store, engine, MLflow bookkeeping, API - and not
this 2-core machine's process start-up (bench/local_fanout.py measures real local workers).

A section of `make bench` (bench/harness.py), at several sizes for the cost-vs-partitions plot. Figures:
p3_cost_vs_partitions (per size: seconds, tasks/s, server peak RSS, status-call latency) and
p3_vs_bare_mlflow (per size: our rate over the bare calls' rate).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench import plotting
from bench.harness import (
    REPO,
    BenchContext,
    Section,
    Spread,
    interleave,
    ratio_figure,
    ratios,
    seconds_figure,
    table,
)
from concurrent_mlflow.executors.base import ExecutorTraits

DAG = """
name: bench-noop
nodes:
  - {{id: files, kind: source, uri: data}}
  - {{id: noop, kind: project, project: "{project}", entry_point: main, partitions: {partitions}}}
edges:
  - {{from: files, to: noop, input: data, partitioner: file}}
"""
HERE = Path(__file__).resolve().parent
THREADS = 8  # stand-in workers ending tasks at once, and the bare baseline's threads
POLL_SECONDS = 1.0  # GET /runs/{id} as often as the UI's run page polls it (ui/src/monitor/useRun.ts)
SIZES, SMOKE_SIZES = [250, 1_000, 4_000, 10_000], [10]  # partitions; the plot's x axis


# -- the server side: a real server whose executor ends each task at once -------------------------------
class InstantExecutor:
    """Ends each task as a no-op worker would (output index logged, child run FINISHED), in a thread.

    `seconds` keeps each task running that long first, and spaces the ends seconds / threads apart, so that
    a run's counts move steadily (bench/ui_scale.py paces a live run with it).
    """

    name = "instant"
    traits = ExecutorTraits(exit_zero_is_success=True)  # as a local worker's exit

    def __init__(self, tracking_uri: str, threads: int, seconds: float = 0.0) -> None:
        from concurrent_mlflow.tracking import Tracking

        self.tracking = Tracking(tracking_uri)
        self.seconds, self.spacing = seconds, seconds / threads
        self.paced, self.last_end = threading.Lock(), 0.0
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="noop-task")
        self.done: dict[str, bool] = {}
        self.wakes: list[Callable[[], None]] = []

    def prepare(self) -> None:
        pass

    def wake_on_change(self, wake: Callable[[], None]) -> None:
        self.wakes.append(wake)  # a task's end wakes the engine, as a worker's exit does

    def submit(self, launch: Any) -> tuple[dict[str, Any], str | None]:
        from concurrent_mlflow.taskfile import TaskFile

        # As a worker is told where its run keeps artifacts (worker/main.py), so it uploads without a lookup.
        if launch.task and (uri := TaskFile.loads(launch.task).artifact_uri):
            self.tracking.remember_artifact_uri(launch.child_run_id, uri)
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
        self.tracking.finish(child)  # one call, as a worker ends its run (`terminate` reads the run first)
        self.done[child] = True
        for wake in self.wakes:
            wake()

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
    argv = [
        sys.executable,
        "-m",
        "bench.control_plane",
        "--serve",
        "--port",
        str(port),
        "--home",
        str(root / "home"),
    ]
    argv += ["--store", str(root / "store.db"), "--tracking", tracking, "--work-dir", str(root)]
    argv += ["--partitions", str(args.partitions), "--task-threads", str(args.task_threads)]
    argv += ["--task-seconds", str(task_seconds)]
    process = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=(root / "server.log").open("wb")
    )
    url = f"http://127.0.0.1:{port}/api/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit(f"the server did not start; see {root / 'server.log'}")


def watch(
    api: httpx.Client, run_id: str, partitions: int, pid: int, started: float, submitted: float
) -> dict[str, Any]:
    """Poll the run as the UI does until it ends; `started` (perf_counter) and `submitted` (wall clock)
    are both taken just before the run was submitted."""
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
            finished = datetime.fromisoformat(detail["finished_at"]).timestamp()
            return {
                "state": detail["state"],
                "dispatched_s": dispatched_at,
                "finished_s": finished - submitted,  # the server's end time: exact, whatever the polling
                "latencies": latencies,
                "peak_rss_mib": rss_kib(pid) / 1024,
            }
        time.sleep(POLL_SECONDS)


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


def ours(ctx: BenchContext, work: Path, partitions: int) -> dict[str, Any]:
    """One run of `partitions` no-op tasks through a fresh server (so its peak RSS is this run's)."""
    data = work / f"data-{partitions}"
    if not (data / ".complete").exists():
        data.mkdir(parents=True, exist_ok=True)
        for i in range(partitions):
            (data / f"f{i:07d}.txt").write_text(f"{i}\n")
        (data / ".complete").touch()
    root = work / f"server-{partitions}-{time.time_ns()}"
    root.mkdir()
    (root / "data").symlink_to(data)
    server, url = start_server(
        root, ctx.tracking_uri, argparse.Namespace(partitions=partitions, task_threads=THREADS)
    )
    try:
        with httpx.Client(base_url=url, timeout=120) as api:
            dag = DAG.format(project=HERE / "projects" / "noop", partitions=partitions)
            api.post("/dags", json={"yaml": dag}).raise_for_status()
            started, submitted = time.perf_counter(), time.time()
            run = api.post("/runs", json={"dag": "bench-noop"}).raise_for_status().json()
            result = watch(api, run["id"], partitions, server.pid, started, submitted)
    finally:
        server.terminate()
        server.wait(timeout=60)
    if result["state"] != "succeeded":
        raise RuntimeError(
            f"the {partitions}-partition run ended {result['state']}; see {root / 'server.log'}"
        )
    return result


def section(ctx: BenchContext) -> Section:
    wanted = os.environ.get("BENCH_P3_SIZES")  # e.g. "250,1000": a shorter run than the plot's four sizes
    sizes = SMOKE_SIZES if ctx.smoke else [int(n) for n in wanted.split(",")] if wanted else SIZES
    work = ctx.dir("p3")
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in sizes}
    bare: dict[int, list[float]] = {n: [] for n in sizes}

    def run_ours(n: int) -> float:
        runs[n].append(ours(ctx, work, n))
        return float(runs[n][-1]["finished_s"])

    def run_bare(n: int) -> float:
        bare[n].append(bare_mlflow(ctx.tracking_uri, n, THREADS))
        return bare[n][-1]

    contenders: dict[str, Callable[[], float]] = {}
    for n in sizes:
        contenders[f"concurrent server, {n}"] = functools.partial(run_ours, n)
        contenders[f"bare MLflow, {n}"] = functools.partial(run_bare, n)
    interleave(contenders, ctx.rounds)
    cost = {str(n): cost_figure(n, runs[n], bare[n]) for n in sizes}
    figures: dict[str, Any] = {"p3_cost_vs_partitions": cost}
    figures["p3_vs_bare_mlflow"] = {
        str(n): ratio_figure(ratios(bare[n], [r["finished_s"] for r in runs[n]]), partitions=n)
        for n in sizes
        if n in (1_000, 10_000) or n == sizes[-1]
    }
    plots = [plot(ctx.out_dir / "p3_cost_vs_partitions.png", sizes, runs, bare)] if can_plot() else []
    return Section("p3", figures, markdown(ctx, sizes, runs, bare), plots)


def cost_figure(n: int, runs: list[dict[str, Any]], bare: list[float]) -> dict[str, Any]:
    finished = [r["finished_s"] for r in runs]
    latencies = [t * 1000 for r in runs for t in r["latencies"]]
    return {
        "ours": seconds_figure(finished) | {"tasks_per_s": round(n / statistics.median(finished), 2)},
        "bare_mlflow": seconds_figure(bare) | {"tasks_per_s": round(n / statistics.median(bare), 2)},
        "dispatched_median_s": round(statistics.median(r["dispatched_s"] or 0.0 for r in runs), 3),
        "server_peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs), 1),
        "status_call_ms": {
            "p50": round(percentile(latencies, 50), 1),
            "p99": round(percentile(latencies, 99), 1),
        },
    }


def markdown(
    ctx: BenchContext, sizes: list[int], runs: dict[int, list[dict[str, Any]]], bare: dict[int, list[float]]
) -> str:
    rows = []
    for n in sizes:
        finished = [r["finished_s"] for r in runs[n]]
        cost = cost_figure(n, runs[n], bare[n])
        rows.append(
            [
                f"{n:,}",
                Spread.of(finished).text(1),
                f"{cost['ours']['tasks_per_s']:.1f}",
                Spread.of(bare[n]).text(1),
                f"{cost['bare_mlflow']['tasks_per_s']:.1f}",
                Spread.of(ratios(bare[n], finished)).text(2, "x"),
                f"{cost['server_peak_rss_mib']:.0f}",
                f"{cost['status_call_ms']['p50']:.0f} / {cost['status_call_ms']['p99']:.0f}",
            ]
        )
    headers = ["partitions", "ours: submit to succeeded, s", "tasks/s", "bare MLflow, s", "tasks/s"]
    headers += ["our rate vs bare", "server peak RSS, MiB", "GET /runs/{id} p50 / p99 ms"]
    return (
        "## P3: control plane (goal 6: at least 0.8x the bare MLflow rate at 1,000 and 10,000 "
        "partitions)\n\n"
        "One run of N no-op partitions through a real `concurrent server` (a fresh one per run, SQLite "
        f"store) whose executor ends each task the way a no-op worker does, from {THREADS} threads, without "
        "starting a process: the control plane's own cost (store, engine, MLflow bookkeeping, API), with "
        f"the run's status polled every {POLL_SECONDS:g} s as the UI's run page polls it (the end time "
        "is the server's). Side by side, the bare "
        f"MLflow calls the same N tasks need (create the child run, log its output index, end it; {THREADS} "
        f"threads), on the same MLflow server. {ctx.rounds} rounds, sizes and contenders round-robin; "
        "median (min-max). Ratio: our tasks/s over the bare calls' tasks/s, per round.\n\n"
        + table(headers, rows)
        + "\n"
    )


def can_plot() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def plot(
    path: Path, sizes: list[int], runs: dict[int, list[dict[str, Any]]], bare: dict[int, list[float]]
) -> Path:
    ours_s = [statistics.median(r["finished_s"] for r in runs[n]) for n in sizes]
    bare_s = [statistics.median(bare[n]) for n in sizes]
    return plotting.lines(
        path,
        "P3: no-op partitions through `concurrent server` vs the bare MLflow calls",
        "partitions",
        sizes,
        {
            "seconds (median)": {"concurrent server": ours_s, "bare MLflow": bare_s},
            "tasks per second": {
                "concurrent server": [n / s for n, s in zip(sizes, ours_s, strict=True)],
                "bare MLflow": [n / s for n, s in zip(sizes, bare_s, strict=True)],
            },
        },
    )


def main() -> None:
    """`--serve` only: the server process that `start_server` starts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", action="store_true", required=True)
    for name in ("--port", "--home", "--store", "--tracking", "--work-dir"):
        parser.add_argument(name, required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--task-threads", type=int, required=True)
    parser.add_argument("--task-seconds", type=float, default=0.0)
    args = parser.parse_args()
    args.port = int(args.port)
    serve(args)


if __name__ == "__main__":
    main()
