"""Whether a project node's environment can be built where its tasks run, checked before a run starts.

MLflow finds out inside a task, after the run is created (and `mlflow run -b local` leaves that run RUNNING):
no conda, no pyenv for virtualenv, no running Docker, conda packages its conversion to a virtualenv drops.
We ask MLflow's own checks, with its messages, when the DAG is validated, and add the fix.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

import yaml

from concurrent_mlflow.dag import Dag, ProjectNode
from concurrent_mlflow.project import ResolvedProject


def environment_problems(dag: Dag, node: ProjectNode, project: ResolvedProject) -> list[str]:
    """What keeps the node's project environment from being built where its tasks run: found now, not in
    a worker's traceback after the run has started."""
    local = not dag.placement(node)
    if project.env_type == "docker":
        if not local:
            return []  # its tasks' pods run in the project's image (which must hold concurrent-mlflow)
        if missing := _docker_missing():
            return [
                f"project {node.project!r} declares a docker_env, which MLflow runs with Docker here: "
                f"{missing.strip()} Start or install Docker, or give the project a python_env or conda_env."
            ]
        return []
    if dag.env_manager(node) == "conda" and project.env_type == "python_env":
        return [
            "a python_env project cannot be executed using conda (MLflow's rule): use uv, virtualenv or local"
        ]
    if local and dag.env_manager(node) == "conda" and (missing := _conda_missing()):
        return [
            f"env_manager conda: {missing} Or use the uv env manager (--env-manager uv; in a DAG, "
            "env_manager: uv), which builds the environment from conda.yaml's python version and pip "
            "dependencies."
        ]
    converting = dag.env_manager(node) in ("uv", "virtualenv") and project.env_type == "conda_env"
    if converting and (dropped := _conda_only(project)):
        return [
            f"env_manager {dag.env_manager(node)} builds a virtualenv from conda.yaml's python version and "
            f"its `pip:` list; its conda packages {', '.join(map(repr, dropped))} would not be installed "
            "(MLflow drops them): list them under `pip:` if PyPI has them, or use env_manager conda"
        ]
    if local and dag.env_manager(node) == "virtualenv" and (missing := _pyenv_missing()):
        return [
            f"env_manager virtualenv installs the project's Python with pyenv: {missing} "
            "Or use env_manager uv."
        ]
    return []


def _docker_missing() -> str | None:
    """MLflow's message when Docker is not installed or its daemon is not running, else None."""
    from mlflow.projects.docker import validate_docker_installation

    return _refusal(validate_docker_installation)


def _conda_only(project: ResolvedProject) -> list[str]:
    """The conda dependencies MLflow's conversion to a virtualenv leaves out: all but python, pip,
    setuptools and wheel (its `_CONDA_DEPENDENCY_REGEX`) and the `pip:` list."""
    from mlflow.utils.environment import _CONDA_DEPENDENCY_REGEX

    if project.env_file is None:
        return []
    try:
        document = yaml.safe_load(project.env_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []  # MLflow reports an unreadable file when it builds the environment
    dependencies = document.get("dependencies") if isinstance(document, dict) else None
    return [
        dependency
        for dependency in dependencies or []
        if isinstance(dependency, str) and not _CONDA_DEPENDENCY_REGEX.match(dependency.replace(" ", ""))
    ]


def _pyenv_missing() -> str | None:
    """MLflow's message when the pyenv its virtualenv manager runs is not installed, else None."""
    from mlflow.utils.virtualenv import _validate_pyenv_is_available

    return _refusal(_validate_pyenv_is_available)


def _refusal(check: Callable[[], object]) -> str | None:
    """The message of the MlflowException one of MLflow's own checks raises, or None if it passes."""
    from mlflow.exceptions import MlflowException

    try:
        check()
    except MlflowException as exc:
        return str(exc.message)
    return None


def _conda_missing() -> str | None:
    """MLflow's message when the conda it would run is not installed, else None."""
    from mlflow.environment_variables import MLFLOW_CONDA_HOME
    from mlflow.utils.conda import get_conda_bin_executable

    conda = str(get_conda_bin_executable("conda"))  # type: ignore[no-untyped-call]
    if shutil.which(conda) is not None:
        return None
    return (
        f"Could not find Conda executable at {conda}. Ensure Conda is installed as per the instructions at "
        "https://conda.io/projects/conda/en/latest/user-guide/install/index.html. You can also configure "
        f"MLflow to look for a specific Conda executable by setting the {MLFLOW_CONDA_HOME.name} environment "
        "variable to the path of the Conda executable."
    )
