"""Drops malformed rows from each raw CSV file and tags the cleaned file with its day."""

import csv

import mlflow

from concurrent_mlflow import task

kept = dropped = 0
for source in task.inputs("raw"):
    day = source.parent.name
    target = task.output_dir() / day / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open(newline="") as reader, target.open("w", newline="") as writer:
        rows = csv.DictReader(reader)
        out = csv.DictWriter(writer, fieldnames=rows.fieldnames or [])
        out.writeheader()
        for row in rows:
            if all(row.values()):
                out.writerow(row)
                kept += 1
            else:
                dropped += 1
    task.log_output(target, day=day)
mlflow.log_metrics({"rows_kept": kept, "rows_dropped": dropped})
print(f"ingest partition {task.partition()}: kept {kept} rows, dropped {dropped}")
