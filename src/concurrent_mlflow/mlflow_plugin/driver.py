"""The process that drives one `mlflow run -b concurrent` run (started by backend.py, its order on stdin).

It records the DAG run in this machine's store under the id the caller chose, so the engine's first pass
finds the parent run the caller created (by its tags) instead of creating one, then drives the run with an
embedded engine, holding its driver lease as `concurrent run` does. SIGINT (Ctrl-C at the terminal) and
SIGTERM (`SubmittedRun.cancel`) cancel the run: tasks stopped, runs marked KILLED. A failure is reported on
stderr, naming each failed partition, its error and log. Exit code: 0 succeeded, 1 failed, 130 cancelled.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from concurrent_mlflow.executors.local import started_local_executor
from concurrent_mlflow.quick_exit import skip_final_collection
from concurrent_mlflow.settings import Paths

if TYPE_CHECKING:  # imported once the fork server is starting (main)
    from concurrent_mlflow.engine import Engine
    from concurrent_mlflow.store import Store

log = logging.getLogger("concurrent_mlflow.mlflow_plugin")
CANCELLED_BY = {
    signal.SIGINT: "cancelled by the user (Ctrl-C in `mlflow run`)",
    signal.SIGTERM: "cancelled through MLflow (SubmittedRun.cancel)",
}
LOG_TAIL_LINES = 15


def main() -> int:
    for signum in CANCELLED_BY:
        signal.signal(signum, _cancel)
    order: dict[str, Any] = json.loads(sys.stdin.read())
    paths = Paths.from_env()
    local = started_local_executor(paths)  # before the imports below, which its own then overlap
    skip_final_collection()
    if order["cli"]:
        from concurrent_mlflow.mlflow_plugin.backend import show_progress_on_stderr

        show_progress_on_stderr()
    try:
        from concurrent_mlflow.runner import open_engine

        engine, store = open_engine(paths, order["tracking_uri"], local=local)
    except BaseException as exc:
        local.close()
        return _failed_to_start(order, exc)
    try:
        return _drive(order, engine, store)
    finally:
        engine.close()
        store.close()


def _drive(order: dict[str, Any], engine: Engine, store: Store) -> int:
    """Record the run under the caller's id, drive it to its end; the exit code."""
    from concurrent_mlflow.dag import parse_dag
    from concurrent_mlflow.engine import orphans, reads
    from concurrent_mlflow.engine.reconcile import new_run
    from concurrent_mlflow.task_output import OutputFollower

    run_id = order["run_id"]
    driver = orphans.this_process("mlflow")
    try:
        new_run(
            store,
            parse_dag(order["dag_yaml"], "The `-b concurrent` run request"),
            base_dir=Path(order["base_dir"]),
            overrides={},
            driver=driver,
            driver_ttl=orphans.DRIVER_TTL,
            run_id=run_id,
        )
    except BaseException as exc:
        return _failed_to_start(order, exc)
    error: BaseException | None = None
    try:
        with OutputFollower(store, run_id, order.get("output", "auto")):
            orphans.drive(engine, run_id, driver)
    except KeyboardInterrupt:
        return 130  # the engine cancelled the run; whoever cancelled it knows
    except Exception as exc:  # the engine cancelled the run first
        error = exc
    if reads.run(store, run_id).state == "succeeded":
        return 0
    log.error("%s", failure_report(store, run_id, order["tracking_uri"], error))
    return 1


def _cancel(signum: int, frame: FrameType | None) -> None:
    """The first signal cancels the run (the engine does, on KeyboardInterrupt); later ones wait for it."""
    for ignored in CANCELLED_BY:
        signal.signal(ignored, signal.SIG_IGN)
    raise KeyboardInterrupt(CANCELLED_BY[signal.Signals(signum)])


def _failed_to_start(order: dict[str, Any], exc: BaseException) -> int:
    """The run never started: end the parent run the caller created, and say why."""
    from concurrent_mlflow.tracking import Tracking

    cancelled = isinstance(exc, KeyboardInterrupt)
    try:
        Tracking(order["tracking_uri"]).terminate(order["mlflow_run_id"], "KILLED" if cancelled else "FAILED")
    except Exception as tracking_error:  # the first error is the one to report
        log.warning("could not end MLflow run %s: %s", order["mlflow_run_id"], tracking_error)
    if cancelled:
        return 130
    log.error("DAG run %s could not start: %s", order["run_id"], exc)
    return 1


def failure_report(store: Store, run_id: str, tracking_uri: str, error: BaseException | None) -> str:
    """What failed, as `concurrent run` reports it: the run's error, then each failed partition with its
    error, log and MLflow run, and the end of the first failed partition's log."""
    from concurrent_mlflow.engine import reads
    from concurrent_mlflow.store.queries import failed_attempts
    from concurrent_mlflow.tracking import ui_url

    run = reads.run(store, run_id)
    detail = run.error or error
    lines = [
        f"DAG run {run.id} (MLflow run {run.mlflow_run_id}) {run.state}" + (f": {detail}" if detail else "")
    ]
    failures = failed_attempts(store, run.id)
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


if __name__ == "__main__":
    sys.exit(main())
