"""/api/v1/runs: start DAG runs, watch them per node and per partition, cancel, retry, read task logs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse

from concurrent_mlflow.engine import logs
from concurrent_mlflow.engine.start import start_stored_run
from concurrent_mlflow.errors import DagValidationError, NotFoundError, Problem, RunNotFoundError
from concurrent_mlflow.server import schemas as api
from concurrent_mlflow.server.auth import Caller, readable, require, require_admin
from concurrent_mlflow.server.context import Context, ServerContext
from concurrent_mlflow.server.etag import NOT_MODIFIED, json_with_etag
from concurrent_mlflow.store import catalog, drivers, queries
from concurrent_mlflow.store import transitions as tx
from concurrent_mlflow.store.access import Identity, Role
from concurrent_mlflow.store.models import RunRow
from concurrent_mlflow.store.states import TaskState

router = APIRouter(prefix="/runs", tags=["runs"])
RunId = Annotated[str, Path(pattern=r"^[0-9a-f]{1,32}$", description="Run id.")]
NodeId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9-]{0,39}$", description="Node id.")]
States = Annotated[str | None, Query(pattern="^(" + "|".join(s.value for s in TaskState) + ")$")]
FOLLOW_POLL_SECONDS = 0.5


@router.post("", status_code=201, response_model=api.RunDetail, summary="Start a run of a stored DAG")
def start_run(body: api.RunStart, context: Context, caller: Caller) -> api.RunDetail:
    require(context, caller, body.dag, "runner")
    catalog.get_version(context.store, body.dag, body.version)  # an unknown DAG is a 404 before all else
    base_dir = context.settings.work_dir
    if body.base_dir is not None:
        require_admin(caller, "choose the directory a run's relative paths resolve against")
        base_dir = FsPath(body.base_dir)
        if not base_dir.is_absolute():
            raise DagValidationError([Problem("base_dir", f"{body.base_dir!r} is not an absolute directory")])
        context.policy.check_base_dir(base_dir)  # before is_dir(): a refusal says nothing of what exists
        if not base_dir.is_dir():
            raise DagValidationError([Problem("base_dir", f"{body.base_dir!r} is not an absolute directory")])
    run_id = start_stored_run(
        context.store,
        body.dag,
        version=body.version,
        overrides=body.overrides,
        base_dir=base_dir,
        cache_dir=context.paths.cache,
        policy=context.policy,
        created_by=caller.user,
    )
    context.wake_engine()
    return _detail(context, run_id)


@router.get("", response_model=api.Page[api.RunInfo], summary="List runs, newest first")
def list_runs(
    context: Context,
    caller: Caller,
    dag: Annotated[str | None, Query(pattern=api.NAME)] = None,
    state: States = None,
    schedule: Annotated[
        int | None, Query(ge=1, le=2**31 - 1, description="Only the runs this schedule started.")
    ] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> api.Page[api.RunInfo]:
    rows, total = queries.list_runs(
        context.store,
        dag_names=readable(context, caller),
        dag=dag,
        state=state,
        schedule_id=schedule,
        offset=offset,
        limit=limit,
    )
    items = [_info(context, row) for row in rows]
    next_offset = offset + len(items) if offset + len(items) < total else None
    return api.Page(items=items, total=total, offset=offset, next_offset=next_offset)


@router.get(
    "/{run_id}",
    response_model=api.RunDetail,
    summary="A run with per-node status and counts (ETag: poll with If-None-Match)",
    responses=NOT_MODIFIED,
)
def get_run(run_id: RunId, request: Request, context: Context, caller: Caller) -> Response:
    _readable_run(context, caller, run_id, "reader")
    return json_with_etag(request, _detail(context, run_id))


@router.get(
    "/{run_id}/dag",
    response_class=PlainTextResponse,
    summary="The DAG document (YAML) this run executes, overrides not applied",
    responses={200: {"content": {"application/yaml": {}}}},
)
def run_dag(run_id: RunId, context: Context, caller: Caller) -> PlainTextResponse:
    run = _readable_run(context, caller, run_id, "reader")
    return PlainTextResponse(run.dag_yaml, media_type="application/yaml")


@router.get(
    "/{run_id}/tasks",
    response_model=api.Page[api.TaskStatus],
    summary="Per-partition status (ETag: poll with If-None-Match)",
    responses=NOT_MODIFIED,
)
def list_tasks(
    run_id: RunId,
    request: Request,
    context: Context,
    caller: Caller,
    node: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9-]{0,39}$")] = None,
    state: States = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    run = _readable_run(context, caller, run_id, "reader")
    views, total = queries.list_tasks(
        context.store, run_id, node=node, state=state, offset=offset, limit=limit
    )
    items = [
        api.TaskStatus(**vars(v), mlflow_url=context.mlflow_link(run.experiment_id, v.mlflow_run_id))
        for v in views
    ]
    next_offset = offset + len(items) if offset + len(items) < total else None
    page = api.Page[api.TaskStatus](items=items, total=total, offset=offset, next_offset=next_offset)
    return json_with_etag(request, page)


@router.post("/{run_id}/cancel", status_code=202, response_model=api.Accepted, summary="Cancel a run")
def cancel_run(run_id: RunId, context: Context, caller: Caller) -> api.Accepted:
    _readable_run(context, caller, run_id, "runner")
    asked = tx.request_cancel(context.store, run_id, f"cancelled by {caller.user}")
    context.wake_engine()
    state = queries.run_view(context.store, run_id)
    assert state is not None
    detail = "the engine is stopping its tasks" if asked else "the run had already ended"
    return api.Accepted(id=run_id, state=state.state, detail=detail)


@router.post("/{run_id}/retry", response_model=api.RetryResult, summary="Re-run what did not succeed")
def retry_run(run_id: RunId, context: Context, caller: Caller) -> api.RetryResult:
    run = _readable_run(context, caller, run_id, "runner")
    drivers.take_ended(context.store, run_id, None, timedelta(0))  # a retried run is the server's to drive
    reset = tx.reset_for_retry(context.store, run_id)
    context.wake_engine()
    if run.mlflow_run_id:
        context.tracking.reopen(run.mlflow_run_id)
    return api.RetryResult(id=run_id, reset_tasks=reset)


@router.get(
    "/{run_id}/tasks/{node}/{partition}/log",
    response_class=StreamingResponse,
    summary="A task attempt's log; with follow=true it streams until the attempt ends",
    responses={200: {"content": {"text/plain": {}}}},
)
def task_log(
    run_id: RunId,
    node: NodeId,
    partition: Annotated[int, Path(ge=0, le=10_000_000)],
    context: Context,
    caller: Caller,
    attempt: Annotated[
        int | None, Query(ge=1, le=1000, description="Attempt number; the latest if omitted.")
    ] = None,
    follow: bool = False,
) -> StreamingResponse:
    _readable_run(context, caller, run_id, "reader")
    reader, first = logs.open_log(
        context.store, context.executors, context.tracking, run_id, node, partition, attempt
    )
    stream = _follow(reader, first) if follow else iter((first,))
    return StreamingResponse(stream, media_type="text/plain; charset=utf-8")


async def _follow(reader: logs.AttemptLog, first: bytes) -> AsyncIterator[bytes]:
    """The log so far, then new bytes as they are written, until the attempt has ended. Reads run in a
    thread (a pod's log is an API server round trip); the waits between them hold none."""
    if first:
        yield first
    while not reader.ended:
        await asyncio.sleep(FOLLOW_POLL_SECONDS)
        chunk = await asyncio.to_thread(reader.more)
        if chunk:
            yield chunk


def _readable_run(context: ServerContext, caller: Identity, run_id: str, role: Role) -> RunRow:
    with context.store.transaction() as session:
        run = session.get(RunRow, run_id)
    if run is None:
        raise RunNotFoundError(f"No run {run_id!r}; `GET /api/v1/runs` lists the runs you may see.")
    try:
        require(context, caller, run.dag_name, role)
    except NotFoundError:
        raise RunNotFoundError(f"No run {run_id!r}; `GET /api/v1/runs` lists the runs you may see.") from None
    return run


def _info(context: ServerContext, row: RunRow) -> api.RunInfo:
    return api.RunInfo(
        id=row.id,
        dag=row.dag_name,
        dag_version=row.dag_version,
        state=row.state,
        created_by=row.created_by,
        created_at=row.created_at,
        finished_at=row.finished_at,
        error=row.error,
        cancel_requested=row.cancel_requested,
        overrides=row.overrides,
        mlflow_run_id=row.mlflow_run_id,
        experiment_id=row.experiment_id,
        mlflow_url=context.mlflow_link(row.experiment_id, row.mlflow_run_id),
        schedule_id=row.schedule_id,
        window_start=row.window_start,
        window_end=row.window_end,
    )


def _detail(context: ServerContext, run_id: str) -> api.RunDetail:
    with context.store.transaction() as session:
        row = session.get(RunRow, run_id)
    view = queries.run_view(context.store, run_id)
    if row is None or view is None:
        raise RunNotFoundError(f"No run {run_id!r}.")
    stages = [
        api.StageStatus(
            node=s.node_id, state=s.state, partitions=s.partitions, counts=s.counts, error=s.error
        )
        for s in view.stages
    ]
    return api.RunDetail(**_info(context, row).model_dump(), stages=stages)
