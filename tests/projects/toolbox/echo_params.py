"""Sweep target: writes its parameters (and the thread counts its environment asks of numeric libraries) to
params.json and logs a metric from them."""

import argparse
import json
import os

import mlflow

from concurrent_mlflow import task

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float)
parser.add_argument("--beta")
args = parser.parse_args()
threads = {
    name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
}
seen = {"alpha": args.alpha, "beta": args.beta, "threads": threads}
(task.output_dir() / "params.json").write_text(json.dumps(seen))
with mlflow.start_run():
    mlflow.log_metric("score", args.alpha * 10)
