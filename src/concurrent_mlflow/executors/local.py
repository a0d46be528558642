"""Runs each task as a worker process on this machine.

Each worker is the leader of its own process group (so Ctrl-C reaches the engine, not the tasks, and a cancel
or timeout kills the task's whole tree), writes stdout and stderr to one log file per attempt, and is found
again after an engine restart by its process id plus the child run id on its command line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from concurrent_mlflow.errors import ExecutorError
from concurrent_mlflow.executors.base import Observation, TaskLaunch

KILL_GRACE_SECONDS = 5.0


class LocalExecutor:
    name = "local"

    def __init__(self, log_root: Path, scratch_root: Path) -> None:
        self.log_root = log_root
        self.scratch_root = scratch_root
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    def _log_path(self, launch: TaskLaunch) -> Path:
        return self.log_root / launch.run_id / launch.node_id / f"{launch.partition:05d}-{launch.attempt}.log"

    def find(self, launch: TaskLaunch) -> tuple[dict[str, Any], str | None] | None:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and _is_our_worker(int(entry.name), launch.child_run_id):
                log_path = self._log_path(launch)
                return _handle(int(entry.name), launch.child_run_id, log_path), str(log_path)
        return None

    def submit(self, launch: TaskLaunch) -> tuple[dict[str, Any], str | None]:
        log_path = self._log_path(launch)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **launch.env,
            "MLFLOW_TRACKING_URI": launch.tracking_uri,
            "CONCURRENT_SCRATCH": str(self.scratch_root),
            "PYTHONUNBUFFERED": "1",
        }
        argv = [
            sys.executable,
            "-m",
            "concurrent_mlflow.worker",
            "--parent-run",
            launch.parent_run_id,
            "--child-run",
            launch.child_run_id,
            "--node",
            launch.node_id,
            "--partition",
            str(launch.partition),
        ]
        try:
            with log_path.open("ab") as log:
                process = subprocess.Popen(
                    argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )
        except OSError as exc:
            raise ExecutorError(
                f"Could not start a worker for {launch.node_id}[{launch.partition}]: {exc}"
            ) from exc
        self._processes[process.pid] = process
        return _handle(process.pid, launch.child_run_id, log_path), str(log_path)

    def observe(self, handle: dict[str, Any]) -> Observation:
        pid = int(handle["pid"])
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
        if process is None and not _is_our_worker(pid, str(handle["child_run"])):
            return
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        while time.monotonic() < deadline and _alive(pid, process):
            time.sleep(0.05)
        _signal_group(pid, signal.SIGKILL)
        if process is not None:
            process.wait()

    def read_log(self, handle: dict[str, Any]) -> bytes:
        try:
            return Path(handle["log"]).read_bytes()
        except OSError:
            return b""

    def _observe_adopted(self, pid: int, child_run: str) -> Observation:
        """A worker started by an earlier engine: alive, or gone with an exit code we can no longer know."""
        if _is_our_worker(pid, child_run):
            return Observation("running")
        return Observation("lost", detail="the worker process is gone and its exit code was not observed")


def _handle(pid: int, child_run: str, log_path: Path) -> dict[str, Any]:
    return {"pid": pid, "child_run": child_run, "log": str(log_path)}


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
