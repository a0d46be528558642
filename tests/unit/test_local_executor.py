"""The local executor's process handling, with real processes: forked from the fork server (the default)
and spawned. The worker is a stand-in module (tests/fixtures/forkserver_task.py), so no MLflow is needed."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from concurrent_mlflow.executors import forksafety, forkserver
from concurrent_mlflow.executors.base import Observation, TaskLaunch
from concurrent_mlflow.executors.local import LocalExecutor

TASK = "tests.fixtures.forkserver_task"


@pytest.fixture(params=["forked", "spawned"])
def executor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalExecutor]:
    made = LocalExecutor(
        tmp_path / "logs", tmp_path / "scratch", fork=request.param == "forked", worker_module=TASK
    )
    yield made
    made.close()


def launch(partition: int, *, sleep: float = 0, exit_code: int = 0, **env: str) -> TaskLaunch:
    return TaskLaunch(
        run_id="r1",
        node_id="work",
        partition=partition,
        partitions=4,
        attempt=1,
        parent_run_id="parent",
        child_run_id=f"child{partition}",
        tracking_uri="http://127.0.0.1:1",
        env={"TASK_SLEEP": str(sleep), "TASK_EXIT": str(exit_code), **env},
    )


def wait(executor: LocalExecutor, handle: dict[str, Any], timeout: float = 60) -> Observation:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = executor.observe(handle)
        if seen.phase != "running":
            return seen
        time.sleep(0.05)
    raise AssertionError(f"task {handle} still running after {timeout}s")


def test_a_task_gets_its_environment_and_log_and_its_exit_code_is_seen(executor: LocalExecutor) -> None:
    handle, log_path = executor.submit(launch(0, exit_code=3, FOO="bar"))
    seen = wait(executor, handle)
    assert (seen.phase, seen.exit_code, seen.detail) == ("exited", 3, "exit code 3")
    assert log_path is not None
    log = Path(log_path).read_text()
    assert "args=--parent-run parent --child-run child0 --node work --partition 0" in log
    assert "FOO=bar session_leader=True" in log and "to stderr" in log
    ok, _ = executor.submit(launch(1))
    assert wait(executor, ok) == Observation("exited", exit_code=0, detail=None)


def test_a_spawned_task_s_end_wakes_the_engine(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "logs", tmp_path / "scratch", fork=False, worker_module=TASK)
    woken = threading.Event()
    executor.wake_on_change(woken.set)
    handle, _ = executor.submit(launch(0, exit_code=5))
    assert woken.wait(60)
    assert executor.observe(handle) == Observation("exited", exit_code=5, detail="exit code 5")


def test_forked_tasks_draw_different_random_numbers(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "logs", tmp_path / "scratch", fork=True, worker_module=TASK)
    handles = [executor.submit(launch(p))[0] for p in range(3)]
    for handle in handles:
        wait(executor, handle)
    draws = {re.search(r"draw=(\S+)", Path(h["log"]).read_text()).group(1) for h in handles}  # type: ignore[union-attr]
    assert len(draws) == 3
    executor.close()


def test_cancel_kills_a_running_task_and_says_how_it_ended(executor: LocalExecutor) -> None:
    handle, _ = executor.submit(launch(0, sleep=60))
    assert executor.observe(handle).phase == "running"
    executor.cancel(handle)
    seen = wait(executor, handle, timeout=10)
    if seen.phase == "exited":
        assert (seen.exit_code, seen.detail) == (-15, "killed by signal SIGTERM")
    executor.cancel(handle)  # a second cancel of an ended task is harmless


def test_a_restarted_engine_finds_and_follows_a_task_it_did_not_start(tmp_path: Path) -> None:
    first = LocalExecutor(tmp_path / "logs", tmp_path / "scratch", fork=True, worker_module=TASK)
    started, _ = first.submit(launch(2, sleep=1.5, exit_code=4))
    second = LocalExecutor(tmp_path / "logs", tmp_path / "scratch", fork=True, worker_module=TASK)
    found = second.find(launch(2))
    assert found is not None and found[0] == started
    assert second.find(launch(3)) is None  # never started: nothing to adopt
    assert second.observe(found[0]).phase == "running"
    seen = wait(second, found[0])
    assert (seen.phase, seen.exit_code) == ("exited", 4)  # the exit code survives the change of engine
    first.close()


def test_tasks_outlive_a_dead_engine_and_their_exit_codes_are_still_recorded(tmp_path: Path) -> None:
    """The engine is SIGKILLed right after starting a task: the fork server finishes reaping, then exits."""
    engine = f"""
