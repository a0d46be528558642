"""Adds rolling-difference features per device file and writes one Parquet file per input."""

import argparse

import mlflow
import pandas as pd

from concurrent_mlflow import task

parser = argparse.ArgumentParser()
parser.add_argument("--window", type=float, default=3)
window = int(parser.parse_args().window)

rows = 0
for source in task.inputs("clean"):
    frame = pd.read_csv(source)
    for column in ("temperature", "vibration"):
        frame[f"{column}_delta"] = frame[column] - frame[column].rolling(window, min_periods=1).mean()
    relative = source.relative_to(task.input_dir() / "clean").with_suffix(".parquet")
    target = task.output_dir() / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(target, index=False)
    rows += len(frame)
mlflow.log_metric("rows", rows)
print(f"preprocess partition {task.partition()}: {rows} rows")
