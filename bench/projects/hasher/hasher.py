"""The benchmark job: SHA-256 of every file (hashwork.py), written as one digest line per file.

Inside a Concurrent task it reads its partition; run by plain `mlflow run` it takes every
`partitions`-th file of `input_dir` starting at `partition` (what users hand-roll today).
"""

import argparse
import os
from pathlib import Path

from hashwork import digest

parser = argparse.ArgumentParser()
parser.add_argument("--input-dir", default="")
parser.add_argument("--partition", type=float, default=-1)
parser.add_argument("--partitions", type=float, default=1)
parser.add_argument("--repeat", type=float, default=1, help="Times each file's bytes are hashed.")
args = parser.parse_args()

if os.environ.get("CONCURRENT_INPUT_DIR"):
    from concurrent_mlflow import task

    files, out_dir = task.inputs(), task.output_dir()
else:
    every = sorted(p for p in Path(args.input_dir).rglob("*") if p.is_file())
    files = every[int(args.partition) :: int(args.partitions)]
    out_dir = Path(os.environ.get("BENCH_OUT", "/tmp/bench-out"))
    out_dir.mkdir(parents=True, exist_ok=True)

lines = [f"{digest(p, int(args.repeat))}  {p.name}" for p in files]
(out_dir / f"digests-{os.getpid()}.txt").write_text("\n".join(lines) + "\n")
print(f"hashed {len(lines)} files")
