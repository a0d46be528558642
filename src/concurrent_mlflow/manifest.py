"""Partition manifests: the list of input items one task receives, and their JSON form.

A manifest is computed once by the control plane (see `plan`) and stored as an artifact of the parent
run; a task reads only its own. Items are plain values so the worker can load them without the planner.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


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
