"""`mlflow server` as one process: MLflow's own CLI, whose launcher becomes uvicorn instead of waiting on it.

`mlflow server` imports MLflow (about 280 MB) only to prepare the server (store migrations, the app's
settings in its environment) and then start uvicorn as a child, wait for it and forward signals to it.
With MLflow's job execution off (`local_mlflow.server_env`) the parent does nothing else while the server
runs, so here it execs into that uvicorn command: every step MLflow takes before is still MLflow's, the
idle parent is gone, and the server's pid is uvicorn's (a SIGTERM reaches it directly). With job execution
on, or with an MLflow whose launcher no longer starts the server through `_exec_cmd`, MLflow's own
two-process launcher runs unchanged.

Usage: python -m concurrent_mlflow.mlflow_server [mlflow server options]
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn


def main(argv: list[str]) -> None:
    import mlflow.server
    from mlflow.cli import cli

    job_execution = os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "true").strip().lower()
    if job_execution in ("false", "0") and hasattr(mlflow.server, "_exec_cmd"):
        mlflow.server._exec_cmd = _become  # the one place MLflow starts the server
    cli.main(args=["server", *argv], prog_name="mlflow")


def _become(cmd: list[str], *, extra_env: dict[str, str] | None = None, **_: Any) -> NoReturn:
    """Replace this process by the server command, with the environment MLflow prepared for it."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(cmd[0], cmd, {**os.environ, **(extra_env or {})})


if __name__ == "__main__":  # pragma: no cover - started by local_mlflow.server_command
    main(sys.argv[1:])
