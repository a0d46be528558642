"""Fan-in: writes summary.json with what this partition received, per input."""

import json

import mlflow

from concurrent_mlflow import task

summary = {
    "partition": task.partition(),
    "partitions": task.partitions(),
    "inputs": {
        name: sorted(str(p.relative_to(task.input_dir() / name)) for p in task.inputs(name))
        for name in task.input_names()
    },
    "bytes": sum(i.size for i in task.input_items()),
    "keys": sorted({str(i.metadata.get("key")) for i in task.input_items()}),
}
(task.output_dir() / "summary.json").write_text(json.dumps(summary, indent=1))
with mlflow.start_run():
    mlflow.log_metric("files", sum(len(v) for v in summary["inputs"].values()))
