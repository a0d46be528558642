"""How many threads a task's numeric libraries may start: its share of the cores.

BLAS (OpenBLAS, MKL), OpenMP and Arrow each size their thread pools to every core of the machine. Two tasks
on two cores then run four or more busy threads that preempt each other: batch inference scored 5M rows per
task in 7.5-8 s that way and in 4.3 s with one thread each (bench p2, 2 cores). So, as Ray and Dask do, every
task is given its share through the variables these libraries read (`OMP_NUM_THREADS` and friends; Arrow
reads `OMP_NUM_THREADS` too): on this machine the cores over the tasks of its stage that run at once; in a
pod, which sees every core of its Kubernetes node, the CPUs its node declares (`resources.cpu`). A variable
the user set themselves is left alone: their choice wins.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def usable_cores() -> int:
    return len(os.sched_getaffinity(0))


def declared_cpus(cpu: str | None) -> int | None:
    """The whole cores a node's `resources.cpu` (`2`, `0.5`, `500m`) stands for, at least 1; None when
    not declared or not a plain number of cores."""
    if not cpu:
        return None
    text = cpu.strip()
    try:
        cores = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    except ValueError:
        return None
    return max(1, math.floor(cores)) if cores > 0 else None


def task_threads(cores: int, at_once: int) -> int:
    """Threads for one task when `at_once` tasks share `cores`."""
    return max(1, cores // max(1, at_once))


def thread_env(threads: int, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables that give a task `threads` threads, except those the user set in `environ`."""
    return {name: str(threads) for name in THREAD_VARIABLES if not environ.get(name)}
