"""MLflow REST calls per local task, by endpoint and by caller (engine or worker), from a real server's log.

Uses a real `mlflow server` (SQLite; artifacts proxied through the server as with a remote tracking server,
so artifact reads and writes count too, or written directly) whose uvicorn access log records every
request; runs
`concurrent run` of a DAG (a local source of small files -> one no-op project node) twice, with a few
partitions and with more. Per task = (calls of the large run - calls of the small one) / the
difference in partitions: the marginal cost of one more task, without the run's own fixed calls (parent
run, plan), which are reported apart.

Caller: while `concurrent run` goes, a thread samples every few milliseconds which TCP connections to the
server the engine process holds (/proc/<pid>/fd and /proc/net/tcp); a request from one of those client
ports is the engine's, any other is a worker's (a worker is a forked or spawned process of its own).
Connections stay open for uvicorn's keep-alive (5 s) after each request, so sampling sees every one.

A section of `make bench` (bench/harness.py); Linux only (it reads /proc). Figures:
`p3_mlflow_calls_per_task` (artifacts proxied) and `p3_mlflow_calls_per_task_direct`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.harness import BenchContext, Section, start_mlflow, stop, table, today

HERE = Path(__file__).resolve().parent
DAG = """
name: bench-calls
nodes:
  - {{id: files, kind: source, uri: "{data}"}}
  - {{id: noop, kind: project, project: "{project}", entry_point: main, partitions: {partitions}}}
edges:
  - {{from: files, to: noop, input: data, partitioner: file}}
"""
REQUEST = re.compile(r' (\d+\.\d+\.\d+\.\d+):(\d+) - "([A-Z]+) (\S+) HTTP/[\d.]+" (\d+)')
IDS = re.compile(r"/[0-9a-f]{32}(?=/|$)|/\d+(?=/)")  # run ids, experiment ids inside artifact paths


class EnginePorts(threading.Thread):
    """The client ports of every connection to the server that process `pid` held while it ran."""

    def __init__(self, pid: int, server_port: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.server_port = pid, server_port
        self.ports: set[int] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.ports |= self._sample()
            time.sleep(0.005)

    def _sample(self) -> set[int]:
        inodes = set()
        try:
            for fd in Path(f"/proc/{self.pid}/fd").iterdir():
                target = str(fd.readlink())
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            return set()
        ports = set()
        for tcp in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(tcp).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if inode in inodes and int(remote.rsplit(":", 1)[1], 16) == self.server_port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
        return ports


def endpoint(method: str, path: str) -> str:
    """`GET runs/get`, `PUT mlflow-artifacts/artifacts` ...: the REST method without ids or query."""
    path = path.split("?", 1)[0]
    for prefix in ("/api/2.0/mlflow/", "/api/2.0/", "/ajax-api/2.0/mlflow/"):
        if path.startswith(prefix):
            path = path[len(prefix) :]
            break
    if path.startswith("mlflow-artifacts/artifacts"):
        path = "mlflow-artifacts/artifacts"  # the rest is the artifact's own path
    return f"{method} {IDS.sub('/<id>', path)}"


def run_dag(workdir: Path, url: str, log: Path, partitions: int) -> dict[str, Counter[str]]:
    """Run the DAG once; the requests it made, by caller and endpoint."""
    data = workdir / f"data-{partitions}"
    for i in range(partitions):
        (data / f"f{i:04d}.txt").parent.mkdir(parents=True, exist_ok=True)
        (data / f"f{i:04d}.txt").write_text(f"item {i}\n")
    dag = workdir / f"dag-{partitions}.yaml"
    dag.write_text(DAG.format(data=data, project=HERE / "projects" / "noop", partitions=partitions))
    offset = log.stat().st_size
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": url,
        "CONCURRENT_HOME": str(workdir / "home"),
        "CONCURRENT_CACHE": str(workdir / "cache"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "concurrent_mlflow.cli", "run", str(dag), "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    ports = EnginePorts(process.pid, int(url.rsplit(":", 1)[1]))
    ports.start()
    output, _ = process.communicate()
    ports.stop.set()
    ports.join()
    if process.returncode != 0:
        raise RuntimeError(f"concurrent run failed:\n{output.decode()[-3000:]}")
    time.sleep(0.5)  # the last access-log lines
    calls: dict[str, Counter[str]] = {"engine": Counter(), "worker": Counter()}
    with log.open("rb") as handle:
        handle.seek(offset)
        for line in handle.read().decode(errors="replace").splitlines():
            if found := REQUEST.search(line):
                _, port, method, path, _ = found.groups()
                caller = "engine" if int(port) in ports.ports else "worker"
                calls[caller][endpoint(method, path)] += 1
    return calls


def per_task(small: dict[str, Counter[str]], large: dict[str, Counter[str]], extra: int) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for caller in ("engine", "worker"):
        names = sorted(set(small[caller]) | set(large[caller]))
        rows = {n: round((large[caller][n] - small[caller][n]) / extra, 2) for n in names}
        table[caller] = {n: v for n, v in rows.items() if v}
    table["total"] = round(sum(sum(rows.values()) for rows in (table["engine"], table["worker"])), 2)
    return table


def measure(workdir: Path, url: str, log: Path, small: int, large: int, artifacts: str) -> dict[str, Any]:
    run_dag(workdir, url, log, 1)  # warm up: the experiment, the project cache
    before = run_dag(workdir, url, log, small)
    after = run_dag(workdir, url, log, large)
    table = per_task(before, after, large - small)
    fixed = {
        caller: sum(before[caller].values()) - small * sum(table[caller].values())
        for caller in ("engine", "worker")
    }
    return {
        "date": today(),
        "partitions": [small, large],
        "per_task": table,
        "per_run_fixed": {k: round(v, 2) for k, v in fixed.items()},
        "artifacts": artifacts,
    }


def section(ctx: BenchContext) -> Section:
    """Direct artifacts on the bench's shared server; proxied ones (the headline) on a server of its own."""
    small, large = (1, 2) if ctx.smoke else (2, 12)
    work = ctx.dir("calls")
    figures = {
        "p3_mlflow_calls_per_task_direct": measure(
            work / "direct", ctx.tracking_uri, ctx.mlflow_log, small, large, "direct"
        )
    }
    if not ctx.smoke:  # a second MLflow server costs the smoke run 10-20 s; the counting is the same code
        process, url, log = start_mlflow(work / "mlflow-proxied", proxied=True)
        try:
            figures["p3_mlflow_calls_per_task"] = measure(work / "proxied", url, log, small, large, "proxied")
        finally:
            stop(process)
    rows = []
    for key, figure in figures.items():
        for caller in ("engine", "worker"):
            rows += [
                [figure["artifacts"], caller, f"`{name}`", f"{n:g}"]
                for name, n in figure["per_task"][caller].items()
            ]
        rows.append([figure["artifacts"], "**total**", f"`{key}`", f"**{figure['per_task']['total']:g}**"])
    markdown = (
        "## MLflow REST calls per local task (goal 3: at most 6)\n\n"
        f"A no-op DAG of {large} partitions against one of {small}, the difference per partition, counted "
        "from the MLflow server's access log; a call is the engine's if it came from a connection the "
        "`concurrent run` process held. `proxied`: artifacts through the server, as with a remote one; "
        "`direct`: written into the artifact root, as with the local server `concurrent` starts.\n\n"
        + table(["artifacts", "caller", "endpoint (figure)", "calls per task"], rows)
    )
    return Section("calls", figures, markdown)
