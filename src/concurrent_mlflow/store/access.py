"""API tokens (only a hash is stored) and per-DAG roles.

A token reads `cmf_<id>_<secret>`: the id finds the row, the secret is checked against its SHA-256 in
constant time. Roles are ordered reader < runner < editor < owner; an admin token may do anything.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, select

from concurrent_mlflow.errors import AuthenticationError, NotFoundError
from concurrent_mlflow.store.db import Store
from concurrent_mlflow.store.models import GrantRow, TokenRow, utcnow

Role = Literal["reader", "runner", "editor", "owner"]
ROLES: tuple[Role, ...] = ("reader", "runner", "editor", "owner")
TOKEN_PREFIX = "cmf_"


@dataclass(frozen=True)
class Identity:
    user: str
    admin: bool


def create_token(store: Store, user: str, name: str, *, admin: bool = False) -> str:
    """A new token for `user`; the returned string is shown once and never stored."""
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    with store.transaction() as session:
        session.add(TokenRow(id=token_id, user=user, name=name, secret_hash=_hash(secret), admin=admin))
    return f"{TOKEN_PREFIX}{token_id}_{secret}"


def verify_token(store: Store, token: str) -> Identity:
    token_id, _, secret = token.removeprefix(TOKEN_PREFIX).partition("_")
    with store.transaction() as session:
        row = session.get(TokenRow, token_id) if token.startswith(TOKEN_PREFIX) else None
        if (
            row is None
            or row.revoked_at is not None
            or not hmac.compare_digest(row.secret_hash, _hash(secret))
        ):
            raise AuthenticationError(
                "The bearer token is unknown or revoked; create one with `concurrent token create`."
            )
        row.last_used_at = utcnow()
        return Identity(row.user, row.admin)


def list_tokens(store: Store) -> list[TokenRow]:
    with store.transaction() as session:
        return list(session.scalars(select(TokenRow).order_by(TokenRow.created_at)))


def revoke_token(store: Store, token_id: str) -> None:
    with store.transaction() as session:
        row = session.get(TokenRow, token_id.removeprefix(TOKEN_PREFIX).split("_")[0])
        if row is None:
            raise NotFoundError(f"No token with id {token_id!r}; `concurrent token list` shows them.")
        row.revoked_at = row.revoked_at or utcnow()


def role_of(store: Store, dag_name: str, user: str) -> Role | None:
    with store.transaction() as session:
        role = session.scalar(
            select(GrantRow.role).where(GrantRow.dag_name == dag_name, GrantRow.user == user)
        )
    return role if role in ROLES else None


def allows(role: Role | None, needed: Role) -> bool:
    return role is not None and ROLES.index(role) >= ROLES.index(needed)


def readable_dags(store: Store, user: str) -> set[str]:
    with store.transaction() as session:
        return set(session.scalars(select(GrantRow.dag_name).where(GrantRow.user == user)))


def grants(store: Store, dag_name: str) -> dict[str, Role]:
    with store.transaction() as session:
        rows = session.execute(select(GrantRow.user, GrantRow.role).where(GrantRow.dag_name == dag_name))
        return {user: role for user, role in rows}  # type: ignore[misc]


def grant(store: Store, dag_name: str, user: str, role: Role | None) -> None:
    """Give `user` a role on a DAG, or take it away (`role=None`)."""
    with store.transaction() as session:
        session.execute(delete(GrantRow).where(GrantRow.dag_name == dag_name, GrantRow.user == user))
        if role is not None:
            session.add(GrantRow(dag_name=dag_name, user=user, role=role))


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
