"""Who is calling, and may they? Bearer tokens when auth is on; roles per DAG on every endpoint.

With auth off (the default on loopback) every caller is the local admin. A caller with no role at all on a
DAG is told it does not exist (404), so DAG names do not leak; one with too small a role gets 403.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from concurrent_mlflow.errors import AuthenticationError, DagNotFoundError, PermissionDeniedError
from concurrent_mlflow.run_tags import LOCAL_USER
from concurrent_mlflow.server.context import Context, ServerContext
from concurrent_mlflow.store import access
from concurrent_mlflow.store.access import Identity, Role

LOCAL_ADMIN = Identity(LOCAL_USER, admin=True)


def _identity(request: Request, context: Context) -> Identity:
    if not context.settings.auth_enabled:
        return LOCAL_ADMIN
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "This server requires a bearer token (Authorization: Bearer <token>); "
            "create one with `concurrent token create` and set CONCURRENT_TOKEN."
        )
    return access.verify_token(context.store, token.strip())


Caller = Annotated[Identity, Depends(_identity)]


def require(context: ServerContext, caller: Identity, dag_name: str, needed: Role) -> None:
    if caller.admin:
        return
    role = access.role_of(context.store, dag_name, caller.user)
    if role is None:
        raise DagNotFoundError(f"No DAG named {dag_name!r} (or you have no role on it).")
    if not access.allows(role, needed):
        raise PermissionDeniedError(
            f"{caller.user} is {role} on DAG {dag_name!r}; this needs {needed}. Ask its owner for a grant."
        )


def require_admin(caller: Identity, what: str) -> None:
    if not caller.admin:
        raise PermissionDeniedError(f"Only an admin may {what}; create an admin token with `--admin`.")


def readable(context: ServerContext, caller: Identity) -> set[str] | None:
    """DAG names the caller may read; None means all."""
    return None if caller.admin else access.readable_dags(context.store, caller.user)
