"""`mlflow run -b concurrent`: MLflow's project backend plugin, running one MLflow project through our engine.

MLflow loads `ConcurrentBackend` from the `mlflow.project_backend` entry point and calls its `run`. The
request becomes a DAG (request.py), so a bad key, value or `-P` parameter is refused before anything
starts. The embedded engine (as `concurrent
run` uses it, with this machine's store under CONCURRENT_HOME) drives the run in a background thread; `run`
returns once the DAG run's MLflow parent run exists, because MLflow tags that run as soon as `run` returns.

The `mlflow run` CLI runs plugin backends asynchronously (it never calls `wait()`), but our engine lives in
this process: returning would end the run with the process. Under that CLI, `run` therefore waits itself,
reports a failure and raises MLflow's ExecutionException, so the command exits non-zero as it does for
`-b local`; Ctrl-C there cancels the run.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from mlflow.exceptions import ExecutionException
from mlflow.projects.backend.abstract_backend import AbstractBackend
from mlflow.projects.submitted_run import SubmittedRun

from concurrent_mlflow.dag import Dag
from concurrent_mlflow.engine import Engine, orphans, reads
from concurrent_mlflow.engine.reconcile import new_run
from concurrent_mlflow.errors import ConcurrentError
from concurrent_mlflow.mlflow_plugin.request import (
    ProjectRequest,
    absolute,
    build_dag,
    check_clusters,
    read_config,
)
from concurrent_mlflow.plan import param_str
from concurrent_mlflow.quick_exit import skip_final_collection
from concurrent_mlflow.runner import open_engine
from concurrent_mlflow.settings import Paths
from concurrent_mlflow.store import RunRow, Store
from concurrent_mlflow.store import transitions as tx
from concurrent_mlflow.store.queries import failed_attempts
from concurrent_mlflow.store.states import TERMINAL
from concurrent_mlflow.tracking import Tracking, ui_url

log = logging.getLogger("concurrent_mlflow.mlflow_plugin")  # request.py's too: one handler shows both

# Our run states as MLflow's RunStatus names.
MLFLOW_STATUS = {
    "pending": "SCHEDULED",
    "queued": "SCHEDULED",
    "running": "RUNNING",
    "succeeded": "FINISHED",
    "failed": "FAILED",
    "cancelled": "KILLED",
    "skipped": "KILLED",
}
OPEN_TIMEOUT_S = 300.0  # longest wait for the parent run (MLflow calls are retried with backoff meanwhile)
CANCEL_TIMEOUT_S = 120.0  # longest wait for a cancelled run's tasks to be stopped and its runs marked KILLED
LOG_TAIL_LINES = 15


class ConcurrentBackend(AbstractBackend):
    """What `mlflow run -b concurrent` and `mlflow.projects.run(backend="concurrent")` call."""

    def run(
        self,
        project_uri: str,
        entry_point: str,
        params: Mapping[str, Any] | None,
        version: str | None,
        backend_config: Mapping[str, Any] | None,
        tracking_uri: str,
        experiment_id: str,
    ) -> ConcurrentSubmittedRun:
        under_cli = _under_mlflow_run_cli()
        if under_cli:
            _show_progress_on_stderr()
            skip_final_collection()  # the `mlflow run` process ends with our run
        try:
            config = read_config(backend_config)
            request = ProjectRequest(
                project_uri=absolute(project_uri, Path.cwd()),
                entry_point=entry_point,
                params={str(k): param_str(v) for k, v in (params or {}).items()},
                version=version,
                experiment=Tracking(tracking_uri).experiment_name(experiment_id),
                base_dir=Path.cwd(),
                env_manager=(backend_config or {}).get("ENV_MANAGER"),  # `mlflow run --env-manager`
                run_name=_cli_option("run_name") if under_cli else None,
            )
            paths = Paths.from_env()  # CONCURRENT_HOME, as the `concurrent` command finds it
            dag = build_dag(request, config, paths.cache)
            submitted = ConcurrentSubmittedRun.start(dag, request, tracking_uri, paths)
        except ConcurrentError as exc:
            raise ExecutionException(str(exc)) from exc
        if under_cli:
            _wait_in_cli(submitted)
        return submitted


class ConcurrentSubmittedRun(SubmittedRun):
    """One DAG run driven by an embedded engine in a background thread; `run_id` is its MLflow parent run."""

    def __init__(self, engine: Engine, store: Store, dag_run_id: str, driver: str) -> None:
        super().__init__()
        self.engine, self.store, self.dag_run_id = engine, store, dag_run_id
        self.driver = driver  # this process, holding the run's driver lease (`engine.orphans`)
        self._mlflow_run_id = ""
        self._closing = threading.Lock()  # held while the engine thread reads the end state, closes the store
        self._final: RunRow | None = None  # the run as it ended, read before the store closed
        self._error: BaseException | None = None
        self._report: str | None = None
        self._reported = False
        self._thread = threading.Thread(target=self._drive, name=f"concurrent-run-{dag_run_id}")
        # Waiters wait on this, never on Thread.join: a join that Ctrl-C interrupts leaves the thread marked
        # stopped while it still runs (CPython 3.11, the bpo-45274 fix), and cancel() would then do nothing.
        self._ended = threading.Event()

    @classmethod
    def start(
        cls, dag: Dag, request: ProjectRequest, tracking_uri: str, paths: Paths
    ) -> ConcurrentSubmittedRun:
        """Check the DAG's clusters, record the run, drive it, wait for its parent run."""
        engine, store = open_engine(paths, tracking_uri)
        engine.prepare()  # the fork server imports MLflow while the run is recorded and its parent opened
        try:
            check_clusters(store, dag, paths)
            driver = orphans.this_process("mlflow")
            dag_run_id = new_run(
                store,
                dag,
                base_dir=request.base_dir,
                overrides={},
                driver=driver,
                driver_ttl=orphans.DRIVER_TTL,
            )
        except BaseException:
            engine.close()
            store.close()
            raise
        submitted = cls(engine, store, dag_run_id, driver)
        submitted._thread.start()
        _finish_at_exit(submitted)
        try:
            submitted._mlflow_run_id = submitted._await_parent()
            submitted._describe_parent(request)
        except BaseException:  # Ctrl-C, or MLflow refused: nothing may go on running unseen
            submitted.cancel()
            raise
        return submitted

    @property
    def run_id(self) -> str:
        return self._mlflow_run_id

    def wait(self) -> bool:
        """Until the run ends; True if it succeeded. A failure is logged once, naming what failed."""
        while not self._ended.wait(0.5):  # in slices, so Ctrl-C reaches the caller (MLflow then calls cancel)
            pass
        succeeded = self._final is not None and self._final.state == "succeeded"
        if not succeeded and not self._reported:
            self._reported = True
            log.error("%s", self._report or f"DAG run {self.dag_run_id} did not succeed")
        return succeeded

    def get_status(self) -> str:
        run = self._current()
        return MLFLOW_STATUS.get(run.state, "FAILED") if run is not None else "FAILED"

    def cancel(self, reason: str = "cancelled through MLflow (SubmittedRun.cancel)") -> None:
        """Stop the run's tasks and mark its MLflow runs KILLED; returns once that is done."""
        with self._closing:
            if not self._ended.is_set():
                tx.request_cancel(self.store, self.dag_run_id, reason)
        if not self._ended.wait(CANCEL_TIMEOUT_S):
            log.warning("DAG run %s: still stopping after %.0fs", self.dag_run_id, CANCEL_TIMEOUT_S)

    # -- the engine thread ------------------------------------------------------------------------------
    def _drive(self) -> None:
        try:
            orphans.drive(self.engine, self.dag_run_id, self.driver)
        except BaseException as exc:  # run_until_done has cancelled the run; wait() reports the error
            self._error = exc
        with self._closing:
            try:
                self._final = reads.run(self.store, self.dag_run_id)
                if self._final.state != "succeeded":
                    self._report = failure_report(self, self._error)
            except Exception as exc:  # the store is unreadable: say so rather than hide the outcome
                self._report = (
                    f"DAG run {self.dag_run_id} ended ({self._error or 'no error recorded'}); {exc}"
                )
            finally:
                self.engine.close()
                self.store.close()
                self._ended.set()
                _UNFINISHED.discard(self)

    def _current(self) -> RunRow | None:
        """The run as stored now, or as it ended once the engine thread has closed the store."""
        with self._closing:
            return self._final if self._ended.is_set() else reads.run(self.store, self.dag_run_id)

    def _await_parent(self) -> str:
        """The parent run's id once the engine's first pass opened it; raise if the run ended first."""
        deadline = time.monotonic() + OPEN_TIMEOUT_S
        while True:
            run = self._current()
            if run is not None and run.mlflow_run_id:
                return run.mlflow_run_id
            if run is None or run.state in TERMINAL:
                self._ended.wait()
                reason = self._error or (run.error if run else None) or self._report
                raise ConcurrentError(
                    f"DAG run {self.dag_run_id} ended before its MLflow run opened: {reason}"
                )
            if time.monotonic() > deadline:
                tx.request_cancel(self.store, self.dag_run_id, "its MLflow parent run could not be opened")
                raise ConcurrentError(
                    f"DAG run {self.dag_run_id}: no MLflow parent run after {OPEN_TIMEOUT_S:.0f}s; "
                    f"is MLflow at {self.engine.tracking.tracking_uri} answering?"
                )
            time.sleep(0.1)

    def _describe_parent(self, request: ProjectRequest) -> None:
        """Tag the parent as `mlflow run -b local` tags its run, log the parameters, say where it is."""
        tracking = self.engine.tracking
        tracking.set_tags(
            self._mlflow_run_id,
            {
                "mlflow.project.backend": "concurrent",
                "mlflow.source.name": request.project_uri,
                "mlflow.project.entryPoint": request.entry_point,
                **({"mlflow.runName": request.run_name} if request.run_name else {}),
            },
        )
        tracking.log_params(self._mlflow_run_id, request.params)
        run = self._current()
        link = ui_url(tracking.tracking_uri, run.experiment_id if run else None, self._mlflow_run_id)
        log.info(
            "=== Running entry point %r of %s as DAG run %s (MLflow run %s%s) ===",
            request.entry_point,
            request.project_uri,
            self.dag_run_id,
            self._mlflow_run_id,
            f": {link}" if link else "",
        )


