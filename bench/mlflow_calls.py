"""MLflow REST calls per local task, by endpoint and by caller (engine or worker), from a real server's log.

Starts a real `mlflow server` (SQLite, artifacts proxied through the server as with a remote tracking
server, so artifact reads and writes count too) whose uvicorn access log records every request, then runs
`concurrent run` of a DAG (a local source of small files -> one no-op project node) twice, with `--small`
and with `--partitions` partitions. Per task = (calls of the large run - calls of the small one) / the
difference in partitions: the marginal cost of one more task, without the run's own fixed calls (parent
run, plan), which are reported apart.

Caller: while `concurrent run` goes, a thread samples every few milliseconds which TCP connections to the
server the engine process holds (/proc/<pid>/fd and /proc/net/tcp); a request from one of those client
ports is the engine's, any other is a worker's (a worker is a forked or spawned process of its own).
Connections stay open for uvicorn's keep-alive (5 s) after each request, so sampling sees every one.

Usage: uv run python bench/mlflow_calls.py [--partitions 12] [--small 2] [--artifacts proxied|direct]
Linux only (it reads /proc). Prints the table and merges it into bench/results.json under
`p3_mlflow_calls_per_task` (`..._direct` with --artifacts direct, or the key given with --key).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(root: Path, proxied: bool) -> tuple[subprocess.Popen[bytes], str, Path]:
    from concurrent_mlflow.local_mlflow import server_command, server_env

    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    log = root / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            server_command(root, port, proxy_artifacts=proxied, workers=1),
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=server_env(),
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return process, url, log
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("mlflow server did not become healthy")


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
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--small", type=int, default=2)
    parser.add_argument("--results", type=Path, default=HERE / "results.json")
    parser.add_argument(
        "--artifacts",
        choices=["proxied", "direct"],
        default="proxied",
        help="proxied: through the server, as with a remote one (default); direct: clients write files "
        "into the artifact root, as with the local server `concurrent` starts",
    )
    parser.add_argument("--key", default=None, help="default: p3_mlflow_calls_per_task[_direct]")
    parser.add_argument("--no-save", action="store_true", help="Print only; leave results.json alone.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-calls-") as tmp:
        root = Path(tmp)
        process, url, log = start_server(root / "mlflow", args.artifacts == "proxied")
        try:
            run_dag(root, url, log, 1)  # warm up: the experiment, the project cache
            small = run_dag(root, url, log, args.small)
            large = run_dag(root, url, log, args.partitions)
        finally:
            process.terminate()
            process.wait(timeout=30)
    table = per_task(small, large, args.partitions - args.small)
    fixed = {
        caller: sum(small[caller].values()) - args.small * sum(table[caller].values())
        for caller in ("engine", "worker")
    }
    result = {
        "date": datetime.date.today().isoformat(),
        "partitions": [args.small, args.partitions],
        "per_task": table,
        "per_run_fixed": {k: round(v, 2) for k, v in fixed.items()},
        "artifacts": args.artifacts,
    }
    print(
        f"\nMLflow REST calls per local task ({args.small} vs {args.partitions} partitions, no-op task, "
        f"{args.artifacts} artifacts)\n"
    )
    for caller in ("engine", "worker"):
        for name, count in table[caller].items():
            print(f"  {caller:<7} {name:<45}{count:>6g}")
    print(f"  {'total':<53}{table['total']:>6g}")
    print(f"  per run, not per task: engine {fixed['engine']:g}, worker {fixed['worker']:g}")
    if not args.no_save:
        stored = json.loads(args.results.read_text()) if args.results.exists() else {}
        key = args.key or "p3_mlflow_calls_per_task" + ("" if args.artifacts == "proxied" else "_direct")
        stored[key] = result
        args.results.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
