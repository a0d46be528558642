"""`concurrent server`, `concurrent token` and `concurrent mlflow`: the services behind the CLI."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import click
from rich.table import Table

from concurrent_mlflow import local_mlflow
from concurrent_mlflow.cli.base import CliContext, console


@click.command("server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option(
    "--auth/--no-auth",
    default=None,
    help="Require bearer tokens [default: off on loopback, on when bound elsewhere].",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory that relative paths in stored DAGs resolve against [default: current dir].",
)
@click.option(
    "--max-parallel", type=click.IntRange(1), default=None, help="Local tasks at once [default: CPUs]."
)
@click.option(
    "--allow-local-root",
    "local_roots",
    multiple=True,
    envvar="CONCURRENT_LOCAL_ROOTS",
    type=click.Path(file_okay=False, path_type=Path),
    help="A directory DAGs may name local paths under (sources, projects, base_dir); repeatable, or "
    "CONCURRENT_LOCAL_ROOTS (os.pathsep-separated). The data dir stays unreadable even under one. "
    "[default: none with auth on; any path with auth off and no root given]",
)
@click.option(
    "--allow-local-execution",
    is_flag=True,
    envvar="CONCURRENT_ALLOW_LOCAL_EXECUTION",
    help="With auth on, run project and inference nodes that name no cluster on this machine, as this "
    "server's user (they can read what it reads) or as --task-user [default: off with auth on, so they "
    "must name a cluster; always on with auth off].",
)
@click.option(
    "--task-user",
    envvar="CONCURRENT_TASK_USER",
    metavar="USER",
    default=None,
    help="Run local tasks as this unprivileged OS user, who cannot read the data dir (the server must run "
    "as root, and MLFLOW_TRACKING_URI must name a tracking server that proxies artifacts) "
    "[env CONCURRENT_TASK_USER; default: the server's own user].",
)
@click.option(
    "--lease-seconds",
    type=click.FloatRange(1, 3600),
    default=15.0,
    show_default=True,
    help="Engine lease: with several servers on one store, how soon another takes over from a dead leader.",
)
@click.pass_obj
def server(
    obj: CliContext,
    host: str,
    port: int,
    auth: bool | None,
    work_dir: Path | None,
    max_parallel: int | None,
    local_roots: tuple[Path, ...],
    allow_local_execution: bool,
    task_user: str | None,
    lease_seconds: float,
) -> None:
    """Serve the web UI (/) and the REST API (/api/v1, OpenAPI at /api/v1/openapi.json), with the engine.

    The store is CONCURRENT_STORE (a SQLAlchemy URL such as postgresql://user@host/db) or SQLite under the
    data dir. Several servers may share one PostgreSQL store: one drives the engine, all serve the API.
    Without MLFLOW_TRACKING_URI a local MLflow server is started, and stopped again on exit if this
    command started it.

    With auth on, DAGs may name local paths only under --allow-local-root directories (git and object
    store URIs always work) and their tasks must run on Kubernetes unless --allow-local-execution is
    given; see "Security model" in the README.
    """
    import logging

    from concurrent_mlflow.server.app import serve
    from concurrent_mlflow.server.context import ServerSettings

    paths = obj.paths
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ServerSettings(
        host=host,
        port=port,
        auth=auth,
        work_dir=(work_dir or Path.cwd()).resolve(),
        max_parallel=max_parallel,
        lease_seconds=lease_seconds,
        local_roots=tuple(root.expanduser().resolve() for root in local_roots),
        allow_local_execution=allow_local_execution,
        task_user=task_user,
    )
    # uvicorn shuts down gracefully on SIGTERM and then re-raises it: with the default handler the process
    # would die there, before the `finally` below stops the MLflow server this command started.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    started_mlflow = False
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if task_user and not tracking_uri:
        raise click.UsageError(
            "--task-user needs MLFLOW_TRACKING_URI: the embedded MLflow server keeps artifacts in the data "
            "dir, which the task user may not read. Run `mlflow server --serve-artifacts` and point "
            "MLFLOW_TRACKING_URI at it."
        )
    if not tracking_uri:
        started_mlflow = local_mlflow.server_url(paths.mlflow) is None
        tracking_uri = local_mlflow.ensure_server(paths.mlflow)
    try:
        serve(settings, paths, paths.store_url, tracking_uri)
    finally:
        if started_mlflow:
            local_mlflow.stop_server(paths.mlflow)


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


@click.group("token")
def token() -> None:
    """Create, list and revoke API bearer tokens (run on the server's machine, against its store)."""


@token.command("create")
@click.argument("user")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
@click.option("--admin", is_flag=True, help="May do anything, on every DAG, cluster and schedule.")
@click.pass_obj
def token_create(obj: CliContext, user: str, name: str, admin: bool) -> None:
    """Create a token for USER and print it once (only its hash is stored)."""
    from concurrent_mlflow.store import access, open_store

    paths = obj.paths
    secret = access.create_token(open_store(paths.store_url), user, name, admin=admin)
    click.echo(secret)


@token.command("list")
@click.pass_obj
def token_list(obj: CliContext) -> None:
    """List tokens (ids and owners, never secrets)."""
    from concurrent_mlflow.store import access, open_store

    paths = obj.paths
    table = Table("id", "user", "name", "admin", "created", "last used", "revoked")
    for row in access.list_tokens(open_store(paths.store_url)):
        table.add_row(
            row.id,
            row.user,
            row.name,
            "yes" if row.admin else "",
            _when(row.created_at),
            _when(row.last_used_at),
            _when(row.revoked_at),
        )
    console.print(table)


@token.command("revoke")
@click.argument("token_id")
@click.pass_obj
def token_revoke(obj: CliContext, token_id: str) -> None:
    """Revoke a token by its id (the first column of `concurrent token list`)."""
    from concurrent_mlflow.store import access, open_store

    paths = obj.paths
    access.revoke_token(open_store(paths.store_url), token_id)
    click.echo(f"Token {token_id} revoked.")


def _when(moment: object) -> str:
    return str(moment)[:19] if moment else ""


@click.group("mlflow")
def mlflow_group() -> None:
    """The local MLflow server used when MLFLOW_TRACKING_URI is not set."""


@mlflow_group.command("url")
@click.pass_obj
def mlflow_url(obj: CliContext) -> None:
    """Print the tracking URI in use, starting the local server if needed."""
    click.echo(obj.tracking_uri())


@mlflow_group.command("stop")
@click.pass_obj
def mlflow_stop(obj: CliContext) -> None:
    """Stop the local MLflow server (its data stays under the data dir)."""
    click.echo(
        "stopped" if local_mlflow.stop_server(obj.paths.mlflow) else "no local MLflow server is running"
    )