# -- the request as a DAG -------------------------------------------------------------------------------
# -- reporting --------------------------------------------------------------------------------------------
def failure_report(submitted: ConcurrentSubmittedRun, error: BaseException | None) -> str:
    """What failed, as `concurrent run` reports it: the run's error, then each failed partition with its
    error, log and MLflow run, and the end of the first failed partition's log."""
    run = reads.run(submitted.store, submitted.dag_run_id)
    detail = run.error or error
    lines = [
        f"DAG run {run.id} (MLflow run {run.mlflow_run_id}) {run.state}" + (f": {detail}" if detail else "")
    ]
    failures = failed_attempts(submitted.store, run.id)
    tracking_uri = submitted.engine.tracking.tracking_uri
    for failed in failures[:20]:
        link = ui_url(tracking_uri, run.experiment_id, failed.mlflow_run_id) or f"run {failed.mlflow_run_id}"
        lines.append(
            f"  {failed.node_id}[{failed.partition}] attempt {failed.attempt}: {failed.error or 'failed'}"
        )
        lines.append(f"    log: {failed.log_path or 'logs/task.log of its MLflow run'}; MLflow: {link}")
    if len(failures) > 20:
        lines.append(f"  ... and {len(failures) - 20} more failed partition(s)")
    if failures and failures[0].log_path:
        lines += _log_tail(Path(failures[0].log_path))
    return "\n".join(lines)


