"""Runs each task as a worker process on this machine.

Workers are forked from a warm fork server (see forkserver.py), which saves the seconds a fresh Python
spends importing MLflow; `CONCURRENT_FORKSERVER=0` spawns `python -m concurrent_mlflow.worker` instead, and
so does the executor, with a warning, when the fork server finds it could not fork safely.
Either way each worker is the leader of its own process group (so Ctrl-C reaches the engine, not the tasks,
and a cancel or timeout kills the task's whole tree) and writes stdout and stderr to one log file per
attempt. A task handed over with the launch (`TaskLaunch.task`: spec and manifest) is written beside the
log as `<log>.task.json` and opened as the worker's stdin before any user switch. After an engine restart a
forked worker is found again by its `<log>.pid` file (pid and start time) and its exit code read from
`<log>.exit`; a spawned one by its pid plus the child run id on its command line.
A task's end wakes whoever called `wake_on_change` at once: the fork server reports each exit as it reaps
it, and a spawned worker has a thread that waits for it. Workers adopted after a restart have neither; the
engine's fallback poll sees them end.
With a task user (task_user.py) every worker runs as that user, in its own home, with its own caches and
scratch, and without the server's `CONCURRENT_*` settings in its environment (nor in the fork server's).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from concurrent_mlflow import task_log
from concurrent_mlflow.errors import ExecutorError
from concurrent_mlflow.executors import forkserver
from concurrent_mlflow.executors.base import (
    ChildRuns,
    ExecutorTraits,
    Observation,
    StageLaunch,
    StageSubmission,
    TaskLaunch,
)
from concurrent_mlflow.executors.forkserver import ForkServer, ForkUnsafeError
from concurrent_mlflow.executors.task_user import TaskUser, without_server_settings
from concurrent_mlflow.executors.warm_models import WarmModels
from concurrent_mlflow.settings import Paths

log = logging.getLogger("concurrent.executor")

KILL_GRACE_SECONDS = 5.0
WORKER_MODULE = "concurrent_mlflow.worker"
EXIT_RECORD_GRACE_SECONDS = 2.0


def started_local_executor(paths: Paths) -> LocalExecutor:
    """This machine's executor with its fork server starting now. A command that will drive a run calls
    this before it imports the engine and MLflow: the two imports (about 2 s of CPU each) then overlap
    instead of adding up."""
    local = LocalExecutor(log_root=paths.logs, scratch_root=paths.scratch)
    local.prepare()
    return local


class LocalExecutor:
    name = "local"
    traits = ExecutorTraits(exit_zero_is_success=True)  # a worker exits 0 only once its run is FINISHED

    def __init__(
        self,
        log_root: Path,
        scratch_root: Path,
        *,
        fork: bool | None = None,
        worker_module: str = WORKER_MODULE,
        forkserver: ForkServer | None = None,
        task_user: TaskUser | None = None,
    ) -> None:
        self.log_root = log_root
        self.scratch_root = scratch_root
        self.worker_module = worker_module
        self.task_user = task_user
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self._vanished: dict[int, float] = {}  # forked workers gone without an exit record: since when
        self._wakes: list[Callable[[], None]] = []
        if fork is None:
            fork = os.environ.get("CONCURRENT_FORKSERVER", "1") != "0"
        # A forked task's memory is the fork server's (its /proc/self/environ too): no server secrets there.
        environ = without_server_settings(os.environ) if task_user else None
        self._forkserver = (forkserver or ForkServer(environ=environ)) if fork else None
        # Inference stages fork from a server holding their model; not as a task user (see warm_models.py).
        self._warm = WarmModels(self._forkserver, log_root) if self._forkserver and not task_user else None
        if self._forkserver is not None:  # a warm server's children's exits come through it too
            self._forkserver.on_exit = partial(self._forked_exit, self._forkserver.on_exit)

    def prepare(self) -> None:
        """Start the fork server in the background, so that its imports are done by the first task."""
        if self._forkserver is not None:
            self._forkserver.start()

    def wake_on_change(self, wake: Callable[[], None]) -> None:
        self._wakes.append(wake)

    def _changed(self) -> None:
        for wake in self._wakes:
            wake()

    def _forked_exit(self, passed: forkserver.ExitCallback | None, pid: int, code: int) -> None:
        if passed is not None:  # the caller's own, if it gave the fork server one
            passed(pid, code)
        self._changed()

    def close(self) -> None:
        """Stop the fork servers (running workers carry on and are still reaped)."""
        if self._warm is not None:
            self._warm.close()
        if self._forkserver is not None:
            self._forkserver.close()

    def _log_path(self, launch: TaskLaunch) -> Path:
        return self.log_root / launch.run_id / launch.node_id / f"{launch.partition:05d}-{launch.attempt}.log"

    def find(self, launch: TaskLaunch) -> tuple[dict[str, Any], str | None] | None:
        log_path = self._log_path(launch)
        if forked := forkserver.read_pid_file(log_path):
            return _handle(forked[0], launch.child_run_id, log_path, started=forked[1]), str(log_path)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and _is_our_worker(int(entry.name), launch.child_run_id):
                return _handle(int(entry.name), launch.child_run_id, log_path), str(log_path)
        return None

    def start_stage(self, stage: StageLaunch, child_runs: ChildRuns) -> StageSubmission:
        raise ExecutorError("the local executor starts tasks one at a time (submit) as cores free up")

    def submit(self, launch: TaskLaunch) -> tuple[dict[str, Any], str | None]:
        log_path = self._log_path(launch)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **(self.task_user.env(os.environ) if self.task_user else os.environ),
            **launch.env,
            "MLFLOW_TRACKING_URI": launch.tracking_uri,
            "CONCURRENT_SCRATCH": str(self.scratch_root),
            "PYTHONUNBUFFERED": "1",
            **(self.task_user.places() if self.task_user else {}),
        }
        args = [
            "--parent-run",
            launch.parent_run_id,
            "--child-run",
            launch.child_run_id,
            "--node",
            launch.node_id,
            "--partition",
            str(launch.partition),
        ]
        task_file = None
        if launch.task is not None:  # handed over on the worker's stdin, opened before any user switch
            task_file = log_path.with_name(log_path.name + ".task.json")
            _write_task_file(task_file, launch.task)
            args.append("--task-on-stdin")
        if self._warm is not None and (warm := self._warm.server(launch, env)):
            try:
                return self._fork(warm, launch, args, env, log_path, task_file)
            except ExecutorError as exc:  # e.g. it died: this stage's tasks load the model each
                self._warm.refuse(launch, str(exc))
        if self._forkserver is not None:
            try:
                return self._fork(self._forkserver, launch, args, env, log_path, task_file)
            except ForkUnsafeError as exc:
                log.warning("%s", exc)  # loud once, then every worker is spawned: slower, never unsafe
                self.close()
                self._forkserver, self._warm = None, None
        return self._spawn(launch, args, env, log_path, task_file)

    def _spawn(
        self, launch: TaskLaunch, args: list[str], env: dict[str, str], log_path: Path, task_file: Path | None
    ) -> tuple[dict[str, Any], str | None]:
        user = self.task_user
        try:
            # Opened here: a task user's worker only writes to its log and reads its task from stdin.
            with log_path.open("ab") as log_file, (task_file or Path(os.devnull)).open("rb") as stdin:
                process = subprocess.Popen(
                    [sys.executable, "-X", "faulthandler", "-m", self.worker_module, *args],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=stdin,
                    env=env,
                    start_new_session=True,
                    user=user.uid if user else None,
                    group=user.gid if user else None,
                    extra_groups=[] if user else None,
                    cwd=user.home if user else None,
                )
        except OSError as exc:
            raise ExecutorError(
                f"Could not start a worker for {launch.node_id}[{launch.partition}]: {exc}"
            ) from exc
        self._processes[process.pid] = process
        # Its end wakes the engine; observe's poll() returns None until this thread has reaped it.
        waiter = threading.Thread(target=self._wait_for, args=(process,), name="concurrent-worker-wait")
        waiter.daemon = True
        waiter.start()
        return _handle(process.pid, launch.child_run_id, log_path), str(log_path)

    def _wait_for(self, process: subprocess.Popen[bytes]) -> None:
        process.wait()
        self._changed()

    def _fork(
        self,
        server: ForkServer,
        launch: TaskLaunch,
        args: list[str],
        env: dict[str, str],
        log_path: Path,
        task_file: Path | None,
    ) -> tuple[dict[str, Any], str | None]:
        try:
            pid = server.spawn(self.worker_module, args, env, log_path, user=self.task_user, stdin=task_file)
        except OSError as exc:
            raise ExecutorError(
                f"Could not start a worker for {launch.node_id}[{launch.partition}]: {exc}"
            ) from exc
        # The child wrote its pid file before the fork server answered; it names the process even if it
        # has already ended.
        recorded = forkserver.read_pid_file(log_path)
        started = recorded[1] if recorded and recorded[0] == pid else forkserver.start_time(pid) or 0
        return _handle(pid, launch.child_run_id, log_path, started=started), str(log_path)

    def observe(self, handle: dict[str, Any]) -> Observation:
        """What the task is doing; a failed one's detail leads with the last exception in its log."""
        seen = self._observe(handle)
        if seen.exit_code:
            return replace(seen, detail=task_log.failure_reason(seen.detail, str(handle["log"])))
        return seen

    def _observe(self, handle: dict[str, Any]) -> Observation:
        pid = int(handle["pid"])
        if "started" in handle:
            return self._observe_forked(pid, int(handle["started"]), Path(handle["log"]))
        process = self._processes.get(pid)
        if process is None:
            return self._observe_adopted(pid, str(handle["child_run"]))
        code = process.poll()
        if code is None:
            return Observation("running")
        del self._processes[pid]
        return Observation("exited", exit_code=code, detail=_describe_exit(code))

    def cancel(self, handle: dict[str, Any]) -> None:
        pid = int(handle["pid"])
        process = self._processes.pop(pid, None)
        if "started" in handle:
            started = int(handle["started"])
            if forkserver.running(pid, started):
                _stop_group(pid, lambda: forkserver.running(pid, started))
            return
        if process is None and not _is_our_worker(pid, str(handle["child_run"])):
            return
        _stop_group(pid, lambda: _alive(pid, process))
        if process is not None:
            process.wait()

    def read_log(self, handle: dict[str, Any]) -> bytes:
        try:
            return Path(handle["log"]).read_bytes()
        except OSError:
            return b""

    def _observe_forked(self, pid: int, started: int, log_path: Path) -> Observation:
        code = forkserver.read_exit_file(log_path)
        if code is not None:
            return Observation("exited", exit_code=code, detail=_describe_exit(code))
        if forkserver.running(pid, started, zombie=True):
            return Observation("running")
        # Reaped an instant ago and the exit file is being written, or the fork server died with it.
        vanished = self._vanished.setdefault(pid, time.monotonic())
        if time.monotonic() - vanished < EXIT_RECORD_GRACE_SECONDS:
            return Observation("running")
        del self._vanished[pid]
        return Observation("lost", detail="the worker process is gone and its exit code was not recorded")

    def _observe_adopted(self, pid: int, child_run: str) -> Observation:
        """A worker started by an earlier engine: alive, or gone with an exit code we can no longer know."""
        if _is_our_worker(pid, child_run):
            return Observation("running")
        return Observation("lost", detail="the worker process is gone and its exit code was not observed")


def _write_task_file(path: Path, text: str) -> None:
    """The worker's task beside its log (only the server may read it; the worker gets it open on stdin)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:
        raise ExecutorError(f"Could not write the task file {path}: {exc}") from exc


def _handle(pid: int, child_run: str, log_path: Path, started: int | None = None) -> dict[str, Any]:
    handle: dict[str, Any] = {"pid": pid, "child_run": child_run, "log": str(log_path)}
    if started is not None:
        handle["started"] = started
    return handle


def _stop_group(pid: int, alive: Callable[[], bool]) -> None:
    """SIGTERM the task's process group, then SIGKILL whatever is left after a grace period."""
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_SECONDS
    while time.monotonic() < deadline and alive():
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)


def _describe_exit(code: int) -> str | None:
    if code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return None if code == 0 else f"exit code {code}"


def _alive(pid: int, process: subprocess.Popen[bytes] | None) -> bool:
    if process is not None:
        return process.poll() is None
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _is_our_worker(pid: int, child_run: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"concurrent_mlflow.worker" in cmdline and child_run.encode() in cmdline
