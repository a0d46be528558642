"""`mlflow run -b concurrent`: the real `mlflow` command (and MLflow's Python API) with our backend plugin,
against a real MLflow server, with real worker processes."""

from __future__ import annotations

import getpass
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mlflow.projects
import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import func, select

from concurrent_mlflow.settings import Paths
from concurrent_mlflow.store import RunRow, open_store
from tests.integration.conftest import TOOLBOX, make_files
from tests.integration.test_cli import processes_of

pytestmark = pytest.mark.integration

MLFLOW = str(Path(sys.executable).with_name("mlflow"))


def mlflow_run(
    tmp_path: Path, experiment: str, config: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    """`mlflow run -b concurrent --backend-config cfg.json ...` in `tmp_path`, as a user types it."""
    config_file = tmp_path / "cfg.json"
    config_file.write_text(json.dumps(config))
    return subprocess.run(
        [
            MLFLOW,
            "run",
            "-b",
            "concurrent",
            "--backend-config",
            str(config_file),
            "--experiment-name",
            experiment,
            *args,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


def mlflow_source_name(project_dir: Path) -> str:
    """What `mlflow run -b local` names a local project in `mlflow.source.name` (its git remote and
    subdirectory when it sits in a clone, else its path)."""
    from mlflow.tracking._tracking_service.utils import _get_git_url_if_present

    return str(_get_git_url_if_present(str(project_dir)))  # type: ignore[no-untyped-call]


def parent_of(stderr: str, client: MlflowClient) -> Any:
    found = re.search(r"\(MLflow run ([0-9a-f]{32})", stderr)
    assert found, stderr
    return client.get_run(found.group(1))


def children_of(parent: Any, client: MlflowClient) -> list[Any]:
    query = f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    runs = client.search_runs([parent.info.experiment_id], query)
    return sorted(runs, key=lambda r: int(r.data.tags["concurrent.partition"]))


def test_mlflow_run_fans_a_project_out_over_its_inputs(tracking_env: Path, tmp_path: Path) -> None:
    make_files(tmp_path / "data", {f"f{i}.txt": f"word{i} body\n" for i in range(6)})
    project = os.path.relpath(TOOLBOX, tmp_path)  # relative paths resolve against the current directory
    config = {"inputs": {"text": "data"}, "partitions": 3, "parallelism": 2, "output": "all"}

    done = mlflow_run(tmp_path, "backend-happy", config, project, "-e", "transform", "-P", "suffix=.up")

    stderr = done.stderr
    assert done.returncode == 0, stderr
    client = MlflowClient()
    parent = parent_of(stderr, client)
    experiment = client.get_experiment_by_name("backend-happy")
    assert parent.info.experiment_id == experiment.experiment_id
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlflow.project.backend"] == "concurrent"
    assert parent.data.tags["mlflow.project.entryPoint"] == "transform"
    assert parent.data.tags["mlflow.source.name"] == mlflow_source_name(TOOLBOX)
    assert parent.data.tags["mlflow.source.type"] == "PROJECT"
    assert "mlflow.project.env" not in parent.data.tags  # MLflow tags only an environment it builds
    assert parent.data.tags["mlflow.user"] == getpass.getuser()
    defaults = {
        "fail_on_partition": "-1",
        "flaky_marker_dir": "''",
        "sleep": "0",
        "sleep_once_dir": "''",
        "metric": "yes",
    }
    assert parent.data.params == {"suffix": ".up", **defaults}  # as `-b local` logs them: defaults too
    assert f"Run (ID '{parent.info.run_id}') succeeded" in stderr
    for partition in range(3):  # output: all, each line named by its partition
        assert f"transform[{partition}] partition {partition} of 3: 2 file(s)" in done.stdout.splitlines()
    children = children_of(parent, client)
    assert [c.data.tags["concurrent.partition"] for c in children] == ["0", "1", "2"]
    assert {c.info.status for c in children} == {"FINISHED"}
    assert all(
        c.data.params == {"suffix": ".up", **defaults, "partition": p, "partitions": "3"}
        for c, p in zip(children, "012", strict=True)
    )
    for key in ("mlflow.user", "mlflow.source.name", "mlflow.source.type", "mlflow.project.entryPoint"):
        assert {c.data.tags[key] for c in children} == {parent.data.tags[key]}, key
    assert sum(c.data.metrics["files"] for c in children) == 6
    outputs = [a.path for c in children for a in client.list_artifacts(c.info.run_id, "outputs/text")]
    assert sorted(outputs) == [f"outputs/text/f{i}.txt.up" for i in range(6)]


def test_a_failing_partition_fails_mlflow_run_and_says_what_failed(
    tracking_env: Path, tmp_path: Path
) -> None:
    make_files(tmp_path / "data", {f"f{i}.txt": f"w{i}\n" for i in range(4)})
    config = {"inputs": {"text": str(tmp_path / "data")}, "partitions": 2}

    done = mlflow_run(
        tmp_path,
        "backend-fail",
        config,
        str(TOOLBOX),
        "-e",
        "transform",
        "-P",
        "fail_on_partition=1",
        "--run-name",
        "nightly-clean",
    )

    stderr = done.stderr
    assert done.returncode == 1, stderr
    assert "transform: 1 of 2 partition(s) failed; partition 1" in stderr
    assert "transform[1] attempt 1: exit code" in stderr
    assert "failing on purpose" in stderr  # the end of the failed partition's log
    assert re.search(r"log: .*/logs/\w+/transform/00001-1\.log", stderr), stderr
    client = MlflowClient()
    parent = parent_of(stderr, client)
    assert f"Run (ID '{parent.info.run_id}') failed" in stderr
    assert parent.info.status == "FAILED"
    assert parent.data.tags["mlflow.runName"] == "nightly-clean"  # MLflow sets it only on success
    assert [c.info.status for c in children_of(parent, client)] == ["FINISHED", "FAILED"]


@pytest.mark.parametrize(
    ("config", "args", "message"),
    [
        (
            {},
            ("-P", "alpha=fast"),
            "-P: parameter 'alpha' of entry point 'echo_params' must be a number",
        ),
        (
            {"partitions": 2, "paralelism": 2},
            ("-P", "alpha=0.5"),
            "paralelism: unknown backend config key; the allowed keys are: cluster, clusters, partitions",
        ),
        ({"partitions": "many"}, ("-P", "alpha=0.5"), "partitions: Input should be a valid integer"),
        ({"cluster": "nowhere"}, ("-P", "alpha=0.5"), "cluster: no cluster named 'nowhere' is registered"),
        ({"inputs": {"text": "no-such-dir"}}, ("-P", "alpha=0.5"), "no-such-dir does not exist"),
    ],
    ids=["bad-float", "unknown-key", "bad-partitions", "unknown-cluster", "missing-input"],
)
def test_a_bad_request_is_refused_before_anything_runs(
    tracking_env: Path, tmp_path: Path, config: dict[str, Any], args: tuple[str, ...], message: str
) -> None:
    experiment = f"backend-refused-{tmp_path.name}"
    done = mlflow_run(tmp_path, experiment, config, str(TOOLBOX), "-e", "echo_params", *args)

    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    client = MlflowClient()
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    assert client.search_runs([experiment_id]) == []  # no parent run, nothing left RUNNING
    store_file = Paths(tracking_env).store
    if store_file.exists():
        store = open_store(str(store_file))
        with store.transaction() as session:
            assert session.scalar(select(func.count()).select_from(RunRow)) == 0
        store.close()


def running_task(client: MlflowClient, experiment: str) -> str:
    """The child run of the one task in `experiment`, once its process has started."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = client.get_experiment_by_name(experiment)
        tasks = client.search_runs([found.experiment_id], "tags.`concurrent.kind` = 'task'") if found else []
        if tasks and processes_of({tasks[0].info.run_id}):
            time.sleep(2)  # let the worker get into the entry point
            return str(tasks[0].info.run_id)
        time.sleep(0.5)
    raise AssertionError(f"no task of experiment {experiment!r} started within 120s")


def test_python_api_cancel_stops_the_task_and_marks_the_runs_killed(
    tracking_env: Path, tmp_path: Path
) -> None:
    submitted = mlflow.projects.run(
        str(TOOLBOX),
        entry_point="transform",
        parameters={"sleep": 300},
        experiment_name="backend-cancel",
        backend="concurrent",
        backend_config={"retries": 0},
        synchronous=False,
    )
    client = MlflowClient()
    assert client.get_run(submitted.run_id).data.tags["mlflow.project.backend"] == "concurrent"
    child = running_task(client, "backend-cancel")
    assert client.get_run(child).data.tags["mlflow.parentRunId"] == submitted.run_id
    assert submitted.get_status() == "RUNNING"

    submitted.cancel()

    assert submitted.get_status() == "KILLED"
    assert client.get_run(child).info.status == "KILLED"
    assert client.get_run(submitted.run_id).info.status == "KILLED"
    assert processes_of({child}) == [], "no task process may outlive the cancel"
    assert submitted.wait() is False


def test_ctrl_c_in_mlflow_run_cancels_the_run(tracking_env: Path, tmp_path: Path) -> None:
    (tmp_path / "cfg.json").write_text("{}")
    command = [
        MLFLOW,
        "run",
        "-b",
        "concurrent",
        "--backend-config",
        "cfg.json",
        "--experiment-name",
        "backend-ctrl-c",
    ]
    with (tmp_path / "stderr.txt").open("w") as stderr:
        process = subprocess.Popen(
            [*command, str(TOOLBOX), "-e", "transform", "-P", "sleep=300"], cwd=tmp_path, stderr=stderr
        )
    client = MlflowClient()
    child = running_task(client, "backend-ctrl-c")

    process.send_signal(signal.SIGINT)

    assert process.wait(timeout=120) != 0
    assert "cancelled: its tasks were stopped and marked KILLED" in (tmp_path / "stderr.txt").read_text()
    assert client.get_run(child).info.status == "KILLED"
    assert client.get_run(client.get_run(child).data.tags["mlflow.parentRunId"]).info.status == "KILLED"
    assert processes_of({child}) == [], "no task process may outlive the cancel"


def test_a_script_that_does_not_wait_still_lets_its_run_finish(tracking_env: Path, tmp_path: Path) -> None:
    script = tmp_path / "submit.py"
    script.write_text(
        "import mlflow.projects\n"
        f"run = mlflow.projects.run({str(TOOLBOX)!r}, 'transform', parameters={{'sleep': 2}},\n"
        "    experiment_name='backend-exit', backend='concurrent', backend_config={}, synchronous=False)\n"
        "print('submitted', run.run_id, run.get_status())\n"
    )

    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )

    assert done.returncode == 0, done.stderr
    found = re.search(r"submitted (\w+) RUNNING", done.stdout)
    assert found, done.stdout
    client = MlflowClient()
    deadline = time.monotonic() + 120  # as with the local backend, the run goes on after the script
    while client.get_run(found.group(1)).info.status == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.5)
    parent = client.get_run(found.group(1))
    assert parent.info.status == "FINISHED"
    assert [c.info.status for c in children_of(parent, client)] == ["FINISHED"]


def test_a_killed_driver_leaves_no_task_running_and_no_run_open(tracking_env: Path, tmp_path: Path) -> None:
    submitted = mlflow.projects.run(
        str(TOOLBOX),
        entry_point="transform",
        parameters={"sleep": 300},
        experiment_name="backend-driver-killed",
        backend="concurrent",
        backend_config={"retries": 0},
        synchronous=False,
    )
    client = MlflowClient()
    child = running_task(client, "backend-driver-killed")

    os.kill(submitted.process.pid, signal.SIGKILL)  # type: ignore[attr-defined]

    assert submitted.wait() is False
    assert processes_of({child}) == [], "no task process may outlive its driver's death"
    assert client.get_run(child).info.status in ("FAILED", "KILLED")
    assert client.get_run(submitted.run_id).info.status == "FAILED"
    assert submitted.get_status() == "FAILED"
