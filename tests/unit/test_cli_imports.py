"""What the `concurrent` command imports to start: the quick commands must not pay for MLflow and friends.

Each case runs the real command in a fresh process with PYTHONPROFILEIMPORTTIME set, so the interpreter itself
lists every module it imported (on stderr), whether started as the console script or as `python -m`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from concurrent_mlflow.cli import COMMANDS, main

TOOLBOX = Path(__file__).resolve().parents[1] / "projects" / "toolbox"
HEAVY = {"mlflow", "pandas", "pyarrow", "numpy", "sqlalchemy", "alembic", "fastapi", "kubernetes", "fsspec"}
SCRIPT = [str(Path(sys.executable).with_name("concurrent"))]
MODULE = [sys.executable, "-m", "concurrent_mlflow.cli"]


def imported(command: list[str], cwd: Path) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """Modules the command imported (full dotted names), and how it ended."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "CONCURRENT_HOME": str(cwd / "home")}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    names = {
        line.rpartition("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    return names, done


@pytest.mark.parametrize(
    "args",
    [
        pytest.param([*SCRIPT, "--version"], id="concurrent --version"),
        pytest.param([*SCRIPT, "--help"], id="concurrent --help"),
        pytest.param([*MODULE, "--version"], id="python -m concurrent_mlflow.cli --version"),
        pytest.param([*SCRIPT, "dag", "validate", "dag.yaml"], id="concurrent dag validate"),
        pytest.param([*SCRIPT, "dag", "--help"], id="concurrent dag --help"),
        pytest.param([*SCRIPT, "run", "--help"], id="concurrent run --help"),
    ],
)
def test_quick_commands_import_no_mlflow_nor_data_libraries(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "dag.yaml").write_text(
        f"""
name: local
nodes:
  - {{id: raw, kind: source, uri: data}}
  - {{id: step, kind: project, project: "{TOOLBOX}", entry_point: echo_params, parameters: {{alpha: 0.5}}}}
edges:
  - {{from: raw, to: step, input: text}}
"""
    )
    names, done = imported(args, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "import time:" in done.stderr  # the interpreter did report its imports
    assert {name.split(".")[0] for name in names} & HEAVY == set()
    if "run" not in args:  # ~50 ms: made on first use, and these print without it
        assert "rich.console" not in names


@pytest.mark.parametrize("limit", [30, 60, 1000])
def test_the_listed_short_help_is_each_commands_own(limit: int) -> None:
    ctx = click.Context(main)
    for name, (_target, short_help) in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name
        listed = click.Command(name, help=short_help).get_short_help_str(limit)
        assert listed == command.get_short_help_str(limit), name
