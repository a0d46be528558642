"""The helper API that MLproject code calls inside a task.

    from concurrent_mlflow import task
    for path in task.inputs("images"):
        ...
        task.log_output(out_path, label="cat")   # metadata a downstream `key` partitioner can use

Everything is also plain environment variables (`CONCURRENT_INPUT_DIR`, `CONCURRENT_OUTPUT_DIR`,
`CONCURRENT_PARTITION`, `CONCURRENT_PARTITIONS`, `MLFLOW_RUN_ID`), so code need not import this module.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from concurrent_mlflow.errors import ConcurrentError
from concurrent_mlflow.manifest import Manifest

ENV_INPUT_DIR = "CONCURRENT_INPUT_DIR"
ENV_OUTPUT_DIR = "CONCURRENT_OUTPUT_DIR"
ENV_PARTITION = "CONCURRENT_PARTITION"
ENV_PARTITIONS = "CONCURRENT_PARTITIONS"
ENV_MANIFEST = "CONCURRENT_MANIFEST"
ENV_OUTPUT_METADATA = "CONCURRENT_OUTPUT_METADATA"


@dataclass(frozen=True)
class TaskInput:
    """One input file of this partition, with the metadata its producer recorded."""

    path: Path
    size: int
    metadata: dict[str, Any]


def _env_path(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        raise ConcurrentError(
            f"{name} is not set: this code is not running inside a Concurrent for MLflow task."
        )
    return Path(value)


def input_dir() -> Path:
    return _env_path(ENV_INPUT_DIR)


def output_dir() -> Path:
    return _env_path(ENV_OUTPUT_DIR)


def partition() -> int:
    return int(os.environ.get(ENV_PARTITION, "0"))


def partitions() -> int:
    return int(os.environ.get(ENV_PARTITIONS, "1"))


def _manifest() -> Manifest:
    return Manifest.loads(_env_path(ENV_MANIFEST).read_text(encoding="utf-8"))


def input_names() -> list[str]:
    return sorted(_manifest().inputs)


def input_items(name: str | None = None) -> list[TaskInput]:
    """This partition's files of input `name` (all inputs when None), in a stable order."""
    manifest, root = _manifest(), input_dir()
    if name is not None and name not in manifest.inputs:
        known = ", ".join(sorted(manifest.inputs)) or "none"
        raise ConcurrentError(f"This task has no input named {name!r}; its inputs are: {known}.")
    names = [name] if name is not None else sorted(manifest.inputs)
    return [
        TaskInput(root / n / item.relpath, item.size, dict(item.metadata))
        for n in names
        for item in manifest.inputs[n]
    ]


def inputs(name: str | None = None) -> list[Path]:
    """Paths of this partition's files of input `name` (all inputs when None)."""
    return [item.path for item in input_items(name)]


def log_output(path: str | Path, **metadata: Any) -> Path:
    """Record metadata for a file written under the output dir; returns its absolute path.

    The file itself is logged with everything else in the output dir when the task ends.
    """
    root = output_dir().resolve()
    target = (root / path).resolve() if not Path(path).is_absolute() else Path(path).resolve()
    if not target.is_relative_to(root):
        raise ConcurrentError(f"log_output({str(path)!r}): outputs must be inside {root}.")
    json.dumps(metadata)  # fail here, in the user's code, if a value cannot be stored
    record = {"relpath": target.relative_to(root).as_posix(), "metadata": metadata}
    with _env_path(ENV_OUTPUT_METADATA).open("a", encoding="utf-8") as sink:
        sink.write(json.dumps(record) + "\n")
    return target
