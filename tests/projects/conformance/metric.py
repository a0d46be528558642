"""Logs a metric at three steps, into the run MLflow started for it or inside `mlflow.start_run()`."""

import argparse
import contextlib

import mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--value", type=float)
parser.add_argument("--own-run")
args = parser.parse_args()
with mlflow.start_run() if args.own_run == "yes" else contextlib.nullcontext():
    for step in range(3):
        mlflow.log_metric("score", args.value * (step + 1), step=step)
print("logged score")
