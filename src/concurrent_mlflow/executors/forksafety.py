"""What keeps the fork server at one thread, the check that it has one, and how a forked task gets back the
thread counts its own environment asks for.

Libraries start native threads as they load: numpy's OpenBLAS a pool of (cores - 1) workers, pyarrow's
bundled jemalloc a background purging thread. A child forked beside them inherits locks held by threads
that do not exist in it, and dies at random (SIGSEGV) when it next allocates or multiplies. The fork
server therefore loads them with `FORK_SAFE_ENV`, which starts none of these threads, and checks that it has
one thread before every fork; MLflow's telemetry client, which would start threads in every forked
task, is not created there either. A forked task then asks the libraries already loaded for the thread counts
a fresh process with the task's environment would have had (OpenBLAS and OpenMP grow their pools lazily),
so `OMP_NUM_THREADS` and friends set by the user still reach the task. One thing does not come back:
jemalloc's background thread stays off in forked tasks (freed memory is purged inline instead).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

FORK_SAFE_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "JE_ARROW_MALLOC_CONF": "background_thread:false",
    # `import mlflow` creates a telemetry client that every forked task would inherit and wake: its threads
    # then resolve MLflow's telemetry host, and a forked worker died of SIGSEGV inside that getaddrinfo.
    # Off in the fork server only: the task's own entry point runs with the task's own environment.
    "MLFLOW_DISABLE_TELEMETRY": "true",
}

# For each threaded library the fork server may have loaded: the variables a fresh process would read for
# its thread count, first match wins (else one thread per usable core).
_THREAD_VARIABLES = {
    "openblas": ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"),
    "mkl": ("MKL_NUM_THREADS", "OMP_NUM_THREADS"),
    "openmp": ("OMP_NUM_THREADS",),
}


def thread_names(pid: int | str = "self") -> list[str]:
    """The OS threads of a process by name (native ones included, which `threading` does not see)."""
    names = []
    for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:  # ended while we looked
            continue
    return names


def fork_problem() -> str | None:
    """Why forking this process now could crash the child, or None when it has exactly one thread."""
    names = thread_names()
    if len(names) <= 1:
        return None
    return (
        f"it has {len(names)} threads ({', '.join(names)}), and a child forked beside native threads "
        "can crash; workers are spawned as fresh processes instead"
    )


def wanted_threads(variables: tuple[str, ...], env: Mapping[str, str]) -> int:
    """The thread count a library reading `variables` would choose in a fresh process with `env`."""
    for name in variables:
        first = env.get(name, "").split(",")[0].strip()
        if first.isdigit() and int(first) > 0:
            return int(first)
    return len(os.sched_getaffinity(0))


def restore_limits(env: Mapping[str, str]) -> None:
    """In a forked task: give the libraries loaded before the fork the thread counts `env` asks for."""
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()
    for internal_api, variables in _THREAD_VARIABLES.items():
        loaded = controller.select(internal_api=internal_api)
        if loaded:
            loaded.limit(limits=wanted_threads(variables, env))
    if "pyarrow" in sys.modules:  # Arrow sizes its pool from OMP_NUM_THREADS when it first makes it
        sys.modules["pyarrow"].set_cpu_count(wanted_threads(("OMP_NUM_THREADS",), env))
