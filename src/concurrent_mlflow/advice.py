"""What a person should do after a run failed: retry it, or fix its DAG and start a new run.

A retry (`concurrent run retry RUN_ID`) runs the DAG version stored with the run again, and keeps the outputs
of every stage that succeeded. So it helps where the cause lies outside both: a failed task (flaky code, a
lost machine, a timeout), a source location that was missing or unreachable, an MLflow or project fetch that
failed. It cannot help where a stage failed to plan because of the DAG document itself (a partitioner's
settings, a shape of edges) or of the outputs of upstream stages that a retry keeps (a `key` the files lack).

The engine records which is which in the stage's error (`planning_failure`); the CLI and the API read it back
with `next_step`, so the advice survives the process that wrote it.
"""

from __future__ import annotations

from collections.abc import Iterable

from concurrent_mlflow.errors import ConcurrentError, ExecutorError, ProjectError, SourceError, TrackingError

PLANNING_FAILED = "planning failed: "
# A stage error that starts with this cannot be fixed by a retry of the same run.
NEEDS_NEW_RUN = "planning failed (fix the DAG, then start a new run; a retry reruns the stored DAG): "

# Causes outside the stored DAG and the kept outputs: the same run planned again can get past them.
_OUTSIDE_THE_RUN = (SourceError, ProjectError, TrackingError, ExecutorError)


def planning_failure(exc: ConcurrentError) -> str:
    """The error a stage that could not be planned records: says whether a retry can get past it."""
    prefix = PLANNING_FAILED if isinstance(exc, _OUTSIDE_THE_RUN) else NEEDS_NEW_RUN
    return prefix + str(exc)


def needs_new_run(stage_errors: Iterable[str | None]) -> bool:
    return any(error and error.startswith(NEEDS_NEW_RUN) for error in stage_errors)


def next_step(run_id: str, state: str, stage_errors: Iterable[str | None]) -> str | None:
    """One line saying how to go on after a run ended `state`; None unless it failed or was cancelled."""
    if state not in ("failed", "cancelled"):
        return None
    if needs_new_run(stage_errors):
        return (
            "A retry runs the DAG version stored with this run and keeps its upstream outputs, so it cannot "
            "get past this. Fix the DAG (or the upstream project), then start a new run: "
            "concurrent run DAG.yaml"
        )
    return f"Fix the cause, then: concurrent run retry {run_id}"
