"""What the planner hands a task: its stage's spec (what to run) and its partition's manifest (which inputs).

Both are computed once by the control plane (see `plan`) and stored as artifacts of the parent run; a task
reads the spec and only its own manifest. They are plain frozen values with one JSON form each, so the
worker can load them without the planner, and every module reads named fields, never string keys.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class InputItem:
    """One input file.

    `uri` says where to fetch it from: a local absolute path, an fsspec URL (`s3://b/k`), or an MLflow
    artifact URI (`runs:/<run id>/<artifact path>`). `relpath` is where it lands below the input's
    directory in the task (POSIX separators, always relative, never containing `..`). `size` is in bytes.
    `metadata` holds what the upstream task recorded with `task.log_output(path, **metadata)`.
    `origin` is the upstream partition that produced it (None for files of a `source` node); the
    `one-to-one` partitioner routes by it.
    """

    uri: str
    relpath: str
    size: int
    metadata: dict[str, Any] = field(default_factory=dict)
    origin: int | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.metadata:
            del data["metadata"]
        if self.origin is None:
            del data["origin"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InputItem:
        return cls(
            uri=str(data["uri"]),
            relpath=str(data["relpath"]),
            size=int(data["size"]),
            metadata=dict(data.get("metadata") or {}),
            origin=None if data.get("origin") is None else int(data["origin"]),
        )


@dataclass(frozen=True)
class Manifest:
    """What partition `partition` of `partitions` of one node receives: items per input name, and params."""

    node: str
    partition: int
    partitions: int
    inputs: dict[str, list[InputItem]]
    parameters: dict[str, str] = field(default_factory=dict)

    def dumps(self) -> str:
        return json.dumps(
            {
                "node": self.node,
                "partition": self.partition,
                "partitions": self.partitions,
                "parameters": self.parameters,
                "inputs": {name: [i.to_json() for i in items] for name, items in self.inputs.items()},
            },
            sort_keys=True,
        )

    @classmethod
    def loads(cls, text: str) -> Manifest:
        data = json.loads(text)
        return cls(
            node=str(data["node"]),
            partition=int(data["partition"]),
            partitions=int(data["partitions"]),
            parameters={str(k): str(v) for k, v in data.get("parameters", {}).items()},
            inputs={name: [InputItem.from_json(i) for i in items] for name, items in data["inputs"].items()},
        )

    def input_bytes(self) -> int:
        return sum(item.size for items in self.inputs.values() for item in items)


@dataclass(frozen=True, kw_only=True)
class ProjectSpec:
    """Run an MLproject entry point: `project` is a git URI or a local directory, pinned to `commit` (git)."""

    kind: ClassVar[str] = "project"
    project: str
    commit: str | None
    base_dir: str  # where the DAG's relative paths start
    entry_point: str
    parameters: dict[
        str, str
    ]  # every effective one, defaults included; a partition's manifest may add or override some
    env_manager: str
    manifests_per_file: int | None = None  # how the stored plan packs manifests (None: one per file)
    tags: dict[str, str] = field(default_factory=dict)  # MLflow's tags of a run of this project (run_tags.py)
    image: str | None = None  # a docker_env project's image: its tasks on Kubernetes run in it
    image_env: dict[str, str] = field(default_factory=dict)  # its docker_env.environment, set in those pods


@dataclass(frozen=True, kw_only=True)
class InferenceSpec:
    """Score the partition's files with the MLflow model `model`."""

    kind: ClassVar[str] = "inference"
    model: str
    batch_size: int
    columns: tuple[str, ...] | None  # the features; None: every column
    prediction_column: str
    manifests_per_file: int | None = None


TaskSpec = ProjectSpec | InferenceSpec


def spec_to_json(spec: TaskSpec) -> dict[str, Any]:
    data = {"kind": spec.kind, **asdict(spec)}
    if isinstance(spec, InferenceSpec) and spec.columns is not None:
        data["columns"] = list(spec.columns)
    if spec.manifests_per_file is None:
        del data["manifests_per_file"]
    return data


def spec_from_json(data: dict[str, Any]) -> TaskSpec:
    """The spec `spec_to_json` wrote (unknown keys are ignored, so an older worker reads a newer plan)."""
    per_file = None if data.get("manifests_per_file") is None else int(data["manifests_per_file"])
    if data.get("kind") == InferenceSpec.kind:
        columns = data.get("columns")
        return InferenceSpec(
            model=str(data["model"]),
            batch_size=int(data["batch_size"]),
            columns=None if columns is None else tuple(str(c) for c in columns),
            prediction_column=str(data["prediction_column"]),
            manifests_per_file=per_file,
        )
    if data.get("kind") != ProjectSpec.kind:
        raise ValueError(f"unknown task spec kind {data.get('kind')!r}")
    return ProjectSpec(
        project=str(data["project"]),
        commit=None if data.get("commit") is None else str(data["commit"]),
        base_dir=str(data["base_dir"]),
        entry_point=str(data["entry_point"]),
        parameters={str(k): str(v) for k, v in (data.get("parameters") or {}).items()},
        env_manager=str(data["env_manager"]),
        manifests_per_file=per_file,
        tags={str(k): str(v) for k, v in (data.get("tags") or {}).items()},
        image_env={str(k): str(v) for k, v in (data.get("image_env") or {}).items()},
        image=None if data.get("image") is None else str(data["image"]),
    )
