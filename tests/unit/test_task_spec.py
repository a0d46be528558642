"""The task spec's one JSON form: what the planner writes is what every worker reads, old plans included."""

from __future__ import annotations

import pytest

from concurrent_mlflow.manifest import (
    InferenceSpec,
    Manifest,
    ProjectSpec,
    TaskSpec,
    spec_from_json,
    spec_to_json,
)
from concurrent_mlflow.taskfile import TaskFile

PROJECT = ProjectSpec(
    project="https://git.example/repo.git#sub",
    commit="0" * 40,
    base_dir="/dags",
    entry_point="main",
    parameters={"alpha": "0.5"},
    env_manager="uv",
)
INFERENCE = InferenceSpec(model="models:/m/1", batch_size=512, columns=("a", "b"), prediction_column="p")


@pytest.mark.parametrize(
    "spec",
    [
        PROJECT,
        INFERENCE,
        InferenceSpec(
            model="runs:/r/m", batch_size=1, columns=None, prediction_column="y", manifests_per_file=7
        ),
    ],
)
def test_a_spec_reads_back_as_written_and_through_a_task_file(spec: TaskSpec) -> None:
    assert spec_from_json(spec_to_json(spec)) == spec
    handed = TaskFile(spec, Manifest(node="n", partition=0, partitions=1, inputs={}), "1", None)
    assert TaskFile.loads(handed.dumps()).spec == spec


def test_a_plan_stored_before_specs_were_typed_still_reads() -> None:
    """spec.json as the engine wrote it before: a plain dict, extra keys, no `manifests_per_file`."""
    old = {
        "kind": "project",
        "project": "/p",
        "commit": None,
        "base_dir": "/",
        "entry_point": "main",
        "parameters": {"n": 3},
        "env_manager": "local",
        "something_newer": True,
    }
    spec = spec_from_json(old)
    assert isinstance(spec, ProjectSpec) and spec.parameters == {"n": "3"} and spec.manifests_per_file is None


def test_an_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'notebook'"):
        spec_from_json({"kind": "notebook"})
