"""The `concurrent` command as a user runs it: a real process, real output, real exit codes and signals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow.artifacts
import pytest
from mlflow.tracking import MlflowClient

from tests.integration.conftest import TOOLBOX, make_files

pytestmark = pytest.mark.integration


def concurrent(
    *args: str, cwd: Path, timeout: float = 300, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "concurrent_mlflow.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": str(columns)},
    )


def write_dag(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dag.yaml"
    path.write_text(text.replace("{toolbox}", str(TOOLBOX)))
    return path


def test_run_prints_the_mlflow_url_and_a_failure_names_node_partition_and_log(
    tracking_env: Path, tmp_path: Path
) -> None:
    make_files(tmp_path / "data", {f"f{i}.txt": f"w {i}" for i in range(4)})
    dag = write_dag(
        tmp_path,
        """
name: cli-fail
nodes:
  - {id: raw, kind: source, uri: data}
  - {id: step, kind: project, project: "{toolbox}", entry_point: transform, partitions: 2}
edges:
  - {from: raw, to: step, input: text}
""",
    )
    result = concurrent("run", str(dag), "-P", "step.fail_on_partition=1", cwd=tmp_path)

    assert result.returncode == 1, result.stderr
    assert f"MLflow: {os.environ['MLFLOW_TRACKING_URI']}/#/experiments/" in result.stdout
    assert "Failed partitions" in result.stderr
    assert "1/2" in result.stdout and "1 failed" in result.stdout  # the final progress display
    assert "step" in result.stderr and "exit code 3" in result.stderr  # the entry point's own
    log_files = list((tracking_env / "logs").rglob("00001-1.log"))
    assert len(log_files) == 1 and "failing on purpose" in log_files[0].read_text()
    assert "concurrent run retry" in result.stderr
    assert "partition 0 of 2" not in result.stdout  # a stage of several partitions shows only its progress

    run_id = re.search(r"Run (\w+) of DAG 'cli-fail'", result.stdout).group(1)  # type: ignore[union-attr]
    listing = concurrent("runs", "list", cwd=tmp_path)
    assert run_id in listing.stdout and "cli-fail" in listing.stdout and "FAILED" in listing.stdout
    shown = concurrent("runs", "show", run_id, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if " step " in line)
    cells = [cell.strip() for cell in row.split("│")[1:6]]
    assert cells == ["step", "2", "1", "0", "1"]  # node, partitions, FINISHED, RUNNING, FAILED
    missing = concurrent("runs", "show", "nope", cwd=tmp_path)
    assert missing.returncode == 1 and "No DAG run 'nope'" in missing.stderr


def test_a_single_partition_stage_shows_its_output_as_it_runs(tracking_env: Path, tmp_path: Path) -> None:
    make_files(tmp_path / "data", {f"f{i}.txt": f"w {i}" for i in range(3)})
    dag = write_dag(
        tmp_path,
        """
name: cli-output
nodes:
  - {id: raw, kind: source, uri: data}
  - {id: one, kind: project, project: "{toolbox}", entry_point: transform}
  - {id: many, kind: project, project: "{toolbox}", entry_point: transform, partitions: 3}
edges:
  - {from: raw, to: one, input: text}
  - {from: one, to: many, input: text}
""",
    )
    result = concurrent("run", str(dag), "--no-progress", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "partition 0 of 1: 3 file(s)" in lines  # as the entry point printed it, as `-b local` shows it
    assert not any("partition 0 of 3" in line for line in lines)
    assert not any("concurrent.worker" in line for line in lines)  # the worker's bookkeeping stays in the log


def failure_rows(output: str) -> list[list[str]]:
    """The cells of each row of the "Failed partitions" table in `output` (wide enough not to fold)."""
    table = output[output.index("Failed partitions") :]
    rows = [line for line in table.splitlines() if line.startswith("│")]  # the header row is "┃"
    return [[cell.strip() for cell in row.split("│")[1:-1]] for row in rows]


def test_a_failed_partition_is_named_by_its_exception_in_the_run_and_in_runs_show(
    tracking_env: Path, tmp_path: Path
) -> None:
    dag = write_dag(
        tmp_path,
        """
name: cli-crash
nodes:
  - {id: step, kind: project, project: "{toolbox}", entry_point: crash, partitions: 2, parameters: {on_partition: 1}}
""",
    )
    result = concurrent("run", str(dag), "--no-progress", cwd=tmp_path, columns=400)
    assert result.returncode == 1, result.stderr
    ((node, partition, attempt, error, log, _),) = failure_rows(result.stderr)
    assert (node, partition, attempt) == ("step", "1", "1")
    assert error == "ValueError: bad row 17 in partition 1 (exit code 1)"  # not just "exit code 1"
    assert "Traceback" in Path(log).read_text()

    run_id = re.search(r"Run (\w+) of DAG 'cli-crash'", result.stdout).group(1)  # type: ignore[union-attr]
    shown = concurrent("runs", "show", run_id, cwd=tmp_path, columns=400)
    assert shown.returncode == 0, shown.stderr
    assert failure_rows(shown.stdout) == failure_rows(result.stderr)

    log_text = concurrent("logs", run_id, "step", "1", cwd=tmp_path)
    assert log_text.returncode == 0 and "ValueError: bad row 17" in log_text.stdout
    typo = concurrent("logs", run_id, "stpe", "1", cwd=tmp_path)
    assert typo.returncode == 1 and f"Run {run_id} has no node 'stpe'; its nodes are step." in typo.stderr
    beyond = concurrent("logs", run_id, "step", "2", cwd=tmp_path)
    assert beyond.returncode == 1 and "has partitions 0 to 1; there is no partition 2" in beyond.stderr


def test_unknown_parameter_is_refused_before_anything_runs(tracking_env: Path, tmp_path: Path) -> None:
    dag = write_dag(
        tmp_path,
        """
