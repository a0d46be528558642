"""`mlflow server --app-name concurrent`: MLflow's own server and UI, with Concurrent's API, engine and UI
mounted under /concurrent/, a "DAGs" entry added to MLflow's navigation, and a link from every run that a
DAG run made back to that DAG run in our UI.

MLflow's UI is a prebuilt React bundle, so the entry and the links are added by a small script (nav.js) that
this app puts into MLflow's index.html. The engine tracks to this very server (http://127.0.0.1:<port>),
unless CONCURRENT_TRACKING_URI names another URL for it; CONCURRENT_HOME, CONCURRENT_STORE and
CONCURRENT_WORK_DIR (default: the current dir) mean what they mean for `concurrent server`, and so do
CONCURRENT_LOCAL_ROOTS and CONCURRENT_ALLOW_LOCAL_EXECUTION (its --allow-local-root/-execution).
Under uvicorn's default of 4 workers every worker serves the API and one drives the engine (the store's
lease); with the default SQLite store prefer `--workers 1`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from itertools import pairwise
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from concurrent_mlflow.policy import local_execution_from_env, roots_from_env
from concurrent_mlflow.server.app import build
from concurrent_mlflow.server.context import ServerSettings
from concurrent_mlflow.settings import Paths

MOUNT = "/concurrent"
NAV_SCRIPT = Path(__file__).with_name("nav.js")
NAV_TAG = f'<script defer src="{MOUNT}/mlflow-nav.js"></script>'.encode()


def create_app() -> Starlette:
    """The ASGI app MLflow's server runs (entry point `mlflow.app`: `concurrent`, a factory)."""
    host, port = bound_address(sys.argv)
    # Not MLFLOW_TRACKING_URI: `mlflow server` points that at its own backend store (sqlite://...), which
    # cannot take artifacts; the engine and its tasks must go through this server's HTTP API.
    elsewhere = os.environ.get("CONCURRENT_TRACKING_URI")
    tracking_uri = elsewhere or f"http://{_reachable(host)}:{port}"
    from mlflow.server.fastapi_app import app as mlflow_app

    work_dir = Path(os.environ.get("CONCURRENT_WORK_DIR") or Path.cwd()).resolve()
    paths = Paths.from_env()
    # Links to run pages stay on the origin the browser uses for this server (not 127.0.0.1).
    settings = ServerSettings(
        host=host,
        port=port,
        work_dir=work_dir,
        mlflow_ui=None if elsewhere else "",
        local_roots=roots_from_env(),
        allow_local_execution=local_execution_from_env(),
    )
    ours, _context = build(settings, paths, paths.store_url, tracking_uri)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # Mounted apps get no lifespan events of their own: run MLflow's and ours (the engine loop) here.
        async with mlflow_app.router.lifespan_context(mlflow_app), ours.router.lifespan_context(ours):
            yield

    async def nav_script(_request: Request) -> FileResponse:
        return FileResponse(NAV_SCRIPT, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    async def to_mount(_request: Request) -> RedirectResponse:
        return RedirectResponse(f"{MOUNT}/")

    routes = [
        Route(f"{MOUNT}/mlflow-nav.js", nav_script),
        Route(MOUNT, to_mount),
        Mount(MOUNT, app=ours),
        Mount("/", app=WithNavScript(mlflow_app)),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


class WithNavScript:
    """Adds nav.js to the HTML pages MLflow serves (its index.html); every other response passes as is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not _is_page(scope["path"]):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body: list[bytes] = []

        async def buffer(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            body.append(message.get("body", b""))
            if message.get("more_body"):
                return
            assert start is not None
            content = b"".join(body)
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            if any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                content = content.replace(b"</body>", NAV_TAG + b"</body>", 1)
            headers.append((b"content-length", str(len(content)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": content})

        await self.app(scope, receive, buffer)


def _is_page(path: str) -> bool:
    return path == "/" or path.endswith((".html", "/"))


def bound_address(argv: Sequence[str]) -> tuple[str, int]:
    """The --host and --port uvicorn was started with (how `mlflow server` runs us); MLflow's defaults."""
    host, port = "127.0.0.1", 5000
    for flag, value in pairwise(argv):
        if flag == "--host":
            host = value
        elif flag == "--port":
            port = int(value)
    return host, port


def _reachable(host: str) -> str:
    """An address this process can reach itself on: a wildcard bind is reached on loopback."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
