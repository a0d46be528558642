"""A pod finds its task in its Job's table on the parent run (a real MLflow server). The engine starts the
Job after the table's first file, so a pod whose file is not stored yet must wait for it, not fail."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from mlflow import MlflowClient

from concurrent_mlflow.errors import ConcurrentError
from concurrent_mlflow.tracking import Tracking
from concurrent_mlflow.worker.main import _task_of_pod

TABLE = "plan/upper/jobs/upper-0123456789ab"


@pytest.fixture
def pod_env(tracking_env: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[MlflowClient, str, str]:
    """A parent run and one child run, and a pod's environment for index 3 of a table in 2-row files."""
    client = MlflowClient()
    experiment = client.create_experiment(f"worker-table-{id(monkeypatch)}")
    parent = client.create_run(experiment).info.run_id
    child = client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id
    for name, value in {
        "CONCURRENT_PARENT_RUN": parent,
        "CONCURRENT_NODE": "upper",
        "JOB_COMPLETION_INDEX": "3",
        "CONCURRENT_JOB_TABLE": TABLE,
        "CONCURRENT_TABLE_CHUNK": "2",
        "CONCURRENT_POD": "upper-0123456789ab-3-xyz",
    }.items():
        monkeypatch.setenv(name, value)
    return client, parent, child


def test_a_pod_waits_for_its_table_file_and_reads_its_own_row(
    pod_env: tuple[MlflowClient, str, str], tracking_env: Path
) -> None:
    client, parent, child = pod_env
    stored = threading.Event()

    def store_later() -> None:  # the engine is still making child runs when the pod starts
        stored.wait(2.0)
        rows = {"partitions": [7, 9], "children": ["someone-else", child]}  # indexes 2 and 3
        client.log_text(parent, json.dumps(rows), f"{TABLE}/00001.json")
        stored.set()

    writer = threading.Thread(target=store_later)
    writer.start()
    found = _task_of_pod(Tracking(client.tracking_uri))
    writer.join()

    assert stored.is_set()
    assert found == (parent, "upper", 9, child)
    assert client.get_run(child).data.tags["concurrent.pod"] == "upper-0123456789ab-3-xyz"


def test_a_table_file_that_never_comes_fails_the_pod_naming_it(
    pod_env: tuple[MlflowClient, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _, _ = pod_env
    monkeypatch.setenv("CONCURRENT_TABLE_WAIT", "2")

    with pytest.raises(ConcurrentError, match=f"task table {TABLE}/00001.json never appeared"):
        _task_of_pod(Tracking(client.tracking_uri))
