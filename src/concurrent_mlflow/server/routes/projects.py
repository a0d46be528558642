"""/api/v1/projects: what an MLproject offers (entry points, typed parameters), for the DAG designer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from concurrent_mlflow.project import resolve_project
from concurrent_mlflow.server import schemas as api
from concurrent_mlflow.server.auth import Caller
from concurrent_mlflow.server.context import Context

router = APIRouter(prefix="/projects", tags=["projects"])


@router.get("", response_model=api.ProjectInfo, summary="An MLproject's entry points and parameters")
def describe_project(
    context: Context,
    _caller: Caller,
    uri: Annotated[
        str,
        Query(
            min_length=1,
            max_length=2048,
            pattern=r"^[^\x00]*$",
            description="Local path (relative to the server's work dir) or git URI (`https://host/repo.git#sub`).",
        ),
    ],
    version: Annotated[
        str | None, Query(max_length=200, pattern=r"^[^\x00]*$", description="Git branch, tag or commit.")
    ] = None,
) -> api.ProjectInfo:
    base_dir = context.settings.work_dir
    context.policy.check_project_uri(uri, base_dir)  # first: a refused path is never looked at
    project = resolve_project(uri, version, base_dir=base_dir, cache_dir=context.paths.cache)
    entry_points = [
        api.EntryPointInfo(
            name=name,
            parameters=[
                api.ParameterInfo(name=p.name, type=p.type, default=p.default)
                for p in spec.parameters.values()
            ],
        )
        for name, spec in project.entry_points.items()
    ]
    return api.ProjectInfo(
        uri=uri,
        version=version,
        commit=project.commit,
        name=project.name,
        environment=project.env_type,
        entry_points=entry_points,
    )
