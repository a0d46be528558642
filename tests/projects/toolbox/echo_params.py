"""Sweep target: writes its parameters to params.json and logs a metric from them."""

import argparse
import json

import mlflow

from concurrent_mlflow import task

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float)
parser.add_argument("--beta")
args = parser.parse_args()
(task.output_dir() / "params.json").write_text(json.dumps({"alpha": args.alpha, "beta": args.beta}))
with mlflow.start_run():
    mlflow.log_metric("score", args.alpha * 10)
