"""The fork-safety check and the thread counts a forked task gets back, in fresh interpreters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial

import pytest

from concurrent_mlflow.executors import forksafety


def _python(code: str, **env: str) -> str:
    """Run `code` in a fresh interpreter with `env` added; its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return done.stdout


CHECK = """
import json, threading
from concurrent_mlflow.executors import forksafety
before = forksafety.fork_problem()
threading.Thread(target=threading.Event().wait, name="helper", daemon=True).start()
print(json.dumps([before, forksafety.fork_problem()]))
"""


def test_a_lone_thread_may_fork_and_a_second_thread_is_named() -> None:
    before, after = json.loads(_python(CHECK))
    assert before is None
    assert after.startswith("it has 2 threads (") and "spawned as fresh processes" in after


def test_the_warm_imports_start_native_threads_unless_the_fork_safe_variables_are_set() -> None:
    """Why FORK_SAFE_ENV exists: without it numpy's OpenBLAS and pyarrow's jemalloc start threads."""
    code = "import mlflow, pandas, pyarrow, numpy; from concurrent_mlflow.executors import forksafety as f; "
    code += "print(f.fork_problem())"
    unset = {name: "" for name in forksafety.FORK_SAFE_ENV}
    if len(os.sched_getaffinity(0)) > 1:  # OpenBLAS starts no pool on one core
        assert "jemalloc_bg_thd" in _python(code, **unset)
    assert _python(code, **forksafety.FORK_SAFE_ENV).strip() == "None"


RESTORE = """
import json, os, numpy
from threadpoolctl import threadpool_info
from concurrent_mlflow.executors import forksafety
forksafety.restore_limits(os.environ)
print(json.dumps([i["num_threads"] for i in threadpool_info() if i["internal_api"] == "openblas"]))
"""


@pytest.mark.parametrize(
    ("task_env", "expected"),
    [
        ({}, len(os.sched_getaffinity(0))),
        ({"OPENBLAS_NUM_THREADS": "1"}, 1),
        ({"OMP_NUM_THREADS": "1,1"}, 1),
        ({"OPENBLAS_NUM_THREADS": "junk"}, len(os.sched_getaffinity(0))),
    ],
)
def test_a_forked_task_gets_the_blas_threads_its_own_environment_asks_for(
    task_env: dict[str, str], expected: int
) -> None:
    """Loaded with one thread (as in the fork server); the task's environment decides from then on."""
    fork_safe = {**forksafety.FORK_SAFE_ENV, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    # The libraries load with the fork-safe env; the task's env replaces it before the restore.
    code = RESTORE.replace(
        "forksafety.restore_limits(os.environ)", f"forksafety.restore_limits({task_env!r})"
    )
    assert json.loads(_python(code, **fork_safe)) == [expected]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"OMP_NUM_THREADS": "3"}, 3),
        ({"GOTO_NUM_THREADS": "2", "OMP_NUM_THREADS": "5"}, 2),
        ({"X": "1"}, None),
    ],
)
def test_thread_variables_are_read_in_the_order_openblas_reads_them(
    env: dict[str, str], expected: int | None
) -> None:
    variables = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
    assert forksafety.wanted_threads(variables, env) == (expected or len(os.sched_getaffinity(0)))


TELEMETRY = "import mlflow; from mlflow.telemetry.client import get_telemetry_client as c; print(c() is None)"


def test_forked_tasks_inherit_no_mlflow_telemetry_client() -> None:
    """A worker forked with MLflow's telemetry client woke its threads and died in getaddrinfo."""
    bare = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}  # no CI markers
    run = partial(subprocess.run, [sys.executable, "-c", TELEMETRY], capture_output=True, text=True)
    assert run(env=bare).stdout.strip() == "False"  # what a user's machine gets from `import mlflow`
    assert run(env={**bare, **forksafety.FORK_SAFE_ENV}).stdout.strip() == "True"