import os, sys
from pathlib import Path
from concurrent_mlflow.executors.forkserver import ForkServer
fork = ForkServer()
env = {{**os.environ, "TASK_SLEEP": "1.5", "TASK_EXIT": "7"}}
pid = fork.spawn("{TASK}", [], env, Path(sys.argv[1]))
print(pid, fork.pid, flush=True)
os.kill(os.getpid(), 9)
"""
    log_path = tmp_path / "task.log"
    result = subprocess.run([sys.executable, "-c", engine, str(log_path)], capture_output=True, text=True)
    assert result.returncode == -9, result.stderr
    task_pid, server_pid = map(int, result.stdout.split())
    deadline = time.monotonic() + 30
    while forkserver.read_exit_file(log_path) is None or _exists(server_pid):
        assert time.monotonic() < deadline, "no exit record, or the fork server did not exit"
        time.sleep(0.1)
    assert forkserver.read_exit_file(log_path) == 7
    assert (
        forkserver.read_pid_file(log_path) is not None and forkserver.read_pid_file(log_path)[0] == task_pid
    )  # type: ignore[index]
    assert not _exists(task_pid)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_native_crash_leaves_its_python_stack_in_the_log(executor: LocalExecutor) -> None:
    handle, log_path = executor.submit(launch(0, TASK_CRASH="1"))
    seen = wait(executor, handle)
    assert (seen.exit_code, seen.detail) == (
        -11,
        "Fatal Python error: Segmentation fault (killed by signal SIGSEGV)",
    )
    log = Path(log_path or "").read_text()
    assert "Fatal Python error: Segmentation fault" in log
    assert re.search(r'File ".*forkserver_task\.py", line \d+ in <module>', log), log


def test_the_fork_server_has_one_thread_and_reports_each_exit_at_once(tmp_path: Path) -> None:
    """What it imports (MLflow, numpy, pyarrow) starts no native thread beside it: forking it is safe.
    The engine waits on its reports instead of polling: each names the reaped child and its exit code,
    the exit file (what a restarted engine reads) is written first, and the executor wakes its engine."""
    reported: queue.Queue[tuple[int, int]] = queue.Queue()
    server = forkserver.ForkServer(on_exit=lambda pid, code: reported.put((pid, code)))
    executor = LocalExecutor(tmp_path / "logs", tmp_path / "scratch", worker_module=TASK, forkserver=server)
    woken = threading.Event()
    executor.wake_on_change(woken.set)
    executor.prepare()  # starts it in the background; submit waits for it
    handles = [executor.submit(launch(p, exit_code=code))[0] for p, code in enumerate((6, 0))]
    ends = {reported.get(timeout=60), reported.get(timeout=60)}
    assert ends == {(handles[0]["pid"], 6), (handles[1]["pid"], 0)}
    assert woken.is_set()
    assert [executor.observe(h).exit_code for h in handles] == [6, 0]  # no wait: the exit file is there
    assert server.pid is not None
    assert forksafety.thread_names(server.pid) == ["python"]
    executor.close()


def test_a_fork_server_with_a_thread_refuses_and_workers_are_spawned_instead(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = forkserver.ForkServer(extra_modules=("tests.fixtures.starts_a_thread",))
    executor = LocalExecutor(tmp_path / "logs", tmp_path / "scratch", worker_module=TASK, forkserver=server)
    handles = [executor.submit(launch(p))[0] for p in range(2)]
    assert [wait(executor, h).exit_code for h in handles] == [0, 0]
    assert all("started" not in h for h in handles)  # spawned, not forked
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "refused to start: it has 2 threads" in warnings[0], warnings
    executor.close()


def test_a_failed_task_is_described_by_the_last_exception_in_its_log(executor: LocalExecutor) -> None:
    handle, _ = executor.submit(launch(0, TASK_RAISE="bad row 17"))
    seen = wait(executor, handle)
    assert (seen.exit_code, seen.detail) == (1, "ValueError: bad row 17 (exit code 1)")
