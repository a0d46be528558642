"""`mlflow run -b concurrent`: MLflow's project backend plugin, running one MLflow project through our engine.

MLflow loads `ConcurrentBackend` from the `mlflow.project_backend` entry point and calls its `run`. The
request becomes a DAG (request.py), so a bad key, value or `-P` parameter is refused before anything
starts. Then, as MLflow's local backend does, `run` creates the MLflow run it reports and starts a process
that does the work: our driver (driver.py), which records the DAG run in this machine's store (under
CONCURRENT_HOME, as `concurrent run` finds it) and drives it with an embedded engine. `run` imports neither
the engine nor the store, so it returns about as fast as the local backend, and a caller that exits without
waiting leaves its run going, as with the local backend.

The `mlflow run` CLI runs plugin backends asynchronously (it never calls `wait()`), so under that CLI `run`
waits itself, reports a failure and raises MLflow's ExecutionException, so the command exits non-zero as it
does for `-b local`; Ctrl-C there cancels the run.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from mlflow.exceptions import ExecutionException
from mlflow.projects.backend.abstract_backend import AbstractBackend
from mlflow.projects.submitted_run import SubmittedRun

from concurrent_mlflow.errors import ConcurrentError
from concurrent_mlflow.mlflow_plugin.request import (
    ProjectRequest,
    RequestDag,
    absolute,
    build_dag,
    check_clusters,
    read_config,
)
from concurrent_mlflow.plan import param_str
from concurrent_mlflow.project import as_logged, effective_parameters, is_branch
from concurrent_mlflow.quick_exit import skip_final_collection
from concurrent_mlflow.run_id import new_run_id
from concurrent_mlflow.run_tags import project_tags, run_tags
from concurrent_mlflow.settings import Paths
from concurrent_mlflow.tracking import Tracking, ui_url

log = logging.getLogger("concurrent_mlflow.mlflow_plugin")  # request.py's and driver.py's too

DRIVER_MODULE = "concurrent_mlflow.mlflow_plugin.driver"
CANCEL_TIMEOUT_S = 120.0  # longest wait for a cancelled run's tasks to be stopped and its runs marked KILLED
OPEN_STATUSES = ("RUNNING", "SCHEDULED")


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
            show_progress_on_stderr()
            skip_final_collection()  # the `mlflow run` process ends with our run
        try:
            config = read_config(backend_config)
            tracking = Tracking(tracking_uri)
            request = ProjectRequest(
                project_uri=absolute(project_uri, Path.cwd()),
                entry_point=entry_point,
                params={str(k): param_str(v) for k, v in (params or {}).items()},
                version=version,
                experiment=tracking.experiment_name(experiment_id),
                base_dir=Path.cwd(),
                env_manager=(backend_config or {}).get("ENV_MANAGER"),  # `mlflow run --env-manager`
                run_name=_cli_option("run_name") if under_cli else None,
            )
            paths = Paths.from_env()  # CONCURRENT_HOME, as the `concurrent` command finds it
            built = build_dag(request, config, paths.cache)
            check_clusters(built.dag, paths)
            output = str(config.get("output", "auto"))
            submitted = ConcurrentSubmittedRun.start(
                built, request, tracking, experiment_id, paths, cli=under_cli, output=output
            )
        except ConcurrentError as exc:
            raise ExecutionException(str(exc)) from exc
        if under_cli:
            _wait_in_cli(submitted)
        return submitted


class ConcurrentSubmittedRun(SubmittedRun):
    """One DAG run driven by its driver process; `run_id` is its MLflow parent run."""

    def __init__(
        self, process: subprocess.Popen[bytes], tracking: Tracking, mlflow_run_id: str, dag_run_id: str
    ) -> None:
        super().__init__()
        self.process, self.tracking = process, tracking
        self.dag_run_id = dag_run_id
        self._mlflow_run_id = mlflow_run_id
        self._cancelled = False
        self._settled = False  # an orphaned run, once its driver was found killed

    @classmethod
    def start(
        cls,
        built: RequestDag,
        request: ProjectRequest,
        tracking: Tracking,
        experiment_id: str,
        paths: Paths,
        *,
        cli: bool,
        output: str,
    ) -> ConcurrentSubmittedRun:
        """Create the parent run, tagged and with its parameters (defaults included) as `mlflow run -b
        local` makes its run, and start the driver."""
        dag, node = built.dag, built.node
        dag_run_id = new_run_id()
        branch = is_branch(built.project, paths.cache)
        tags = {
            **run_tags(None),
            **project_tags(built.project, node.entry_point, dag.env_manager(node), branch=branch),
            **({"mlflow.runName": request.run_name} if request.run_name else {}),
        }
        parent = tracking.create_parent(experiment_id, run_id=dag_run_id, dag_name=dag.name, tags=tags)
        try:
            tracking.log_params(
                parent, as_logged(effective_parameters(built.project, node.entry_point, request.params))
            )
            order = {
                "dag_yaml": dag.to_yaml(),
                "base_dir": str(request.base_dir),
                "run_id": dag_run_id,
                "mlflow_run_id": parent,
                "tracking_uri": tracking.tracking_uri,
                "cli": cli,
                "output": output,
            }
            process = _start_driver(order, tracking.tracking_uri)
        except BaseException:
            tracking.terminate(parent, "FAILED")  # nothing will drive it: do not leave it RUNNING
            raise
        submitted = cls(process, tracking, parent, dag_run_id)
        link = ui_url(tracking.tracking_uri, experiment_id, parent)
        log.info(
            "=== Running entry point %r of %s as DAG run %s (MLflow run %s%s) ===",
            request.entry_point,
            request.project_uri,
            dag_run_id,
            parent,
            f": {link}" if link else "",
        )
        return submitted

    @property
    def run_id(self) -> str:
        return self._mlflow_run_id

    def wait(self) -> bool:
        """Until the run ends; True if it succeeded. The driver reports a failure, naming what failed."""
        while True:
            try:
                code = self.process.wait(timeout=0.5)  # in slices, so Ctrl-C reaches the caller
                break
            except subprocess.TimeoutExpired:
                continue
        self._settle_parent(code)
        return code == 0

    def get_status(self) -> str:
        code = self.process.poll()
        if code is not None:
            self._settle_parent(code)
        return self.tracking.status(self._mlflow_run_id)

    def cancel(self, by_user: bool = False) -> None:
        """Stop the run's tasks and mark its MLflow runs KILLED; returns once that is done. `by_user`: the
        user pressed Ctrl-C (the run's error says so), rather than a program calling this."""
        self._cancelled = True
        if self.process.poll() is None:  # the driver cancels the run, then exits
            self.process.send_signal(signal.SIGINT if by_user else signal.SIGTERM)
        try:
            code = self.process.wait(timeout=CANCEL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("DAG run %s: still stopping after %.0fs", self.dag_run_id, CANCEL_TIMEOUT_S)
            return
        self._settle_parent(code)

    def _settle_parent(self, code: int) -> None:
        """A driver killed by a signal left its tasks running: stop them and end the run, as the next
        `concurrent` command would. One that died before it could end the parent run (killed, or failed to
        start) left that open: end it, so MLflow never shows a run that nothing drives as RUNNING."""
        if code == 0:
            return
        if code < 0 and not self._settled:
            self._settled = True
            self._settle_orphaned_run()
        try:
            if self.tracking.status(self._mlflow_run_id) in OPEN_STATUSES:
                self.tracking.terminate(self._mlflow_run_id, "KILLED" if self._cancelled else "FAILED")
        except ConcurrentError as exc:
            log.warning("could not end MLflow run %s: %s", self._mlflow_run_id, exc)

    def _settle_orphaned_run(self) -> None:
        from concurrent_mlflow.engine import orphans
        from concurrent_mlflow.runner import open_engine

        engine, store = open_engine(Paths.from_env(), self.tracking.tracking_uri)
        try:
            me = orphans.this_process("mlflow")
            for orphan in orphans.find_orphans(store, me):
                if orphan.run_id == self.dag_run_id:
                    done = orphans.settle(engine, orphan, me, cancel=self._cancelled)
                    if done is not None:
                        log.error("%s", done.message())
        finally:
            engine.close()
            store.close()


def _start_driver(order: Mapping[str, Any], tracking_uri: str) -> subprocess.Popen[bytes]:
    """The driver process, in this process group (Ctrl-C at the terminal reaches it, as it reaches the
    local backend's entry point), with its order on stdin and this terminal for its output."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    process = subprocess.Popen([sys.executable, "-m", DRIVER_MODULE], stdin=subprocess.PIPE, env=env)
    assert process.stdin is not None
    with process.stdin:
        process.stdin.write(json.dumps(order).encode())
    return process


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


def show_progress_on_stderr() -> None:
    """In the `mlflow run` command we are the application: show our messages as MLflow shows its own (the
    driver process does the same)."""
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
        submitted.cancel(by_user=True)
        log.error(
            "=== DAG run %s cancelled: its tasks were stopped and marked KILLED ===", submitted.dag_run_id
        )
        raise
    if not succeeded:
        raise ExecutionException(f"Run (ID '{submitted.run_id}') failed")
    log.info("=== Run (ID '%s') succeeded ===", submitted.run_id)