name: typo
nodes:
  - {id: step, kind: project, project: "{toolbox}", entry_point: echo_params, parameters: {alpah: 1}}
""",
    )
    result = concurrent("run", str(dag), cwd=tmp_path)
    assert result.returncode == 1
    assert "nodes.step.parameters" in result.stderr and "alpah" in result.stderr
    assert not (tracking_env / "concurrent.db").exists() or "cli" not in result.stdout


def test_dag_validate_reports_projects_without_mlproject_and_unknown_entry_points(
    tracking_env: Path, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    dag = write_dag(
        tmp_path,
        """
name: broken
nodes:
  - {id: nothing, kind: project, project: empty}
  - {id: wrong-entry, kind: project, project: "{toolbox}", entry_point: nope}
""",
    )
    result = concurrent("dag", "validate", str(dag), cwd=tmp_path)
    assert result.returncode == 1
    assert "nodes.nothing.project" in result.stderr and "MLproject" in result.stderr
    assert "nodes.wrong-entry" in result.stderr and "nope" in result.stderr


def test_ctrl_c_cancels_the_run_kills_tasks_and_marks_runs_killed(tracking_env: Path, tmp_path: Path) -> None:
    make_files(tmp_path / "data", {f"f{i}.txt": f"w {i}" for i in range(2)})
    dag = write_dag(
        tmp_path,
        """
name: cancel-me
nodes:
  - {id: raw, kind: source, uri: data}
  - {id: slow, kind: project, project: "{toolbox}", entry_point: transform, partitions: 2, parameters: {sleep: 300}}
edges:
  - {from: raw, to: slow, input: text}
""",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "concurrent_mlflow.cli", "run", str(dag), "--no-progress"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client = MlflowClient()
    deadline = time.monotonic() + 120
    children: list = []
    while time.monotonic() < deadline and len(children) < 2:
        time.sleep(1)
        experiment = client.get_experiment_by_name("cancel-me")
        if experiment:
            children = client.search_runs([experiment.experiment_id], "tags.`concurrent.kind` = 'task'")
    assert len(children) == 2, "both tasks should have started"
    time.sleep(3)  # let the workers get into the entry point
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert "cancelled" in stderr
    statuses = {client.get_run(r.info.run_id).info.status for r in children}
    assert statuses == {"KILLED"}
    parent_id = children[0].data.tags["mlflow.parentRunId"]
    assert client.get_run(parent_id).info.status == "KILLED"
    assert processes_of({r.info.run_id for r in children}) == [], "no task process may outlive the cancel"


def processes_of(child_runs: set[str]) -> list[int]:
    """Live processes of these child runs: tasks carry MLFLOW_RUN_ID in their environment (only ours,
    whatever else runs on the machine)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if any(f"MLFLOW_RUN_ID={run}".encode() in environ for run in child_runs):
            found.append(int(entry.name))
    return found


def test_demo_runs_the_bundled_dag_end_to_end(tracking_env: Path, tmp_path: Path) -> None:
    result = concurrent(
        "demo",
        "--files",
        "60",
        "--partitions",
        "2",
        "--dir",
        str(tmp_path / "demo"),
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "succeeded" in result.stdout
    assert "files scored: 60" in result.stdout
    assert "rows scored:" in result.stdout
    assert "🏃 View run" not in result.stdout  # one link per DAG run, not one per task
    client = MlflowClient()
    experiment = client.get_experiment_by_name("sensor-demo")
    assert experiment is not None
    (parent,) = client.search_runs([experiment.experiment_id], "tags.`concurrent.kind` = 'dag-run'")
    assert parent.info.status == "FINISHED"
    tasks = client.search_runs([experiment.experiment_id], "tags.`concurrent.kind` = 'task'")
    nodes = sorted(r.data.tags["concurrent.node"] for r in tasks)
    assert nodes == ["ingest", "ingest", "preprocess", "preprocess", "report", "score", "score"]
    model_dir = mlflow.artifacts.download_artifacts(
        "models:/concurrent-demo-anomaly/latest", dst_path=str(tmp_path / "m")
    )
    requirements = (Path(model_dir) / "requirements.txt").read_text()
    names = sorted(line.split("==")[0] for line in requirements.splitlines() if line.strip())
    assert names == ["mlflow", "scikit-learn"]  # what the model needs, not the repository's dependencies


@pytest.mark.parametrize(
    ("setting", "args"),
    [
        ("CONCURRENT_HOME", ("runs", "list")),  # the local MLflow server's dir
        ("CONCURRENT_HOME", ("cluster", "list")),  # the store
        ("CONCURRENT_HOME", ("logs", "some-run", "node", "0")),
        ("CONCURRENT_CACHE", ("dag", "validate", "dag.yaml")),  # a git project's checkout
    ],
)
def test_an_unwritable_data_dir_is_one_line_naming_it_and_the_fix(
    tmp_path: Path, setting: str, args: tuple[str, ...]
) -> None:
    # Tests run as root, whom chmod does not stop: a dir beneath a regular file cannot be made by anyone.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    (tmp_path / "dag.yaml").write_text(
        'name: g\nnodes:\n  - {id: a, kind: project, project: "file:///nowhere/repo.git"}\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CONCURRENT_"))}
    env |= {"CONCURRENT_HOME": str(tmp_path / "home"), setting: str(blocker / "dir"), "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "concurrent_mlflow.cli", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: Cannot write to {setting} {blocker / 'dir'} (Not a directory")
    assert line.endswith("to a writable directory.") and f"set {setting}" in line
