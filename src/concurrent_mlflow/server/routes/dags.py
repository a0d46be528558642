"""/api/v1/dags: stored, versioned DAG documents, their YAML import/export and who may use them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse

from concurrent_mlflow.dag import Dag, parse_dag
from concurrent_mlflow.errors import ConflictError, DagValidationError, Problem
from concurrent_mlflow.plan import check_projects
from concurrent_mlflow.server import schemas as api
from concurrent_mlflow.server.auth import Caller, readable, require
from concurrent_mlflow.server.context import Context
from concurrent_mlflow.store import access, catalog
from concurrent_mlflow.store.models import DagRow

router = APIRouter(prefix="/dags", tags=["dags"])
DagName = Annotated[str, Path(pattern=api.NAME, description="DAG name.")]
UserName = Annotated[str, Path(pattern=api.NAME, description="User name.")]
YAML_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/yaml": {"schema": {"type": "string", "maxLength": api.MAX_YAML}}},
    }
}


@router.get("", response_model=api.Page[api.DagSummary], summary="List DAGs")
def list_dags(
    context: Context,
    caller: Caller,
    search: Annotated[
        str | None,
        Query(max_length=100, pattern=r"^[^\x00]*$", description="Substring of name or description."),
    ] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> api.Page[api.DagSummary]:
    rows, total = catalog.list_dags(
        context.store, search=search, names=readable(context, caller), offset=offset, limit=limit
    )
    items = [api.DagSummary.model_validate(row, from_attributes=True) for row in rows]
    return api.Page(items=items, total=total, offset=offset, next_offset=_next(offset, len(items), total))


@router.post("", status_code=201, response_model=api.DagVersion, summary="Create a DAG (version 1)")
def create_dag(body: api.DagWrite, context: Context, caller: Caller) -> api.DagVersion:
    dag = parse_dag(body.yaml, "the DAG document")
    context.policy.check_dag(dag, context.settings.work_dir)
    row = catalog.save_version(
        context.store, dag.name, body.yaml, description=_description(body, dag), user=caller.user, create=True
    )
    return _version(row)


@router.post(
    "/validate",
    response_model=api.ValidationResult,
    summary="Check a document as a run would (graph, projects, entry points, parameter types); saves nothing",
)
def validate_dag(body: api.DagCheck, context: Context, _caller: Caller) -> api.ValidationResult:
    try:
        dag = parse_dag(body.yaml, "the DAG document")
        context.policy.check_dag(dag, context.settings.work_dir)  # a PolicyError is a 403, not a result
        check_projects(dag, base_dir=context.settings.work_dir, cache_dir=context.paths.cache)
    except DagValidationError as exc:
        errors = [api.ProblemLocation(location=p.location, message=p.message) for p in exc.problems]
        return api.ValidationResult(valid=False, errors=errors)
    return api.ValidationResult(valid=True, errors=[])


@router.post(
    "/import",
    status_code=201,
    response_model=api.DagVersion,
    summary="Import a YAML document: a new DAG, or a new version of an existing one",
    openapi_extra=YAML_BODY,
)
async def import_dag(request: Request, context: Context, caller: Caller) -> api.DagVersion:
    raw = await request.body()
    if len(raw) > api.MAX_YAML:
        detail = f"The document is {len(raw)} bytes; a DAG document may have at most {api.MAX_YAML}."
        raise HTTPException(413, detail)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DagValidationError([Problem("", f"the document is not UTF-8 text: {exc}")]) from exc
    dag = parse_dag(text, "the imported document")
    context.policy.check_dag(dag, context.settings.work_dir)
    exists = catalog.exists(context.store, dag.name)
    if exists and not caller.admin and access.role_of(context.store, dag.name, caller.user) is None:
        raise ConflictError(f"A DAG named {dag.name!r} exists and you have no role on it; rename yours.")
    if exists:
        require(context, caller, dag.name, "editor")
    row = catalog.save_version(
        context.store, dag.name, text, description=dag.description, user=caller.user, create=not exists
    )
    return _version(row)


@router.get("/{name}", response_model=api.DagVersion, summary="The newest version of a DAG")
def get_dag(name: DagName, context: Context, caller: Caller) -> api.DagVersion:
    require(context, caller, name, "reader")
    return _version(catalog.get_version(context.store, name))


@router.put("/{name}", response_model=api.DagVersion, summary="Save a new version of a DAG")
def update_dag(name: DagName, body: api.DagWrite, context: Context, caller: Caller) -> api.DagVersion:
    require(context, caller, name, "editor")
    dag = parse_dag(body.yaml, "the DAG document")
    if dag.name != name:
        raise DagValidationError(
            [Problem("name", f"the document is named {dag.name!r} but is saved as {name!r}; rename one")]
        )
    context.policy.check_dag(dag, context.settings.work_dir)
    row = catalog.save_version(
        context.store, name, body.yaml, description=_description(body, dag), user=caller.user, create=False
    )
    return _version(row)


@router.delete("/{name}", status_code=204, summary="Delete a DAG, all its versions and schedules")
def delete_dag(name: DagName, context: Context, caller: Caller) -> Response:
    require(context, caller, name, "owner")
    catalog.delete_dag(context.store, name)
    return Response(status_code=204)


@router.get("/{name}/versions", response_model=list[api.DagVersionInfo], summary="Versions, newest first")
def list_versions(name: DagName, context: Context, caller: Caller) -> list[api.DagVersionInfo]:
    require(context, caller, name, "reader")
    return [
        api.DagVersionInfo.model_validate(r, from_attributes=True)
        for r in catalog.versions(context.store, name)
    ]


@router.get("/{name}/versions/{version}", response_model=api.DagVersion, summary="One version of a DAG")
def get_version(
    name: DagName, version: Annotated[int, Path(ge=1, le=1_000_000)], context: Context, caller: Caller
) -> api.DagVersion:
    require(context, caller, name, "reader")
    return _version(catalog.get_version(context.store, name, version))


@router.get(
    "/{name}/export",
    response_class=PlainTextResponse,
    summary="The stored YAML of a version (the newest by default)",
    responses={200: {"content": {"application/yaml": {}}}},
)
def export_dag(
    name: DagName,
    context: Context,
    caller: Caller,
    version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> PlainTextResponse:
    require(context, caller, name, "reader")
    row = catalog.get_version(context.store, name, version)
    headers = {"Content-Disposition": f'attachment; filename="{row.name}-v{row.version}.yaml"'}
    return PlainTextResponse(row.yaml, media_type="application/yaml", headers=headers)


@router.get("/{name}/grants", response_model=dict[str, access.Role], summary="Who has which role")
def list_grants(name: DagName, context: Context, caller: Caller) -> dict[str, access.Role]:
    require(context, caller, name, "owner")
    return access.grants(context.store, name)


@router.put("/{name}/grants/{user}", status_code=204, summary="Give a user a role on this DAG")
def put_grant(
    name: DagName, user: UserName, body: api.GrantWrite, context: Context, caller: Caller
) -> Response:
    require(context, caller, name, "owner")
    catalog.get_version(context.store, name)
    access.grant(context.store, name, user, body.role)
    return Response(status_code=204)


@router.delete("/{name}/grants/{user}", status_code=204, summary="Take a user's role away")
def delete_grant(name: DagName, user: UserName, context: Context, caller: Caller) -> Response:
    require(context, caller, name, "owner")
    access.grant(context.store, name, user, None)
    return Response(status_code=204)


def _description(body: api.DagWrite, dag: Dag) -> str | None:
    return body.description if body.description is not None else dag.description


def _version(row: DagRow) -> api.DagVersion:
    return api.DagVersion.model_validate(row, from_attributes=True)


def _next(offset: int, count: int, total: int) -> int | None:
    return offset + count if offset + count < total else None
