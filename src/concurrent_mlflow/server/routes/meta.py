"""/api/v1/health and /api/v1/whoami."""

from __future__ import annotations

from fastapi import APIRouter

from concurrent_mlflow.server import schemas as api
from concurrent_mlflow.server.auth import Caller
from concurrent_mlflow.server.context import Context
from concurrent_mlflow.store import lease

router = APIRouter(tags=["meta"])


@router.get("/health", response_model=api.Health, summary="Liveness, and which server drives the engine")
def health(context: Context) -> api.Health:
    return api.Health(status="ok", leader=lease.holder(context.store), this_server=context.server_id)


@router.get("/whoami", response_model=api.WhoAmI, summary="The caller's user name and whether auth is on")
def whoami(context: Context, caller: Caller) -> api.WhoAmI:
    return api.WhoAmI(user=caller.user, admin=caller.admin, auth=context.settings.auth_enabled)
