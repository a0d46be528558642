"""Errors as RFC 7807 problem documents (`application/problem+json`) with a message a person can act on."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from concurrent_mlflow.errors import (
    AuthenticationError,
    ClusterConfigError,
    ConcurrentError,
    ConflictError,
    DagValidationError,
    NotFoundError,
    PermissionDeniedError,
    PolicyError,
    ProjectError,
    ScheduleValidationError,
    SecretKeyError,
    SourceError,
    TrackingError,
)

log = logging.getLogger("concurrent.server")
PROBLEM_TYPE = "https://concurrent-mlflow.invalid/problems/"

# Most specific first: the first matching class decides the status.
STATUS: list[tuple[type[ConcurrentError], int, str, str]] = [
    (AuthenticationError, 401, "unauthenticated", "Authentication required"),
    (PermissionDeniedError, 403, "forbidden", "Not allowed"),
    (PolicyError, 403, "execution-policy", "Refused by the execution policy"),
    (NotFoundError, 404, "not-found", "Not found"),
    (ConflictError, 409, "conflict", "Conflict"),
    (ScheduleValidationError, 422, "invalid-schedule", "Invalid schedule"),
    (DagValidationError, 422, "invalid-dag", "Invalid DAG"),
    (ProjectError, 422, "invalid-project", "Invalid MLflow project"),
    (SourceError, 422, "invalid-source", "Invalid data source"),
    (ClusterConfigError, 422, "invalid-cluster", "Invalid cluster configuration"),
    (TrackingError, 502, "mlflow-unavailable", "MLflow unavailable"),
    (SecretKeyError, 500, "secret-key", "The server's secret key cannot be used"),
    (ConcurrentError, 400, "bad-request", "Bad request"),
]


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    instance: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": PROBLEM_TYPE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    headers = {**(headers or {}), **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
    return JSONResponse(
        {**body, **extra}, status_code=status, media_type="application/problem+json", headers=headers
    )


def _concurrent_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConcurrentError)
    status, slug, title = next((s, g, t) for cls, s, g, t in STATUS if isinstance(exc, cls))
    extra: dict[str, Any] = {}
    if isinstance(exc, DagValidationError | PolicyError):
        extra["errors"] = [{"location": p.location, "message": p.message} for p in exc.problems]
    return problem(status, slug, title, str(exc), request.url.path, **extra)


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"location": ".".join(str(part) for part in e.get("loc", ())), "message": str(e.get("msg", ""))}
        for e in exc.errors()
    ]
    detail = "; ".join(f"{e['location']}: {e['message']}" for e in errors[:5])
    return problem(422, "invalid-request", "Invalid request", detail, request.url.path, errors=errors)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed", 413: "too-large"}.get(exc.status_code, "http-error")
    title = slug.replace("-", " ").capitalize()
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and "Allow" not in headers:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem(exc.status_code, slug, title, str(exc.detail), request.url.path, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method served at this path, from the OpenAPI document: Starlette's own Allow header names only
    the first route whose path matched."""
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), request.url.path):
            methods |= {method.upper() for method in operations}
    return sorted(methods)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ConcurrentError, _concurrent_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    detail = "The server failed unexpectedly; its log has the details. Nothing was changed by this request."
    return problem(500, "internal", "Internal error", detail, request.url.path)
