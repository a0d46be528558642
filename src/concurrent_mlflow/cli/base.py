"""The `concurrent` group, its shared context (data dir, MLflow, an optional remote server) and consoles."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from concurrent_mlflow.cli.lazy import LazyGroup
from concurrent_mlflow.errors import ConcurrentError
from concurrent_mlflow.quick_exit import skip_final_collection
from concurrent_mlflow.settings import Paths

if TYPE_CHECKING:
    from rich.console import Console

    from concurrent_mlflow.client import ApiClient


class _LazyConsole:
    """rich's Console, made on first use: importing rich.console (~50 ms here, its emoji table alone 13)
    is most of what `dag validate` would otherwise spend beyond parsing."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._made(), name)

    def __enter__(self) -> Console:  # rich's Progress and Live hold their console as a context
        return self._made().__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._made().__exit__(*exc)

    def _made(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr, highlight=False)
        return self._console


console = cast("Console", _LazyConsole(stderr=False))
err = cast("Console", _LazyConsole(stderr=True))


class CliContext:
    def __init__(self, paths: Paths, server: str | None = None, token: str | None = None) -> None:
        self.paths, self.server, self.token = paths, server, token

    def tracking_uri(self) -> str:
        from concurrent_mlflow import local_mlflow

        return local_mlflow.tracking_uri(self.paths.mlflow)

    def api(self) -> ApiClient:
        from concurrent_mlflow.client import ApiClient

        assert self.server
        return ApiClient(self.server, self.token)


def run_url(tracking_uri: str, experiment_id: str | None, mlflow_run_id: str | None) -> str:
    """A browser link for an MLflow run, or how to open one for non-HTTP tracking URIs."""
    from concurrent_mlflow.tracking import ui_url

    url = ui_url(tracking_uri, experiment_id, mlflow_run_id)
    if url:
        return url
    return f"run {mlflow_run_id} in {tracking_uri} (open with: mlflow ui --backend-store-uri {tracking_uri})"


def unwritable_dir_message(exc: OSError, paths: Paths) -> str | None:
    """One line naming the data dir we could not write and the setting that moves it; None if `exc` is
    about some other file (then it is not ours to explain and keeps its traceback).

    Every local command creates files under these dirs first (the store, the local MLflow server, logs,
    checkouts), so a read-only or misplaced dir would otherwise surface as a raw OSError from deep inside.
    """
    if exc.filename is None:
        return None
    failed = Path(os.fsdecode(exc.filename))
    dirs = _data_dirs(paths)
    inside = [(setting, root) for setting, root in dirs if failed.is_relative_to(root)]
    making = [(setting, root) for setting, root in dirs if root.is_relative_to(failed)]  # a missing parent
    if not inside + making:
        return None
    setting, root = (inside + making)[0]
    detail = exc.strerror or type(exc).__name__
    where = "" if failed == root else f" at {failed}"
    fix = "CONCURRENT_HOME (or --home)" if setting == "CONCURRENT_HOME" else setting
    return f"Cannot write to {setting} {root} ({detail}{where}): set {fix} to a writable directory."


def _data_dirs(paths: Paths) -> list[tuple[str, Path]]:
    """(setting, dir) of each place we write, most specific first, as the user would name it."""
    dirs = []
    if os.environ.get("CONCURRENT_CACHE"):
        dirs.append(("CONCURRENT_CACHE", paths.cache))
    store = os.environ.get("CONCURRENT_STORE", "")
    if store and "://" not in store:
        dirs.append(("CONCURRENT_STORE", Path(store).parent))
    return [*dirs, ("CONCURRENT_HOME", paths.home)]


class _MainGroup(LazyGroup):
    """Turns our errors, and a data dir we cannot write, into a clean message and exit code 1 instead of
    a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConcurrentError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            message = unwritable_dir_message(exc, ctx.obj.paths) if isinstance(ctx.obj, CliContext) else None
            if message is None:
                raise
            raise click.ClickException(message) from exc


@click.group(
    cls=_MainGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    envvar="CONCURRENT_HOME",
    help="Data dir for the run store, caches, logs and the local MLflow server "
    "[env CONCURRENT_HOME; default ~/.concurrent-mlflow].",
)
@click.option(
    "--server",
    envvar="CONCURRENT_SERVER",
    default=None,
    metavar="URL",
    help="Talk to this `concurrent server` instead of running on this machine [env CONCURRENT_SERVER]. "
    "Its bearer token is read from CONCURRENT_TOKEN.",
)
@click.version_option(package_name="concurrent-mlflow")
@click.pass_context
def main(ctx: click.Context, home: Path | None, server: str | None) -> None:
    """Run DAGs of MLflow Projects with data-parallel fan-out, tracked in MLflow.

    Without --server, runs execute on this machine. Without MLFLOW_TRACKING_URI, they are tracked by a local
    MLflow server under the data dir, started on first use and left running (see `concurrent mlflow`).
    """
    skip_final_collection()  # registered before any command's own exit handlers, so it runs after them
    paths = Paths(home.expanduser()) if home else Paths.from_env()
    ctx.obj = CliContext(paths, server or None, os.environ.get("CONCURRENT_TOKEN") or None)
    # We print one MLflow link per DAG run ourselves; MLflow would print one per task.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
