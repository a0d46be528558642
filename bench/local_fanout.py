"""Local fan-out benchmark: the same job three ways, side by side, in one run.

  (a) plain multiprocessing over the files: the physical limit of this machine
  (b) a sequential loop of `mlflow run` per partition: what users do today
  (c) this project: a DAG with one node of N partitions on the local executor

Usage: uv run python bench/local_fanout.py [--files 10000] [--partitions 20] [--size 2048]
Uses MLFLOW_TRACKING_URI if set, else the local MLflow server of `concurrent`.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make_files(root: Path, count: int, size: int) -> None:
    for i in range(count):
        path = root / f"shard-{i % 50:02d}" / f"file-{i:06d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))


def _hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def plain_multiprocessing(root: Path) -> float:
    started = time.perf_counter()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    with multiprocessing.Pool(os.cpu_count()) as pool:
        digests = pool.map(_hash, files, chunksize=64)
    assert len(digests) == len(files)
    return time.perf_counter() - started


def mlflow_run_loop(root: Path, partitions: int, tracking_uri: str) -> float:
    started = time.perf_counter()
    for partition in range(partitions):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "mlflow",
                "run",
                str(HERE / "projects" / "hasher"),
                "--env-manager",
                "local",
                "--experiment-name",
                "bench-mlflow-run-loop",
                "-P",
                f"input_dir={root}",
                "-P",
                f"partition={partition}",
                "-P",
                f"partitions={partitions}",
            ],
            check=True,
            capture_output=True,
            env={
                **os.environ,
                "MLFLOW_TRACKING_URI": tracking_uri,
                "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            },
        )
    return time.perf_counter() - started


def concurrent_dag(root: Path, partitions: int, tracking_uri: str, workdir: Path) -> float:
    dag = workdir / "bench.yaml"
    dag.write_text(
        f"name: bench-fanout\nnodes:\n  - {{id: files, kind: source, uri: '{root}'}}\n"
        f"  - {{id: hash, kind: project, project: '{HERE / 'projects' / 'hasher'}', "
        f"partitions: {partitions}}}\n"
        "edges:\n  - {from: files, to: hash, input: files, partitioner: file}\n"
    )
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "concurrent_mlflow.cli", "run", str(dag), "--no-progress"],
        check=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=20)
    parser.add_argument("--size", type=int, default=2048, help="bytes per file")
    args = parser.parse_args()
    from concurrent_mlflow.local_mlflow import tracking_uri
    from concurrent_mlflow.settings import Paths

    uri = tracking_uri(Paths.from_env().mlflow)
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        root = Path(tmp) / "data"
        make_files(root, args.files, args.size)
        # Warm the project cache and page cache so every contender sees the same machine.
        concurrent_dag(root, 2, uri, Path(tmp))
        rows = [
            ("(a) multiprocessing", plain_multiprocessing(root)),
            (f"(b) mlflow run x{args.partitions}, sequential", mlflow_run_loop(root, args.partitions, uri)),
            (
                f"(c) concurrent, {args.partitions} partitions",
                concurrent_dag(root, args.partitions, uri, Path(tmp)),
            ),
        ]
    base = rows[0][1]
    print(f"\n{args.files} files x {args.size} B, {os.cpu_count()} cores, tracking {uri}\n")
    print(f"{'contender':<40}{'wall s':>10}{'vs (a)':>10}")
    for name, seconds in rows:
        print(f"{name:<40}{seconds:>10.2f}{seconds / base:>9.1f}x")


if __name__ == "__main__":
    main()
