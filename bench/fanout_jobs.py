"""P1's job written for the other contenders, each as a user would write it; one process per run.

  multiprocessing     a Pool of cpu_count() processes over the files (the limit of the machine)
  prefect-per-file    a Prefect flow, `task.map` over the files
  prefect-chunks      a Prefect flow, `task.map` over N chunks of the files

Prefect runs as it does by default for a user with no server configured: its flow engine in this process,
its default task runner (threads) and a temporary local API server it starts itself (PREFECT_HOME decides
where its database lives). This script imports neither `concurrent_mlflow` nor `bench`: it runs in the
Prefect contender's own venv (bench/envs.py).

Usage: python bench/fanout_jobs.py MODE DATA_DIR [--repeat 1] [--chunks 20]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "projects" / "hasher"))
from hashwork import digest  # (the project's own work, so every contender does the same)


def files_of(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _digest_one(args: tuple[Path, int]) -> str:
    return digest(*args)


def with_multiprocessing(files: list[Path], repeat: int) -> list[str]:
    with multiprocessing.Pool(os.cpu_count()) as pool:
        return pool.map(_digest_one, [(path, repeat) for path in files], chunksize=64)


def with_prefect(root: Path, repeat: int, chunks: int | None) -> list[str]:
    from prefect import flow, task, unmapped

    @task
    def hash_file(path: str, repeat: int) -> str:
        return digest(Path(path), repeat)

    @task
    def hash_chunk(paths: list[str], repeat: int) -> list[str]:
        return [digest(Path(path), repeat) for path in paths]

    # The flows list the files themselves, as a user's flow would: Prefect's API refuses (422) a flow run
    # whose parameters hold 10,000 paths.
    @flow
    def per_file(root: str, repeat: int) -> list[str]:
        paths = [str(path) for path in files_of(Path(root))]
        return list(hash_file.map(paths, unmapped(repeat)).result())

    @flow
    def over_chunks(root: str, chunks: int, repeat: int) -> list[str]:
        paths = [str(path) for path in files_of(Path(root))]
        groups = [paths[i::chunks] for i in range(chunks)]
        return [d for chunk in hash_chunk.map(groups, unmapped(repeat)).result() for d in chunk]

    result: Any = per_file(str(root), repeat) if chunks is None else over_chunks(str(root), chunks, repeat)
    return list(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["multiprocessing", "prefect-per-file", "prefect-chunks"])
    parser.add_argument("data", type=Path)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--chunks", type=int, default=20)
    args = parser.parse_args()
    files = files_of(args.data)
    if args.mode == "multiprocessing":
        digests = with_multiprocessing(files, args.repeat)
    else:
        digests = with_prefect(args.data, args.repeat, args.chunks if args.mode == "prefect-chunks" else None)
    if len(digests) != len(files):
        raise SystemExit(f"{len(digests)} digests for {len(files)} files")
    print(f"hashed {len(files)} files")


if __name__ == "__main__":
    main()
