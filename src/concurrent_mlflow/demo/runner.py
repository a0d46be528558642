"""Prepares the demo: copies the bundled projects and DAG, writes sensor data, registers a model."""

from __future__ import annotations

import csv
import random
import shutil
from pathlib import Path

from rich.console import Console

HERE = Path(__file__).resolve().parent
MODEL_NAME = "concurrent-demo-anomaly"
FEATURES = ["temperature", "vibration", "temperature_delta", "vibration_delta"]
DAYS = 6


def prepare_demo(workdir: Path, tracking_uri: str, files: int, partitions: int, console: Console) -> Path:
    """Write everything the demo DAG needs under `workdir` and return the DAG file."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(HERE / "projects", workdir / "projects", dirs_exist_ok=True)
    dag_text = (HERE / "dag.yaml").read_text(encoding="utf-8").replace("PARTITIONS", str(partitions))
    (workdir / "dag.yaml").write_text(dag_text, encoding="utf-8")
    with console.status(f"Writing {files} sensor files..."):
        write_readings(workdir / "data" / "readings", files)
    with console.status("Training and registering the anomaly model..."):
        version = train_and_register(tracking_uri)
    console.print(
        f"Data: {workdir / 'data' / 'readings'} ({files} files); "
        f"model {MODEL_NAME} version {version} registered in MLflow"
    )
    return workdir / "dag.yaml"


def write_readings(root: Path, files: int, rows_per_file: int = 24, seed: int = 7) -> None:
    """One CSV per device and day; about 1 row in 50 is missing a value, about 1 in 30 is anomalous."""
    if root.exists():
        shutil.rmtree(root)
    rng = random.Random(seed)
    for index in range(files):
        day = f"day-{index % DAYS + 1:02d}"
        path = root / day / f"device-{index:05d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as sink:
            out = csv.writer(sink)
            out.writerow(["device", "hour", "temperature", "vibration"])
            for hour in range(rows_per_file):
                temperature, vibration = _reading(rng)
                row = [f"device-{index:05d}", hour, f"{temperature:.2f}", f"{vibration:.3f}"]
                if rng.random() < 0.02:
                    row[rng.choice((2, 3))] = ""
                out.writerow(row)


def _reading(rng: random.Random) -> tuple[float, float]:
    if rng.random() < 1 / 30:
        return rng.gauss(85, 5), rng.gauss(0.9, 0.1)
    return rng.gauss(60, 4), rng.gauss(0.3, 0.08)


def train_and_register(tracking_uri: str) -> str:
    import mlflow
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(11)
    normal = rng.normal([60, 0.3, 0, 0], [4, 0.08, 3, 0.06], size=(2000, 4))
    anomalous = rng.normal([85, 0.9, 15, 0.4], [5, 0.1, 5, 0.1], size=(100, 4))
    features = pd.DataFrame(np.vstack([normal, anomalous]), columns=FEATURES)
    labels = np.r_[np.zeros(len(normal), dtype=int), np.ones(len(anomalous), dtype=int)]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, labels)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("concurrent-demo-training")
    with mlflow.start_run(run_name="train anomaly model"):
        mlflow.log_metric("train_accuracy", float(model.score(features, labels)))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=features.head(3),
            registered_model_name=MODEL_NAME,
            # What the model needs (MLflow adds itself), not what the directory it was trained in needs:
            # inferring them, MLflow would find our uv project and list all of its dependencies.
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(),
        )
    return str(info.registered_model_version)


def read_report(tracking_uri: str, run_id: str) -> str | None:
    """The report node's report.md of a finished demo run, read back from MLflow."""
    from concurrent_mlflow.tracking import TAG_PREFIX, Tracking

    tracking = Tracking(tracking_uri)
    parents = tracking.find_parents(1, run_id=run_id)
    if not parents:
        return None
    for child in tracking.children(parents[0]):
        if child.data.tags.get(f"{TAG_PREFIX}node") == "report" and child.info.status == "FINISHED":
            return tracking.read_text(child.info.run_id, "outputs/report.md")
    return None
