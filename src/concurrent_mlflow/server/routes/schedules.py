"""/api/v1/schedules: cron schedules that start micro-batch runs of a stored DAG.

Each tick runs the DAG's newest version over the window `[end of the last successful run's window, tick)`;
sources marked `incremental: true` list only files modified inside it. Ticks missed while no server drove
the engine coalesce into one run. Editors of a DAG manage its schedules; readers see them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from concurrent_mlflow.cron import Cron, parse_cron
from concurrent_mlflow.engine.start import prepare_stored_run
from concurrent_mlflow.errors import NotFoundError
from concurrent_mlflow.server import schemas as api
from concurrent_mlflow.server.auth import Caller, readable, require
from concurrent_mlflow.server.context import Context, ServerContext
from concurrent_mlflow.store import catalog
from concurrent_mlflow.store import schedules as stored
from concurrent_mlflow.store.access import Identity, Role
from concurrent_mlflow.store.models import ScheduleRow, utcnow

router = APIRouter(prefix="/schedules", tags=["schedules"])
ScheduleId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Schedule id.")]
POLICY = f"Overlap: {api.OVERLAP_HELP} Missed ticks: {api.MISSED_HELP}"


@router.get("", response_model=api.Page[api.ScheduleInfo], summary="List schedules")
def list_schedules(
    context: Context,
    caller: Caller,
    dag: Annotated[str | None, Query(pattern=api.NAME, description="Only this DAG's schedules.")] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> api.Page[api.ScheduleInfo]:
    rows, total = stored.list_schedules(
        context.store, dag=dag, dag_names=readable(context, caller), offset=offset, limit=limit
    )
    items = _infos(context, rows)
    next_offset = offset + len(items) if offset + len(items) < total else None
    return api.Page(items=items, total=total, offset=offset, next_offset=next_offset)


@router.post(
    "",
    status_code=201,
    response_model=api.ScheduleInfo,
    summary="Schedule a stored DAG (editor)",
    description="The DAG, its overrides and projects are checked now, as `POST /runs` checks them; the "
    "first tick is the first after now. Relative paths in the DAG resolve against the server's work dir. "
    + POLICY,
)
def create_schedule(body: api.ScheduleCreate, context: Context, caller: Caller) -> api.ScheduleInfo:
    require(context, caller, body.dag, "editor")
    catalog.get_version(context.store, body.dag)  # an unknown DAG is a 404 before anything else
    cron = parse_cron(body.cron, body.timezone)
    _check_runnable(context, body.dag, body.overrides)
    row = stored.create(
        context.store,
        dag_name=body.dag,
        cron=cron,
        overrides=body.overrides,
        overlap=body.overlap,
        enabled=body.enabled,
        created_by=caller.user,
        now=utcnow(),
    )
    return _info(context, row)


@router.get("/{schedule_id}", response_model=api.ScheduleInfo, summary="One schedule")
def get_schedule(schedule_id: ScheduleId, context: Context, caller: Caller) -> api.ScheduleInfo:
    return _info(context, _visible(context, caller, schedule_id, "reader"))


@router.patch(
    "/{schedule_id}",
    response_model=api.ScheduleInfo,
    summary="Pause, resume or change a schedule (editor)",
    description="Only the fields given change. A new cron or time zone, or a resume, plans the next tick "
    "from now: ticks of a paused spell are not fired late, but the next run's window still starts where "
    "the last successful one ended, so no data is left out. " + POLICY,
)
def update_schedule(
    schedule_id: ScheduleId, body: api.ScheduleUpdate, context: Context, caller: Caller
) -> api.ScheduleInfo:
    row = _visible(context, caller, schedule_id, "editor")
    cron: Cron | None = None
    if body.cron is not None or body.timezone is not None:
        cron = parse_cron(body.cron or row.cron, body.timezone or row.timezone)
    if body.overrides is not None:
        _check_runnable(context, row.dag_name, body.overrides)
    updated = stored.update(
        context.store,
        schedule_id,
        now=utcnow(),
        cron=cron,
        overlap=body.overlap,
        overrides=body.overrides,
        enabled=body.enabled,
    )
    return _info(context, updated)


@router.delete(
    "/{schedule_id}", status_code=204, summary="Delete a schedule (editor); the runs it started stay"
)
def delete_schedule(schedule_id: ScheduleId, context: Context, caller: Caller) -> Response:
    _visible(context, caller, schedule_id, "editor")
    stored.delete(context.store, schedule_id)
    return Response(status_code=204)


def _check_runnable(context: ServerContext, dag: str, overrides: dict[str, str]) -> None:
    """Refuse a schedule whose every tick would fail: overrides that do not fit, paths or local tasks the
    execution policy refuses, missing projects."""
    prepare_stored_run(
        context.store,
        dag,
        overrides=overrides,
        base_dir=context.settings.work_dir,
        cache_dir=context.paths.cache,
        policy=context.policy,
    )


def _visible(context: ServerContext, caller: Identity, schedule_id: int, role: Role) -> ScheduleRow:
    """The schedule, if the caller has `role` on its DAG; one they may not see is "not found", like a
    missing one, so schedule ids do not reveal DAG names."""
    row = stored.get(context.store, schedule_id)
    try:
        require(context, caller, row.dag_name, role)
    except NotFoundError:
        raise stored.not_found(schedule_id) from None
    return row


def _infos(context: ServerContext, rows: list[ScheduleRow]) -> list[api.ScheduleInfo]:
    last = stored.last_runs(context.store, [r.id for r in rows])
    return [_build(row, last.get(row.id)) for row in rows]


def _info(context: ServerContext, row: ScheduleRow) -> api.ScheduleInfo:
    return _infos(context, [row])[0]


def _build(row: ScheduleRow, last: stored.LastRun | None) -> api.ScheduleInfo:
    return api.ScheduleInfo(
        id=row.id,
        dag=row.dag_name,
        cron=row.cron,
        timezone=row.timezone,
        overlap="queue" if row.overlap == "queue" else "skip",
        overrides=row.overrides,
        enabled=row.enabled,
        next_fire_at=row.next_fire_at,
        last_fire_at=row.last_fire_at,
        queued_fire_at=row.queued_fire_at,
        last_error=row.last_error,
        last_run_id=last.id if last else None,
        last_run_state=last.state if last else None,
        created_by=row.created_by,
        created_at=row.created_at,
    )
