"""Upper-cases every input file into the output dir; records the first word as metadata `key`."""

import argparse
import sys
import time
from pathlib import Path

from concurrent_mlflow import task

parser = argparse.ArgumentParser()
parser.add_argument("--suffix")
parser.add_argument("--fail-on-partition", type=float)
parser.add_argument("--flaky-marker-dir")
parser.add_argument("--sleep", type=float)
parser.add_argument("--sleep-once-dir", default="")
parser.add_argument("--metric", default="yes", help="no: skip the metric, and so MLflow's import (seconds)")
args = parser.parse_args()

print(f"partition {task.partition()} of {task.partitions()}: {len(task.inputs())} file(s)", flush=True)
if args.sleep_once_dir:  # sleep only where this partition's marker is missing: a retry does not sleep
    marker = Path(args.sleep_once_dir) / f"slept-{task.partition()}"
    if not marker.exists():
        marker.write_text("sleeping")
        time.sleep(args.sleep)
else:
    time.sleep(args.sleep)
if int(args.fail_on_partition) == task.partition():
    print("failing on purpose", file=sys.stderr)
    sys.exit(3)
if args.flaky_marker_dir:
    marker = Path(args.flaky_marker_dir) / f"partition-{task.partition()}"
    if not marker.exists():
        marker.write_text("failed once")
        print("flaky failure, first attempt", file=sys.stderr)
        sys.exit(4)

for item in task.input_items():
    text = item.path.read_text(encoding="utf-8")
    relative = item.path.relative_to(task.input_dir())
    target = task.output_dir() / (str(relative) + args.suffix)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text.upper(), encoding="utf-8")
    task.log_output(target, key=(text.split() or ["none"])[0], source=str(relative))
if args.metric == "yes":
    import mlflow

    mlflow.log_metric("files", len(task.inputs()))
