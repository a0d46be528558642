"""`concurrent server`: the REST API under /api/v1 and, beside it, the engine loop (while this server holds
the engine lease). One process; several may share a PostgreSQL database."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI

from concurrent_mlflow import __version__
from concurrent_mlflow.engine import Engine, EngineSettings
from concurrent_mlflow.engine.scheduler import fire_due, stored_dag_starter
from concurrent_mlflow.executors import registry
from concurrent_mlflow.executors.base import Executor
from concurrent_mlflow.executors.local import LocalExecutor
from concurrent_mlflow.executors.task_user import TaskUser
from concurrent_mlflow.server import problems, schemas, ui
from concurrent_mlflow.server.body_limit import BodyLimit
from concurrent_mlflow.server.context import ServerContext, ServerSettings
from concurrent_mlflow.server.loop import EngineLoop
from concurrent_mlflow.server.routes import clusters, dags, meta, projects, runs, schedules
from concurrent_mlflow.settings import Paths, make_private
from concurrent_mlflow.store import open_store
from concurrent_mlflow.store.models import utcnow
from concurrent_mlflow.tracking import Tracking

API_PREFIX = "/api/v1"
log = logging.getLogger("concurrent.server")


def create_app(context: ServerContext, loop: EngineLoop | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if loop:
            loop.start()
        try:
            yield
        finally:
            if loop:
                loop.stop()
            context.executors.close()

    app = FastAPI(
        title="Concurrent for MLflow",
        version=__version__,
        summary="Run DAGs of MLflow Projects with data-parallel fan-out.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=context.settings.max_body_bytes)
    app.state.context = context
    problems.install(app)
    api = APIRouter(prefix=API_PREFIX, responses=schemas.PROBLEM_RESPONSES)
    for module in (meta, dags, runs, schedules, clusters, projects):
        api.include_router(module.router)
    app.include_router(api)
    ui.install(app, API_PREFIX)
    app.openapi = lambda: _openapi_with_problems(app)  # type: ignore[method-assign]
    return app


def _openapi_with_problems(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the problem schema that every documented error response refers to."""
    if app.openapi_schema is None:
        document = FastAPI.openapi(app)
        problem = schemas.ProblemDocument.model_json_schema(ref_template="#/components/schemas/{model}")
        components = document.setdefault("components", {}).setdefault("schemas", {})
        components.update(problem.pop("$defs", {}))
        components["ProblemDocument"] = problem
    return app.openapi_schema or {}


def build(
    settings: ServerSettings,
    paths: Paths,
    store_url: str,
    tracking_uri: str,
    *,
    engine: bool = True,
    executor: Executor | None = None,
) -> tuple[FastAPI, ServerContext]:
    make_private(paths)
    store = open_store(store_url)
    tracking = Tracking(tracking_uri)
    server_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    policy = settings.policy(paths)
    task_user = _task_user(settings, paths)
    executor = executor or LocalExecutor(log_root=paths.logs, scratch_root=paths.scratch, task_user=task_user)
    executors = registry.standard(paths, store, tracking, local=executor)
    log.info("execution policy: %s; local tasks %s", policy.describe(), _allowed(policy.local_execution))
    context = ServerContext(store, tracking, executors, settings, paths, server_id, policy)
    loop = None
    if engine:
        engine_settings = EngineSettings(
            cache_dir=paths.cache,
            max_parallel=settings.max_parallel or os.cpu_count() or 1,
            poll_interval=0.5,
            policy=policy,
        )
        starter = stored_dag_starter(store, base_dir=settings.work_dir, cache_dir=paths.cache, policy=policy)

        def fire_schedules() -> None:
            assert loop is not None
            fire_due(store, utcnow(), starter, keep_going=loop.still_leader)

        reconciler = Engine(store, tracking, executors, engine_settings)
        context.wake_engine = reconciler.wake.set
        loop = EngineLoop(
            reconciler,
            server_id,
            lease_seconds=settings.lease_seconds,
            poll_seconds=engine_settings.poll_interval,
            extra_pass=fire_schedules,
        )
    return create_app(context, loop), context


def _task_user(settings: ServerSettings, paths: Paths) -> TaskUser | None:
    """The checked, prepared user local tasks run as; without one, a warning where it matters."""
    if settings.task_user is None:
        if settings.auth_enabled and settings.allow_local_execution and os.geteuid() == 0:
            log.warning(
                "local tasks run as root and can read everything this server can (secret.key, the store): "
                "give them an unprivileged user with --task-user (see 'Security model' in the README)"
            )
        return None
    user = TaskUser.lookup(settings.task_user)
    user.prepare(paths.private())
    log.info("local tasks run as %s (uid %d, gid %d) under %s", user.name, user.uid, user.gid, user.root)
    return user


def _allowed(allowed: bool) -> str:
    return "allowed" if allowed else "refused (nodes must name a cluster)"


def serve(settings: ServerSettings, paths: Paths, store_url: str, tracking_uri: str) -> None:
    app, context = build(settings, paths, store_url, tracking_uri)
    log.info(
        "server %s on http://%s:%d (auth %s)",
        context.server_id,
        settings.host,
        settings.port,
        "on" if settings.auth_enabled else "off",
    )
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=False)
