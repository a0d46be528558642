"""Where `concurrent run`, `runs` and `logs` act: this machine (an embedded engine) or a `concurrent server`.

Both give the same views (`RunView`, `FailedAttempt`), so every command prints the same thing either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from concurrent_mlflow.cli.base import CliContext, err, run_url
from concurrent_mlflow.dag import Dag, apply_overrides, load_dag
from concurrent_mlflow.errors import ConflictError, RunNotFoundError

if TYPE_CHECKING:  # the API client and the store are imported by the commands that use them
    from concurrent_mlflow.client import ApiClient
    from concurrent_mlflow.store.queries import FailedAttempt, RunView

ENDED = ("succeeded", "failed", "cancelled")
LOG_POLL_SECONDS = 0.5


class RunBackend(Protocol):
    def start(self, dag_file: Path, dag: Dag, overrides: dict[str, str]) -> str: ...
    def retry(self, run_id: str) -> int: ...
    def view(self, run_id: str) -> RunView: ...
    def wait(self, run_id: str, on_update: Callable[[], None], output: str = "none") -> str:
        """Until the run ends; Ctrl-C cancels it (tasks stopped, runs KILLED) and re-raises. `output`:
        which tasks' output to show meanwhile (task_output.py; a server's runs show none)."""
        ...

    def cancel(self, run_id: str, reason: str) -> bool: ...
    def failures(self, run_id: str) -> list[FailedAttempt]: ...
    def link(self, view: RunView, mlflow_run_id: str | None = None) -> str: ...
    def log(
        self, run_id: str, node: str, partition: int, attempt: int | None, follow: bool
    ) -> Iterator[bytes]: ...


def backend(obj: CliContext, max_parallel: int | None = None, *, driving: bool = False) -> RunBackend:
    """`driving`: this command will drive a run here (start or retry), so its fork server starts at once."""
    return RemoteRuns(obj.api()) if obj.server else LocalRuns(obj, max_parallel, driving=driving)


def load_with_overrides(dag_file: Path, overrides: dict[str, str]) -> Dag:
    return apply_overrides(load_dag(dag_file), overrides)


class LocalRuns:
    """This process drives the run (holding its driver lease), and first settles runs whose driver died."""

    def __init__(self, obj: CliContext, max_parallel: int | None, *, driving: bool = False) -> None:
        from concurrent_mlflow.executors.local import started_local_executor

        local = started_local_executor(obj.paths) if driving else None
        try:
            from concurrent_mlflow.engine import orphans
            from concurrent_mlflow.runner import open_engine

            self.obj = obj
            self.engine, self.store = open_engine(obj.paths, obj.tracking_uri(), max_parallel, local=local)
        except BaseException:
            if local is not None:
                local.close()
            raise
        self.me = orphans.this_process("cli")

    def settle_orphans(self, cancelling: str | None = None) -> list[str]:
        """Settle runs whose driver died, one line each on stderr; the ids of those settled."""
        from concurrent_mlflow.engine import orphans

        settled = orphans.settle_orphans(self.engine, self.me, cancelling)
        for done in settled:
            _report(done.message())
        return [done.run_id for done in settled]

    def close(self) -> None:
        self.engine.close()
        self.store.close()

    def start(self, dag_file: Path, dag: Dag, overrides: dict[str, str]) -> str:
        from concurrent_mlflow.engine.orphans import DRIVER_TTL
        from concurrent_mlflow.plan import check_projects

        self.engine.prepare()  # the fork server imports MLflow while the projects are checked
        base_dir = dag_file.resolve().parent
        check_projects(dag, base_dir=base_dir, cache_dir=self.obj.paths.cache)
        self.settle_orphans()  # their tasks would otherwise hold slots this run needs
        return self.engine.start(
            dag, base_dir=base_dir, overrides=overrides, driver=self.me, driver_ttl=DRIVER_TTL
        )

    def retry(self, run_id: str) -> int:
        from concurrent_mlflow.engine.orphans import DRIVER_TTL
        from concurrent_mlflow.store import drivers

        self.engine.prepare()
        self.settle_orphans()  # an orphaned run_id ends failed here, and so can be retried
        if not drivers.take_ended(self.store, run_id, self.me, DRIVER_TTL):
            self._refuse_open(run_id)
        return self.engine.retry(run_id)

    def _refuse_open(self, run_id: str) -> None:
        """A run still open has a live driver: name it, and what to do."""
        from concurrent_mlflow.engine import orphans
        from concurrent_mlflow.store import drivers

        view = self.view(run_id)  # (an unknown run id is reported as such)
        driver = drivers.driver_of(self.store, run_id)
        who = orphans.describe(driver) if driver else "the server holding the engine lease"
        raise ConflictError(
            f"Run {run_id} is still {view.state}, driven by {who}; retry it once it has ended, "
            f"or stop it first with `concurrent runs cancel {run_id}`."
        )

    def view(self, run_id: str) -> RunView:
        from concurrent_mlflow.store.queries import run_view

        found = run_view(self.store, run_id)
        if found is None:
            raise RunNotFoundError(f"No run {run_id!r} in the store at {self.obj.paths.store_url}.")
        return found

    def wait(self, run_id: str, on_update: Callable[[], None], output: str = "none") -> str:
        from concurrent_mlflow.engine import orphans
        from concurrent_mlflow.task_output import OutputFollower

        with OutputFollower(self.store, run_id, output):
            return orphans.drive(self.engine, run_id, self.me, on_update, report=_report)

    def cancel(self, run_id: str, reason: str) -> bool:
        """Ask the run's driver to cancel it; an orphan has none, so it is cancelled here and now."""
        from concurrent_mlflow.store import transitions as tx

        return run_id in self.settle_orphans(cancelling=run_id) or tx.request_cancel(
            self.store, run_id, reason
        )

    def failures(self, run_id: str) -> list[FailedAttempt]:
        from concurrent_mlflow.store.queries import failed_attempts

        return failed_attempts(self.store, run_id)

    def link(self, view: RunView, mlflow_run_id: str | None = None) -> str:
        return run_url(
            self.engine.tracking.tracking_uri, view.experiment_id, mlflow_run_id or view.mlflow_run_id
        )

    def log(
        self, run_id: str, node: str, partition: int, attempt: int | None, follow: bool
    ) -> Iterator[bytes]:
        from concurrent_mlflow.engine import logs

        engine = self.engine
        reader, first = logs.open_log(
            self.store, engine.executors, engine.tracking, run_id, node, partition, attempt
        )
        return logs.follow(reader, first, LOG_POLL_SECONDS) if follow else iter((first,))


