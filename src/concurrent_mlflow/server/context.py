"""What every request handler needs: the store, MLflow, the executor (for logs) and the server's settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from concurrent_mlflow.executors.base import Executor
from concurrent_mlflow.settings import Paths, is_loopback
from concurrent_mlflow.store import Store
from concurrent_mlflow.tracking import Tracking


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    auth: bool | None = None  # None: on unless bound to loopback
    work_dir: Path = field(default_factory=Path.cwd)
    max_body_bytes: int = 1024 * 1024
    max_parallel: int | None = None
    lease_seconds: float = 15.0

    @property
    def auth_enabled(self) -> bool:
        return self.auth if self.auth is not None else not is_loopback(self.host)


@dataclass
class ServerContext:
    store: Store
    tracking: Tracking
    executor: Executor
    settings: ServerSettings
    paths: Paths
    server_id: str


def _context(request: Request) -> ServerContext:
    context: ServerContext = request.app.state.context
    return context


Context = Annotated[ServerContext, Depends(_context)]
