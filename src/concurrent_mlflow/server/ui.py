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

from concurrent_mlflow.errors import NotFoundError

STATIC = Path(__file__).parent / "static"
BASE_TAG = '<base href="/" />'
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
    """Serve the UI's assets and its index for every other GET; call after the API routes are added."""
    if (STATIC / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=STATIC / "assets"), name="ui-assets")

    @app.get("/{path:path}", include_in_schema=False)
    def ui_index(path: str, request: Request) -> HTMLResponse:
        if path.startswith(api_prefix.strip("/") + "/") or path == api_prefix.strip("/"):
            raise NotFoundError(f"No API endpoint {request.url.path}; see {api_prefix}/docs.")
        headers = {"Cache-Control": "no-cache"}
        return HTMLResponse(index_html(request.scope.get("root_path", "")), headers=headers)
