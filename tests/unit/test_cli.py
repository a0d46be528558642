"""The CLI's help and its offline commands, through Click's runner (no MLflow needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from concurrent_mlflow.cli import main
from concurrent_mlflow.cli.base import unwritable_dir_message
from concurrent_mlflow.cli.runs import check_task
from concurrent_mlflow.errors import NotFoundError
from concurrent_mlflow.settings import Paths
from concurrent_mlflow.store.queries import RunView, StageView


def test_run_help_shows_the_options_of_running_a_dag() -> None:
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    assert "Usage: concurrent run DAG.yaml [-P NODE.PARAM=VALUE]... | retry RUN_ID" in result.output
    for option in ("-P, --param NODE.PARAM=VALUE", "--max-parallel", "--progress / --no-progress", "retry"):
        assert option in result.output


def test_a_bad_output_mode_is_a_usage_error_naming_the_modes(tmp_path: Path) -> None:
    dag = tmp_path / "dag.yaml"
    dag.write_text("name: d\nnodes:\n  - {id: a, kind: project, project: p}\n")
    result = CliRunner().invoke(main, ["run", str(dag), "--output", "first:zero"])
    assert result.exit_code == 2
    assert "Invalid value for '--output'" in result.output and "first:N must be a positive" in result.output


def test_dag_schema_prints_the_shipped_schema() -> None:
    result = CliRunner().invoke(main, ["dag", "schema"])
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "Concurrent for MLflow DAG"


def test_dag_validate_without_projects_reports_the_cycle(tmp_path: Path) -> None:
    dag = tmp_path / "dag.yaml"
    dag.write_text("""
name: loop
nodes:
  - {id: a, kind: project, project: p}
  - {id: b, kind: project, project: p}
edges:
  - {from: a, to: b, input: x}
  - {from: b, to: a, input: y}
""")
    result = CliRunner().invoke(main, ["dag", "validate", "--no-projects", str(dag)])
    assert result.exit_code == 1
    assert "the graph has a cycle: a -> b -> a" in result.output


def test_bad_override_is_a_clean_error_not_a_traceback(tmp_path: Path) -> None:
    dag = tmp_path / "dag.yaml"
    dag.write_text("name: d\nnodes:\n  - {id: a, kind: project, project: p}\n")
    result = CliRunner().invoke(main, ["run", str(dag), "-P", "nodot=1"])
    assert result.exit_code == 1
    assert "expected NODE.PARAM=VALUE" in result.output
    assert "Traceback" not in result.output


LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy"


def test_import_legacy_writes_a_valid_dag_and_reports_what_did_not_carry_over(tmp_path: Path) -> None:
    out = tmp_path / "converted.yaml"
    result = CliRunner().invoke(main, ["dag", "import-legacy", str(LEGACY / "honeypot.json"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "lambda" in result.stderr and "could not be mapped" in result.stderr
    assert "concurrent cluster add concurrent-prod --context concurrent-prod --namespace parallelsns\n" in (
        result.stderr
    )
    check = CliRunner().invoke(main, ["dag", "validate", "--no-projects", str(out)])
    assert check.exit_code == 0, check.output


def test_import_legacy_refuses_a_cyclic_document_and_writes_nothing(tmp_path: Path) -> None:
    legacy = tmp_path / "loop.json"
    legacy.write_text(
        json.dumps(
            {
                "node": [
                    {"id": "a", "transform": "https://git.example.com/x.git"},
                    {"id": "b", "transform": "https://git.example.com/x.git"},
                ],
                "edge": [{"source": "a", "target": "b"}, {"source": "b", "target": "a"}],
            }
        )
    )
    out = tmp_path / "never.yaml"
    result = CliRunner().invoke(main, ["dag", "import-legacy", str(legacy), "-o", str(out)])
    assert result.exit_code == 1 and "cycle" in result.output.lower()
    assert not out.exists()


def test_schedule_commands_need_a_server_and_say_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CONCURRENT_SERVER", raising=False)
    for args in (["list"], ["create", "d", "--cron", "0 * * * *"], ["pause", "1"]):
        result = CliRunner().invoke(main, ["--home", str(tmp_path), "schedule", *args])
        assert result.exit_code == 1, result.output
        assert "Schedules are fired by a `concurrent server`; pass --server URL" in result.output


def test_schedule_create_help_explains_the_seconds_field_and_overlap() -> None:
    result = CliRunner().invoke(main, ["schedule", "create", "--help"])
    assert result.exit_code == 0
    output = " ".join(result.output.split())  # help text is wrapped to the terminal
    for text in (
        "--cron EXPR",
        "'* * * * * */5' is every 5",
        "--overlap [skip|queue]",
        "--tz",
        "-P, --param",
    ):
        assert text in output, text


def test_an_oserror_under_a_data_dir_names_the_dir_and_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CONCURRENT_STORE", raising=False)
    monkeypatch.setenv("CONCURRENT_CACHE", str(tmp_path / "cache"))
    paths = Paths(tmp_path / "home")
    denied = PermissionError(13, "Permission denied", str(tmp_path / "home" / "logs"))
    assert unwritable_dir_message(denied, paths) == (
        f"Cannot write to CONCURRENT_HOME {tmp_path / 'home'} (Permission denied at {tmp_path / 'home' / 'logs'})"
        ": set CONCURRENT_HOME (or --home) to a writable directory."
    )
    nested = Paths(tmp_path / "parent" / "home")
    parent = PermissionError(13, "Permission denied", str(tmp_path / "parent"))  # making the home's parent
    assert "Cannot write to CONCURRENT_HOME" in str(unwritable_dir_message(parent, nested))
    read_only = OSError(30, "Read-only file system", str(tmp_path / "cache" / "git"))
    assert str(unwritable_dir_message(read_only, paths)).startswith(
        f"Cannot write to CONCURRENT_CACHE {tmp_path / 'cache'} (Read-only file system"
    )


def test_an_oserror_about_another_file_is_not_blamed_on_the_data_dir(tmp_path: Path) -> None:
    paths = Paths(tmp_path / "home")
    assert unwritable_dir_message(FileNotFoundError(2, "No such file", "/elsewhere/dag.yaml"), paths) is None
    assert unwritable_dir_message(ConnectionRefusedError(111, "Connection refused"), paths) is None


def run_view_of(*stages: StageView) -> RunView:
    return RunView("r1", "d", "failed", None, None, None, list(stages))


def test_logs_of_an_unknown_node_or_partition_say_what_the_run_has() -> None:
    view = run_view_of(
        StageView("raw", "succeeded", 0),
        StageView("step", "failed", 4),
        StageView("report", "skipped", None),
    )
    check_task(view, "step", 3)
    with pytest.raises(
        NotFoundError, match=r"^Run r1 has no node 'stpe'; its nodes are raw, step, report\.$"
    ):
        check_task(view, "stpe", 0)
    with pytest.raises(
        NotFoundError, match=r"'step' of run r1 has partitions 0 to 3; there is no partition 4\."
    ):
        check_task(view, "step", 4)
    with pytest.raises(
        NotFoundError, match=r"'report' of run r1 has no partitions \(skipped\), so it has no logs"
    ):
        check_task(view, "report", 0)
    with pytest.raises(NotFoundError, match=r"'raw' of run r1 has no partitions \(succeeded\)"):
        check_task(view, "raw", 0)


def test_embedded_mlflow_server_runs_without_the_job_runner_unless_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from concurrent_mlflow.local_mlflow import server_env

    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)
    assert server_env()["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "true")
    assert server_env()["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"
