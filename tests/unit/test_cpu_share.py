"""A task's share of the cores, as the thread variables numeric libraries read."""

from __future__ import annotations

import pytest

from concurrent_mlflow import cpu_share


@pytest.mark.parametrize(
    ("cores", "at_once", "expected"),
    [
        (2, 2, 1),  # two tasks on two cores: one thread each, not two fighting in each
        (2, 1, 2),  # a lone task may use the machine
        (8, 3, 2),  # rounded down: never more threads than cores in all
        (2, 20, 1),  # at least one
        (2, 0, 2),
    ],
)
def test_task_threads(cores: int, at_once: int, expected: int) -> None:
    assert cpu_share.task_threads(cores, at_once) == expected


@pytest.mark.parametrize(
    ("cpu", "expected"),
    [("3", 3), ("1500m", 1), ("0.5", 1), ("250m", 1), ("2k", None), (None, None), ("0", None)],
)
def test_a_pods_threads_follow_its_declared_cpu(cpu: str | None, expected: int | None) -> None:
    assert cpu_share.declared_cpus(cpu) == expected


def test_variables_the_user_set_are_left_as_they_are() -> None:
    env = cpu_share.thread_env(2, {"MKL_NUM_THREADS": "7", "OMP_NUM_THREADS": ""})
    assert env == {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "NUMEXPR_NUM_THREADS": "2"}
