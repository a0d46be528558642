"""`mlflow run -b concurrent` against MLflow's own `-b local` as the oracle: one table of cases, each run
through the real `mlflow` command with both backends against one real MLflow server, compared on what MLflow
records and what the command says.

Intended differences, asserted as such rather than skipped:
- the run's name (`<project>-<entry point> <DAG run id>` instead of a random one) and `mlflow.project.backend`;
- the run `mlflow run -b concurrent` reports is a parent run: the entry point ran in a child run
  (`mlflow.parentRunId`) that carries the same tags, parameters and metrics plus the parameters `partition`
  and `partitions`; the reported run gets the metrics too, with their history, once the run ends;
- an environment that cannot be built (no conda, no Docker) or a `path` parameter naming nothing is refused
  before any run is created, where `-b local` creates a run first (and leaves it RUNNING or FAILED);
- an undeclared parameter is passed on and logged by both; we also warn, naming the nearest declared one;
- `SubmittedRun.cancel()`: our run ends KILLED; the local backend kills its process, reports FAILED, and may
  leave the MLflow run RUNNING.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow.projects
import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.integration

MLFLOW = str(Path(sys.executable).with_name("mlflow"))
PROJECTS = Path(__file__).resolve().parents[1] / "projects"
# Tags MLflow's local backend sets on the run of a project (mlflow.projects.utils._create_run and the
# environment it builds); each must read the same on our reported run and on its child.
STANDARD_TAGS = (
    "mlflow.user",
    "mlflow.source.name",
    "mlflow.source.type",
    "mlflow.source.git.commit",
    "mlflow.source.git.repoURL",
    "mlflow.source.git.branch",
    "mlflow.project.entryPoint",
    "mlflow.project.env",
)
REPORTED_RUN = re.compile(r"Run \(ID '([0-9a-f]{32})'\)")


@dataclass(frozen=True)
class Case:
    name: str
    project: str
    entry_point: str = "main"
    params: dict[str, str] = field(default_factory=dict)
    env_manager: str | None = "local"
    succeeds: bool = True
    says: str | None = None  # what both commands' output must say (a failure's cause)
    prints: str | None = None  # a line the entry point prints: both show it on stdout
    refused_up_front: bool = False  # we create no run where `-b local` leaves one RUNNING


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    output: str  # stdout and stderr
    runs: list[Any]  # top-level runs of the case's experiment


CASES = [
    Case("echo", "conformance", "echo", prints="hello from echo"),
    Case("greeter", "conformance", "greeter", {"name": "Ada"}, prints="hi Ada"),
    Case("greeter-no-name", "conformance", "greeter", {}, succeeds=False, says="name"),
    Case(
        "greeter-extra-parameter",
        "conformance",
        "greeter",
        {"name": "Ada", "excitement": "3"},
        prints="hi Ada!!!",
    ),
    Case("line-count", "conformance", "line_count", {"data": "lines.txt"}, prints="3 lines"),  # in the cwd
    Case(
        "line-count-missing-file",
        "conformance",
        "line_count",
        {"data": "missing.txt"},
        succeeds=False,
        says="missing.txt",
        refused_up_front=True,
    ),
    Case("sleep", "conformance", "sleep", {"duration": "1"}),
    Case("metric", "conformance", "metric", {"value": "0.5"}, prints="logged score"),
    Case("metric-in-own-run", "conformance", "metric", {"own_run": "yes"}, prints="logged score"),
    Case("exit-with-thread", "conformance", "exit_with_thread", succeeds=False, prints="failing on purpose"),
    Case(
        "conda-without-conda",
        "conformance_conda",
        env_manager=None,
        succeeds=False,
        says="Could not find Conda executable",
        refused_up_front=True,
    ),
    Case("docker-without-docker", "conformance_docker", succeeds=False, says="docker", refused_up_front=True),
]


def mlflow_run_command(case: Case, backend: str) -> list[str]:
    experiment = f"{case.name}-{backend}"
    command = [MLFLOW, "run", str(PROJECTS / case.project), "-e", case.entry_point, "-b", backend]
    command += ["--experiment-name", experiment]
    command += [arg for key, value in case.params.items() for arg in ("-P", f"{key}={value}")]
    command += ["--env-manager", case.env_manager] if case.env_manager else []
    return command


def outcome(
    case: Case, backend: str, done: subprocess.CompletedProcess[str], client: MlflowClient
) -> Outcome:
    found = client.get_experiment_by_name(f"{case.name}-{backend}")
    runs = client.search_runs([found.experiment_id]) if found else []
    top_level = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    return Outcome(done.returncode, done.stdout, done.stdout + done.stderr, top_level)


def history(client: MlflowClient, run: Any, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))


def standard_tags(run: Any) -> dict[str, str]:
    return {key: run.data.tags[key] for key in STANDARD_TAGS if key in run.data.tags}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_mlflow_run_with_our_backend_records_what_the_local_backend_records(
    tracking_env: Path, tmp_path: Path, case: Case
) -> None:
    client = MlflowClient()
    (tmp_path / "lines.txt").write_text("a\nb\nc\n")  # a `path` parameter's file, in the caller's directory
    # As a user with this virtualenv activated runs them: `python` in an entry point is this one (-b local
    # runs it from PATH; our worker puts its own interpreter first).
    activated = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
    }

    with ThreadPoolExecutor(2) as both:  # side by side: the suite's time, not a race between them
        done = both.map(
            lambda backend: subprocess.run(
                mlflow_run_command(case, backend),
                cwd=tmp_path,
                env=activated,
                capture_output=True,
                text=True,
                timeout=300,
            ),
            ("local", "concurrent"),
        )
        local, ours = (
            outcome(case, b, d, client) for b, d in zip(("local", "concurrent"), done, strict=True)
        )

    assert (local.code == 0, ours.code == 0) == (case.succeeds, case.succeeds), (local.output, ours.output)
    if case.says:
        assert case.says.lower() in local.output.lower(), local.output
        assert case.says.lower() in ours.output.lower(), ours.output
    if case.prints:  # the entry point's output, on the terminal as it runs
        assert case.prints in local.stdout.splitlines(), local.output
        assert case.prints in ours.stdout.splitlines(), ours.output
    if case.refused_up_front:
        assert len(local.runs) == 1  # MLflow's, created before it found out (left RUNNING or FAILED)
        assert ours.runs == []
        return
    assert len(local.runs) == len(ours.runs) <= 1
    if not local.runs:  # refused before any run by both (a missing required parameter)
        return
    (expected,), (reported,) = local.runs, ours.runs
    found = REPORTED_RUN.search(ours.output)
    assert found and found.group(1) == reported.info.run_id, ours.output  # the run the command names
    assert reported.info.status == expected.info.status
    assert reported.data.params == expected.data.params
    assert standard_tags(reported) == standard_tags(expected)
    assert reported.data.metrics == expected.data.metrics  # the entry point's, on the run users look at
    for key in expected.data.metrics:
        assert history(client, reported, key) == history(client, expected, key)
    assert (expected.data.tags["mlflow.project.backend"], reported.data.tags["mlflow.project.backend"]) == (
        "local",
        "concurrent",
    )
    (child,) = client.search_runs(
        [reported.info.experiment_id], f"tags.`mlflow.parentRunId` = '{reported.info.run_id}'"
    )
    assert child.info.status == expected.info.status
    assert child.data.params == {**expected.data.params, "partition": "0", "partitions": "1"}
    assert standard_tags(child) == standard_tags(expected)
    assert child.data.metrics == expected.data.metrics


def submit(backend: str, experiment_id: str, entry_point: str, **params: str) -> Any:
    return mlflow.projects.run(
        str(PROJECTS / "conformance"),
        entry_point,
        parameters=params,
        experiment_id=experiment_id,
        backend=backend,
        env_manager="local",
        synchronous=False,
    )


def test_the_python_api_behaves_as_with_the_local_backend(
    tracking_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlflow.projects.run(..., synchronous=False)` and the SubmittedRun it returns: wait, get_status, cancel."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    client = MlflowClient()
    seen: dict[str, dict[str, Any]] = {}
    for backend in ("local", "concurrent"):
        experiment_id = client.create_experiment(f"api-{backend}")

        greeter = submit(backend, experiment_id, "greeter", name="Ada")
        failing = submit(backend, experiment_id, "exit_with_thread")
        slow = submit(backend, experiment_id, "sleep", duration="120")
        seen[backend] = {"status at submit": greeter.get_status()}
        slow.cancel()
        seen[backend].update(
            {
                "greeter waits": greeter.wait(),
                "greeter ends": greeter.get_status(),
                "greeter params": client.get_run(greeter.run_id).data.params,
                "failing waits": failing.wait(),
                "failing ends": failing.get_status(),
                "cancelled ends": slow.get_status(),
                "cancelled run": client.get_run(slow.run_id).info.status,
            }
        )

    # Intended difference: a cancelled run ends KILLED with us; MLflow's local backend kills its process,
    # reports FAILED and may leave the run RUNNING in MLflow (it did here, cancelled right after submit).
    local, ours = seen["local"], seen["concurrent"]
    assert (ours.pop("cancelled ends"), ours.pop("cancelled run")) == ("KILLED", "KILLED")
    assert local.pop("cancelled ends") == "FAILED" and local.pop("cancelled run") in ("RUNNING", "KILLED")
    assert ours == local
    assert (local["status at submit"], local["greeter ends"], local["failing ends"]) == (
        "RUNNING",
        "FINISHED",
        "FAILED",
    )
