"""What a DAG run's parent run shows of its children's metrics, written once when the run ends.

Users look at the run `mlflow run` reports, which for us is the parent; the entry point logged its metrics
in a child run. So, per task node:

- a stage of one partition: the child's metrics, with their whole history (step and timestamp), land on the
  parent under the same keys, as `mlflow run -b local` records them;
- a stage of several: `<metric>/min`, `<metric>/max` and `<metric>/mean` over the latest values of its
  finished partitions; for a sweep, tags `best/<metric>/min` and `best/<metric>/max` name the combination
  (its swept parameters, partition and run) with the lowest and the highest value, as MLflow's
  hyperparameter examples pick their best run by hand.

A DAG with one task node uses the keys as they are; with several, each key starts with `<node>/` (the MLflow
UI groups charts by that prefix). A failure here is a warning: the run's outcome does not depend on it.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

from mlflow.entities import Metric

from concurrent_mlflow.dag import Dag, ProjectNode, SourceNode
from concurrent_mlflow.tracking import TAG_PREFIX, Tracking

log = logging.getLogger(__name__)


def summarize(
    tracking: Tracking, parent: str, experiment_id: str, dag: Dag, partitions: Mapping[str, int]
) -> None:
    """Put the children's metrics (or their summary) on the parent run; `partitions` by node id."""
    by_node: dict[str, list[Any]] = {}
    for (node_id, _), run in sorted(_finished_children(tracking, parent, experiment_id).items()):
        by_node.setdefault(node_id, []).append(run)
    task_nodes = [node for node in dag.nodes if not isinstance(node, SourceNode)]
    metrics: list[Metric] = []
    tags: dict[str, str] = {}
    for node in task_nodes:
        runs = by_node.get(node.id)
        prefix = "" if len(task_nodes) == 1 else f"{node.id}/"
        if not runs:
            continue
        if partitions.get(node.id) == 1:
            metrics += _history(tracking, runs[0], prefix)
        else:
            swept = list(node.sweep) if isinstance(node, ProjectNode) else []
            found, best = _summary(runs, prefix, swept)
            metrics += found
            tags.update(best)
    if metrics:
        tracking.log_metrics(parent, metrics)
    if tags:
        tracking.set_tags(parent, tags)


def _finished_children(tracking: Tracking, parent: str, experiment_id: str) -> dict[tuple[str, int], Any]:
    """The FINISHED child run of each partition (the latest attempt's, if several finished)."""
    chosen: dict[tuple[str, int], Any] = {}
    for run in tracking.finished_children(experiment_id, parent):
        tags = run.data.tags
        key = (tags[f"{TAG_PREFIX}node"], int(tags[f"{TAG_PREFIX}partition"]))
        if key not in chosen or _attempt(run) > _attempt(chosen[key]):
            chosen[key] = run
    return chosen


def _attempt(run: Any) -> int:
    return int(run.data.tags.get(f"{TAG_PREFIX}attempt", "1"))


def _history(tracking: Tracking, run: Any, prefix: str) -> list[Metric]:
    """Every value the run logged for each metric, with its step and time."""
    history: list[Metric] = []
    for key in sorted(run.data.metrics):
        found = tracking.metric_history(run.info.run_id, key)
        history += [Metric(prefix + key, m.value, m.timestamp, m.step) for m in found]
    return history


def _summary(runs: Sequence[Any], prefix: str, swept: Sequence[str]) -> tuple[list[Metric], dict[str, str]]:
    """min, max and mean of each metric's latest values; for a sweep, the best combination each way."""
    now = int(time.time() * 1000)
    metrics: list[Metric] = []
    tags: dict[str, str] = {}
    for key in sorted({key for run in runs for key in run.data.metrics}):
        having = [run for run in runs if key in run.data.metrics]
        values = [float(run.data.metrics[key]) for run in having]
        name = prefix + key
        metrics += [
            Metric(f"{name}/min", min(values), now, 0),
            Metric(f"{name}/max", max(values), now, 0),
            Metric(f"{name}/mean", statistics.fmean(values), now, 0),
        ]
        if swept:
            lowest = min(having, key=lambda run: float(run.data.metrics[key]))
            highest = max(having, key=lambda run: float(run.data.metrics[key]))
            tags[f"best/{name}/min"] = _combination(lowest, swept)
            tags[f"best/{name}/max"] = _combination(highest, swept)
    return metrics, tags


def _combination(run: Any, swept: Sequence[str]) -> str:
    """`alpha=0.1 l1_ratio=0.5 (partition 3, run 5f2c…)`: a sweep partition by its parameters."""
    params = " ".join(f"{name}={run.data.params.get(name, '?')}" for name in swept)
    partition = run.data.tags.get(f"{TAG_PREFIX}partition", "?")
    return f"{params} (partition {partition}, run {run.info.run_id})"
