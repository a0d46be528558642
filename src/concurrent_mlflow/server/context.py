"""What every request handler needs: the store, MLflow, the executors (for logs) and the server's settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from concurrent_mlflow.executors.registry import Executors
from concurrent_mlflow.policy import ExecutionPolicy
from concurrent_mlflow.settings import Paths, is_loopback
from concurrent_mlflow.store import Store
from concurrent_mlflow.tracking import Tracking, ui_url


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    auth: bool | None = None  # None: on unless bound to loopback
    work_dir: Path = field(default_factory=Path.cwd)
    max_body_bytes: int = 1024 * 1024
    max_parallel: int | None = None
    lease_seconds: float = 15.0
    mlflow_ui: str | None = None
    """Where browsers open MLflow's run pages; None: the tracking URI. '' inside MLflow's own server."""
    local_roots: tuple[Path, ...] = ()
    """Directories DAGs may name local paths under (`--allow-local-root`); none: see `policy`."""
    allow_local_execution: bool = False
    """Run project/inference nodes on this machine with auth on (`--allow-local-execution`)."""
    task_user: str | None = None
    """The OS user local tasks run as (`--task-user`); None: the server's own user."""

    @property
    def auth_enabled(self) -> bool:
        return self.auth if self.auth is not None else not is_loopback(self.host)

    def policy(self, paths: Paths) -> ExecutionPolicy:
        """What DAGs may read and where their tasks may run; unrestricted only with auth off and no roots."""
        return ExecutionPolicy.for_server(
            auth=self.auth_enabled,
            roots=self.local_roots,
            local_execution=self.allow_local_execution,
            private=paths.private(),
        )


@dataclass
class ServerContext:
    store: Store
    tracking: Tracking
    executors: Executors  # the engine's own, when this server runs one
    settings: ServerSettings
    paths: Paths
    server_id: str
    policy: ExecutionPolicy
    wake_engine: Callable[[], None] = lambda: None
    """Wakes this server's engine when a route started, cancelled or retried a run (it need not poll)."""

    def mlflow_link(self, experiment_id: str | None, mlflow_run_id: str | None) -> str | None:
        """The MLflow UI page of a run, for our API's answers and the UI's links."""
        base = self.settings.mlflow_ui
        if base is None:
            return ui_url(self.tracking.tracking_uri, experiment_id, mlflow_run_id)
        if not (experiment_id and mlflow_run_id):
            return None
        return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{mlflow_run_id}"


def _context(request: Request) -> ServerContext:
    context: ServerContext = request.app.state.context
    return context


Context = Annotated[ServerContext, Depends(_context)]
