"""Hundreds of forked tasks under CPU load, trivial ones and ones that use numpy, pandas, pyarrow and
scikit-learn in-process: not one may die of a signal (a fork beside native threads made tasks SIGSEGV)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from concurrent_mlflow.executors import forkserver
from concurrent_mlflow.executors.forkserver import ForkServer

TRIVIAL = "tests.fixtures.forkserver_task"
HEAVY = "tests.fixtures.forkserver_heavy_task"
IN_FLIGHT = 4


@pytest.fixture
def cpu_load() -> Iterator[None]:
    """One busy process per core, so forks happen while the machine is contended."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in os.sched_getaffinity(0)]
    yield
    for burner in burners:
        burner.kill()
        burner.wait()


def _run_all(server: ForkServer, tasks: list[tuple[str, dict[str, str]]], logs: Path) -> Counter[int]:
    """Fork every task, IN_FLIGHT at a time; the exit codes the fork server recorded."""
    codes: Counter[int] = Counter()
    waiting: list[Path] = []
    for number, (module, env) in enumerate(tasks):
        while len(waiting) >= IN_FLIGHT:
            waiting = _collect(waiting, codes)
        log = logs / f"{number:04d}.log"
        server.spawn(module, [], {**os.environ, **env}, log)
        waiting.append(log)
    deadline = time.monotonic() + 300
    while waiting:
        assert time.monotonic() < deadline, f"{len(waiting)} task(s) never ended"
        waiting = _collect(waiting, codes)
    return codes


def _collect(waiting: list[Path], codes: Counter[int]) -> list[Path]:
    still = []
    for log in waiting:
        code = forkserver.read_exit_file(log)
        if code is None:
            still.append(log)
        else:
            codes[code] += 1
    if len(still) == len(waiting):
        time.sleep(0.02)
    return still


@pytest.mark.timeout(600)
def test_hundreds_of_forked_tasks_under_load_end_without_a_signal(tmp_path: Path, cpu_load: None) -> None:
    cores = len(os.sched_getaffinity(0))
    heavy = [(HEAVY, {}), (HEAVY, {"OPENBLAS_NUM_THREADS": "1"})] * 20
    tasks = [(TRIVIAL, {})] * 300 + heavy
    server = ForkServer(extra_modules=("sklearn.linear_model",))  # as a warm stage would pre-import it
    try:
        codes = _run_all(server, tasks, tmp_path)
    finally:
        server.close()
    logs = {path.name: path.read_text() for path in tmp_path.glob("*.log")}
    crashed = {name: text[-2000:] for name, text in logs.items() if "Fatal Python error" in text}
    assert codes == Counter({0: len(tasks)}) and not crashed, (codes, crashed)
    # The user's thread settings reach forked tasks: the default (one per core) and an explicit 1.
    blas = Counter(m.group(1) for text in logs.values() if (m := re.search(r"blas_threads=(\[.*\])", text)))
    assert blas == Counter({f"[{cores}]": 20, "[1]": 20})
