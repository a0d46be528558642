"""Issue 13's data loss, end to end through the `concurrent` command: a stage that cannot be planned never
turns into a success with no partitions on `run retry`, and the advice says what can fix it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from tests.integration.conftest import RunDag, make_files
from tests.integration.test_cli import concurrent

pytestmark = pytest.mark.integration

KEYED = """
name: keyed-retry
nodes:
  - {id: raw, kind: source, uri: data}
  - {id: tag, kind: project, project: "{toolbox}", entry_point: transform}
  - {id: group, kind: project, project: "{toolbox}", entry_point: transform}
  - {id: total, kind: project, project: "{toolbox}", entry_point: count}
edges:
  - {from: raw, to: tag, input: text}
  - {from: tag, to: group, input: text, partitioner: {kind: key, key: KEY}}
  - {from: group, to: total, input: text, partitioner: gather}
"""


def total_children(run_id: str) -> list[Any]:
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    query = f"tags.`concurrent.run_id` = '{run_id}' and tags.`concurrent.node` = 'total'"
    experiment = client.get_experiment_by_name("keyed-retry")
    assert experiment is not None
    return list(client.search_runs([experiment.experiment_id], query))


def test_a_stage_that_cannot_be_planned_stays_failed_on_retry_and_the_advice_is_a_new_run(
    run_dag: RunDag, tmp_path: Path
) -> None:
    make_files(tmp_path / "data", {name: f"word{i} body" for i, name in enumerate(["a.txt", "b.txt"])})
    first = run_dag(KEYED.replace("KEY", "label"))  # the upstream files carry `key`, not `label`
    assert first.state == "failed", first.view

    again = concurrent("run", "retry", first.run_id, "--no-progress", cwd=tmp_path, columns=400)

    assert again.returncode == 1, again.stdout + again.stderr  # it used to "succeed" with an empty gather
    assert f"Run {first.run_id} failed" in again.stderr and "has no metadata 'label'" in again.stderr
    assert total_children(first.run_id) == [], "the gather stage must never run on what `group` never planned"
    assert "group: planning failed (fix the DAG, then start a new run" in again.stderr
    assert (
        "Fix the DAG (or the upstream project), then start a new run: concurrent run DAG.yaml" in again.stderr
    )
    assert "concurrent run retry" not in again.stderr