def _report(message: str) -> None:
    err.print(f"[yellow]{message}[/]")


class RemoteRuns:
    def __init__(self, api: ApiClient) -> None:
        self.api = api

    def start(self, dag_file: Path, dag: Dag, overrides: dict[str, str]) -> str:
        self.api.import_dag(dag_file.read_text(encoding="utf-8"))
        # A server on this machine can read the DAG's directory; a remote one resolves paths in its own.
        base_dir = str(dag_file.resolve().parent) if self.api.on_this_machine else None
        return str(self.api.start_run(dag.name, overrides, base_dir)["id"])

    def retry(self, run_id: str) -> int:
        return self.api.retry(run_id)

    def view(self, run_id: str) -> RunView:
        return self.api.run_view(run_id)

    def wait(self, run_id: str, on_update: Callable[[], None], output: str = "none") -> str:
        try:
            while (state := self.api.run(run_id)["state"]) not in ENDED:
                on_update()
                time.sleep(1.0)
            return str(state)
        except KeyboardInterrupt:
            self.api.cancel(run_id)
            deadline = time.monotonic() + 60
            while self.api.run(run_id)["state"] not in ENDED and time.monotonic() < deadline:
                time.sleep(0.5)
            raise

    def cancel(self, run_id: str, reason: str) -> bool:
        return bool(self.api.cancel(run_id)["detail"] != "the run had already ended")

    def failures(self, run_id: str) -> list[FailedAttempt]:
        return self.api.failures(run_id)

    def link(self, view: RunView, mlflow_run_id: str | None = None) -> str:
        parent = self.api.run(view.id).get("mlflow_url") or f"MLflow run {view.mlflow_run_id}"
        if mlflow_run_id and "/runs/" in parent:
            return parent.rsplit("/runs/", 1)[0] + f"/runs/{mlflow_run_id}"
        return str(parent) if not mlflow_run_id else f"MLflow run {mlflow_run_id}"

    def log(
        self, run_id: str, node: str, partition: int, attempt: int | None, follow: bool
    ) -> Iterator[bytes]:
        return self.api.log(run_id, node, partition, attempt, follow)
