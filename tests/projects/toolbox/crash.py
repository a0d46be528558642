"""Fails partition `--on-partition` with a chained Python exception (what a failure table should name)."""

import argparse

from concurrent_mlflow import task

parser = argparse.ArgumentParser()
parser.add_argument("--on-partition", type=float)
args = parser.parse_args()

if int(args.on_partition) == task.partition():
    try:
        int("seventeen")
    except ValueError as exc:
        raise ValueError(f"bad row 17 in partition {task.partition()}") from exc
