"""Turns a ready node of a DAG run into a stage: a task spec and one partition manifest per task.

Planning happens once per stage, in the control plane: it lists the upstream outputs (source listings or the
output indexes of upstream tasks), splits every incoming edge with its partitioner into the same number of
partitions, and pins git projects to a commit so every partition and every retry runs the same code.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from concurrent_mlflow import partition, sources
from concurrent_mlflow.dag import Dag, InferenceNode, ProjectNode, SourceNode
from concurrent_mlflow.errors import ConcurrentError, DagValidationError, Problem
from concurrent_mlflow.manifest import InferenceSpec, InputItem, Manifest, ProjectSpec, TaskSpec
from concurrent_mlflow.project import (
    ResolvedProject,
    check_parameters,
    check_sweep_values,
    effective_parameters,
    is_branch,
    resolve_project,
)

# Files a node produced, by node id: the source listing, or all upstream partitions' outputs.
OutputsOf = Callable[[str], list[InputItem]]


@dataclass(frozen=True)
class StagePlan:
    spec: TaskSpec
    manifests: list[Manifest]


def param_str(value: object) -> str:
    """MLflow params are strings; booleans are written the way YAML and MLprojects spell them."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def list_source(
    node: SourceNode,
    base_dir: Path,
    modified_after: datetime | None = None,
    modified_before: datetime | None = None,
    check_link: Callable[[Path], None] | None = None,
) -> list[InputItem]:
    return sources.list_source(
        node.uri,
        base_dir=base_dir,
        pattern=node.pattern,
        modified_after=modified_after,
        modified_before=modified_before,
        check_link=check_link,
    )


def plan_stage(
    dag: Dag,
    node_id: str,
    *,
    base_dir: Path,
    cache_dir: Path,
    outputs_of: OutputsOf,
    upstream_partitions: Mapping[str, int],
) -> StagePlan:
    node = dag.node(node_id)
    if isinstance(node, SourceNode):
        raise ConcurrentError(f"source node {node_id!r} has no tasks to plan")
    inputs = {edge.input: outputs_of(edge.source) for edge in dag.incoming(node_id)}
    combos = partition.sweep_grid(node.sweep) if isinstance(node, ProjectNode) else [{}]
    n = _partition_count(dag, node, inputs, len(combos), upstream_partitions)
    slices: dict[str, list[list[InputItem]]] = {}
    for edge in dag.incoming(node_id):
        slices[edge.input] = partition.split(
            edge.partitioner.kind, inputs[edge.input], n, edge.partitioner.options()
        )
    manifests = [
        Manifest(
            node=node_id,
            partition=i,
            partitions=n,
            inputs={name: parts[i] for name, parts in slices.items()},
            parameters=combos[i] if len(combos) == n else {},
        )
        for i in range(n)
    ]
    return StagePlan(spec=_spec(dag, node, base_dir, cache_dir), manifests=manifests)


def _partition_count(
    dag: Dag,
    node: ProjectNode | InferenceNode,
    inputs: Mapping[str, list[InputItem]],
    combos: int,
    upstream_partitions: Mapping[str, int],
) -> int:
    edges = dag.incoming(node.id)
    kinds = {e.partitioner.kind for e in edges}
    if combos > 1:
        return combos
    if "gather" in kinds:
        return 1
    one_to_one = {upstream_partitions[e.source] for e in edges if e.partitioner.kind == "one-to-one"}
    if len(one_to_one) > 1:
        raise ConcurrentError(
            f"node {node.id!r}: its one-to-one inputs come from nodes with different "
            f"partition counts {sorted(one_to_one)}"
        )
    if one_to_one:
        return one_to_one.pop()
    requested = node.partitions or 1
    splittable = [e for e in edges if e.partitioner.kind in ("file", "directory", "key")]
    if not splittable:
        return requested
    return max(
        partition.effective_partitions(
            e.partitioner.kind, inputs[e.input], requested, e.partitioner.options()
        )
        for e in splittable
    )


def _spec(dag: Dag, node: ProjectNode | InferenceNode, base_dir: Path, cache_dir: Path) -> TaskSpec:
    if isinstance(node, InferenceNode):
        return InferenceSpec(
            model=node.model,
            batch_size=node.batch_size,
            columns=None if node.columns is None else tuple(node.columns),
            prediction_column=node.prediction_column,
        )
    from concurrent_mlflow.run_tags import project_tags  # MLflow's tag helpers: not for `dag validate`

    project = resolve_project(node.project, node.version, base_dir=base_dir, cache_dir=cache_dir)
    env_manager = dag.env_manager(node)
    branch = is_branch(project, cache_dir)
    return ProjectSpec(
        project=project.uri if project.commit else str(project.work_dir),  # pinned: workers check it out
        commit=project.commit,
        base_dir=str(base_dir),
        entry_point=node.entry_point,
        parameters=effective_parameters(
            project, node.entry_point, {k: param_str(v) for k, v in node.parameters.items()}
        ),
        env_manager=env_manager,
        tags=project_tags(project, node.entry_point, env_manager, branch=branch),
        image=project.docker_image,
    )


def check_projects(dag: Dag, *, base_dir: Path, cache_dir: Path) -> dict[str, ResolvedProject]:
    """Fetch every project node's MLproject and check entry points and parameters; raise all problems.
    Returns each project node's project, by node id."""
    problems: list[Problem] = []
    resolved: dict[str, ResolvedProject] = {}
    for node in dag.nodes:
        if not isinstance(node, ProjectNode):
            continue
        where = f"nodes.{node.id}"
        try:
            project = resolve_project(node.project, node.version, base_dir=base_dir, cache_dir=cache_dir)
        except ConcurrentError as exc:
            problems.append(Problem(f"{where}.project", str(exc)))
            continue
        resolved[node.id] = project
        values = {k: param_str(v) for k, v in node.parameters.items()}
        values.update({k: param_str(v[0]) for k, v in node.sweep.items() if v})
        checked = check_parameters(
            project,
            node.entry_point,
            values,
            extra_allowed=node.extra_parameters == "allow",
            base_dir=None if dag.placement(node) else base_dir,
        )
        problems += [Problem(f"{where}.parameters", p) for p in checked]
        problems += _sweep_value_problems(node, project, where)
        problems += [Problem(f"{where}.env_manager", p) for p in environment_problems(dag, node, project)]
    if problems:
        raise DagValidationError(problems, f"DAG {dag.name!r}")
    return resolved


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
    from mlflow.exceptions import MlflowException
    from mlflow.projects.docker import validate_docker_installation

    try:
        validate_docker_installation()  # type: ignore[no-untyped-call]
    except MlflowException as exc:
        return str(exc.message)
    return None


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
    from mlflow.exceptions import MlflowException
    from mlflow.utils.virtualenv import _validate_pyenv_is_available

    try:
        _validate_pyenv_is_available()  # type: ignore[no-untyped-call]
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


def _sweep_value_problems(node: ProjectNode, project: ResolvedProject, where: str) -> list[Problem]:
    """Every swept value after the first against its MLproject type (the first is checked as a parameter)."""
    return [
        Problem(f"{where}.sweep.{name}", problem)
        for name, values in node.sweep.items()
        for problem in check_sweep_values(project, node.entry_point, name, [param_str(v) for v in values[1:]])
    ]
