"""MLproject files read exactly as MLflow reads them, without importing MLflow for the plain ones.

MLflow's loader (`mlflow.projects._project_spec.load_project`) defines what an MLproject means, and we want to
accept exactly what `mlflow run` accepts. But importing any part of MLflow runs its package `__init__`, which
loads tracking, pandas and more: seconds that `concurrent dag validate` should not pay to read a YAML file.

So `load_plain` repeats MLflow's loader step by step, with the same calls (the same `yaml.safe_load` of the
file opened the same way, the same `os.path` joins), for the documents whose reading it can follow all the
way: a mapping with a name, entry points whose parameters are a type or a {type, default} mapping, and no
environment, or a python_env or conda_env file that exists. Everything else (a Databricks job, a docker_env,
anything MLflow would reject) returns None, and the caller asks MLflow (`from_mlflow`), so every error is
MLflow's own. `uri_problem` is MLflow's check of a `uri` parameter. tests/unit/test_mlproject.py holds both
against MLflow on every shape.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# MLflow's names (mlflow.projects.env_type, mlflow.utils.environment, _project_spec).
DOCKER, PYTHON, CONDA = "docker_env", "python_env", "conda_env"
PYTHON_ENV_FILE, CONDA_FILE = "python_env.yaml", "conda.yaml"
_FALLBACK_KEYS = ("databricks_spark_job", DOCKER)


@dataclass(frozen=True)
class Parameter:
    name: Any
    type: Any
    default: Any


@dataclass(frozen=True)
class EntryPoint:
    name: Any
    parameters: dict[Any, Parameter]
    command: Any


@dataclass(frozen=True)
class Project:
    """What we read of MLflow's `Project`: its name, entry points and environment."""

    name: Any
    entry_points: dict[Any, EntryPoint]
    env_type: str | None
    env_config_path: str | None
    docker_image: Any = None  # a docker_env's `image` (only MLflow's loader reads docker_env projects)
    docker_environment: Any = None  # a docker_env's `environment`: [NAME, value] pairs and NAMEs to copy


def load_plain(directory: Path) -> Project | None:
    """The project in `directory` as MLflow's loader reads it, or None: then only MLflow may read it."""
    found = [name for name in os.listdir(directory) if name.lower() == "mlproject"]  # noqa: PTH208
    if len(found) != 1:
        return None
    try:
        with open(os.path.join(directory, found[0])) as file:  # noqa: PTH118, PTH123 (as MLflow opens it)
            document = yaml.safe_load(file)
    except (OSError, ValueError, yaml.YAMLError):
        return None
    if not isinstance(document, dict) or any(key in document for key in _FALLBACK_KEYS):
        return None
    if len({PYTHON, CONDA}.intersection(document)) > 1:
        return None
    entry_points = _entry_points(document.get("entry_points", {}))
    if entry_points is None:
        return None
    return _with_environment(directory, document, document.get("name"), entry_points)


def from_mlflow(directory: Path) -> Project:
    """The project in `directory` read by MLflow itself (imports MLflow; raises what its loader raises)."""
    from mlflow.projects import _project_spec

    spec: Any = _project_spec.load_project(str(directory))  # type: ignore[no-untyped-call]
    entry_points = {
        name: EntryPoint(
            ep.name, {k: Parameter(p.name, p.type, p.default) for k, p in ep.parameters.items()}, ep.command
        )
        for name, ep in dict(spec._entry_points).items()
    }
    docker_env = spec.docker_env or {}
    return Project(
        spec.name,
        entry_points,
        spec.env_type,
        spec.env_config_path,
        docker_env.get("image"),
        docker_env.get("environment"),
    )


def uri_problem(name: str, value: str) -> str | None:
    """MLflow's check of a `uri` parameter's value before a run (`Parameter._compute_uri_value`)."""
    if len(urllib.parse.urlparse(value).scheme) > 0:
        return None
    return f"Expected URI for parameter {name} but got {value}"


def _entry_points(raw: object) -> dict[Any, EntryPoint] | None:
    if not isinstance(raw, dict):
        return None
    entry_points = {}
    for name, entry_point in raw.items():
        if not isinstance(entry_point, dict):
            return None
        parameters = _parameters(entry_point.get("parameters", {}))
        if parameters is None:
            return None
        entry_points[name] = EntryPoint(name, parameters, entry_point.get("command"))
    return entry_points


def _parameters(raw: object) -> dict[Any, Parameter] | None:
    if not isinstance(raw, dict):
        return None
    parameters = {}
    for name, spec in raw.items():
        if isinstance(spec, str):
            parameters[name] = Parameter(name, spec, None)
        elif isinstance(spec, dict):
            parameters[name] = Parameter(name, spec.get("type", "string"), spec.get("default"))
        else:
            return None
    return parameters


def _with_environment(
    directory: Path, document: dict[Any, Any], name: object, entry_points: dict[Any, EntryPoint]
) -> Project | None:
    for field in (PYTHON, CONDA):
        if named := document.get(field):
            if not isinstance(named, str):
                return None
            path = os.path.join(directory, named)  # noqa: PTH118 (MLflow's spelling of the path)
            return Project(name, entry_points, field, path) if os.path.exists(path) else None  # noqa: PTH110
    for field, file_name in ((PYTHON, PYTHON_ENV_FILE), (CONDA, CONDA_FILE)):
        path = os.path.join(directory, file_name)  # noqa: PTH118
        if os.path.exists(path):  # noqa: PTH110
            return Project(name, entry_points, field, path)
    return Project(name, entry_points, PYTHON, None)