def _log_tail(path: Path) -> list[str]:
    try:
        tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return []
    return [f"  end of {path.name}:", *(f"    | {line}" for line in tail)]


# -- the end of the process ---------------------------------------------------------------------------------
_UNFINISHED: weakref.WeakSet[ConcurrentSubmittedRun] = weakref.WeakSet()


def _finish_at_exit(submitted: ConcurrentSubmittedRun) -> None:
    """Let a run nobody waited for finish when the process exits, as MLflow's local backend does.

    Waiting for the (non-daemon) engine thread is not enough: on the way out Python first stops every
    ThreadPoolExecutor (the engine's included), through hooks in threading's registry that run last-registered
    first, and only then joins threads; the engine would fail and cancel the run. So we wait from a hook of
    that same registry, registered after concurrent.futures' own. Without it (a Python that lacks it), such a
    run is cancelled at exit: its tasks stopped and its runs marked KILLED.
    """
    _register_exit_hook()
    _UNFINISHED.add(submitted)


@functools.cache  # once per process
def _register_exit_hook() -> None:
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        register(_wait_for_unfinished)


def _wait_for_unfinished() -> None:
    for submitted in list(_UNFINISHED):
        try:
            submitted.wait()
        except KeyboardInterrupt:  # Ctrl-C while the process waits to exit: stop them all
            for other in list(_UNFINISHED):
                other.cancel("cancelled by the user (Ctrl-C while the process exited)")
            raise


# -- the `mlflow run` CLI -----------------------------------------------------------------------------------
def _under_mlflow_run_cli() -> bool:
    """True inside the `mlflow run` command, which runs plugin backends without ever waiting for them."""
    ctx = click.get_current_context(silent=True)
    callback = getattr(ctx.command, "callback", None) if ctx is not None else None
    return callback is not None and callback.__module__ == "mlflow.cli" and callback.__name__ == "run"


def _cli_option(name: str) -> Any:
    """An option of the running `mlflow run` command (MLflow applies some only after `run` returns, which
    under that command is after the run has ended, and never when it failed)."""
    ctx = click.get_current_context(silent=True)
    return ctx.params.get(name) if ctx is not None else None


def _show_progress_on_stderr() -> None:
    """In the `mlflow run` command we are the application: show our messages as MLflow shows its own."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y/%m/%d %H:%M:%S")
        )
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    # One MLflow link per DAG run (ours), not one per task as MLflow would print when ending each.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def _wait_in_cli(submitted: ConcurrentSubmittedRun) -> None:
    """Wait as `mlflow run -b local` does: Ctrl-C cancels the run, a failure exits non-zero."""
    try:
        succeeded = submitted.wait()
    except KeyboardInterrupt:
        log.error(
            "=== Run (ID '%s') interrupted, cancelling DAG run %s ===", submitted.run_id, submitted.dag_run_id
        )
        submitted.cancel("cancelled by the user (Ctrl-C in `mlflow run`)")
        log.error(
            "=== DAG run %s cancelled: its tasks were stopped and marked KILLED ===", submitted.dag_run_id
        )
        raise
    if not succeeded:
        raise ExecutionException(f"Run (ID '{submitted.run_id}') failed")
    log.info("=== Run (ID '%s') succeeded ===", submitted.run_id)
