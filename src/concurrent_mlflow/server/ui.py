"""The web UI: the Vite build in `static/`, served beside the API. Every path that is not an API call or an
asset gets index.html (the UI routes in the browser), with `<base href>` set to where the app is mounted, so
the same build works at `/` (`concurrent server`) and at `/concurrent/` (inside `mlflow server`)."""

from __future__ import annotations

import html
from functools import lru_cache
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from concurrent_mlflow.errors import NotFoundError
from concurrent_mlflow.server import problems

STATIC = Path(__file__).parent / "static"
BASE_TAG = '<base href="/" />'
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Concurrent for MLflow</title>
</head><body><h1>The web UI is not built</h1><p>This installation has no UI assets. From a source checkout,
run <code>make ui</code> (or <code>make install</code>), then reload. The REST API is at
<a href="{root}/api/v1/docs">{root}/api/v1/docs</a>.</p></body></html>"""


def _index_template() -> str | None:
    index = STATIC / "index.html"
    try:
        return _read(index, index.stat().st_mtime_ns)
    except FileNotFoundError:
        return None


@lru_cache(maxsize=4)
def _read(index: Path, _mtime_ns: int) -> str:
    """Keyed on the file's mtime: a rebuilt UI (new asset names) is picked up without a restart."""
    return index.read_text(encoding="utf-8")


def index_html(root_path: str) -> str:
    """index.html with its base set to the mount point (`root_path` is '' or e.g. '/concurrent')."""
    root = html.escape(root_path.rstrip("/"), quote=True)
    template = _index_template()
    if template is None:
        return NOT_BUILT.format(root=root)
    return template.replace(BASE_TAG, f'<base href="{root}/" />', 1)


def install(app: FastAPI, api_prefix: str) -> None:
    """Serve the UI's assets and its index for every other GET; call after the API routes are added.

    The fallback takes every method, so that a request to no API endpoint is a 404 problem (and one with a
    method its endpoint lacks a 405 naming those it has), never the UI's page nor a bare 405."""
    if (STATIC / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=STATIC / "assets"), name="ui-assets")
    api_root = api_prefix.strip("/")

    @app.api_route("/{path:path}", methods=list(METHODS), include_in_schema=False)
    def fallback(path: str, request: Request) -> HTMLResponse:
        if path == api_root or path.startswith(f"{api_root}/"):
            if problems.allowed_methods(request):
                raise StarletteHTTPException(405, f"{request.method} is not allowed on {request.url.path}.")
            raise NotFoundError(f"No API endpoint {request.url.path}; see {api_prefix}/docs.")
        if request.method not in ("GET", "HEAD"):
            detail = f"{request.url.path} is a page of the web UI; it takes GET only."
            raise StarletteHTTPException(405, detail, headers={"Allow": "GET, HEAD"})
        headers = {"Cache-Control": "no-cache"}
        return HTMLResponse(index_html(request.scope.get("root_path", "")), headers=headers)
