"""Turns a ready node of a DAG run into a stage: a task spec and one partition manifest per task.

Planning happens once per stage, in the control plane: it lists the upstream outputs (source listings or the
output indexes of upstream tasks), splits every incoming edge with its partitioner into the same number of
partitions, and pins git projects to a commit so every partition and every retry runs the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from concurrent_mlflow import git_credentials, partition, sources
from concurrent_mlflow.dag import Dag, InferenceNode, ProjectNode, SourceNode
from concurrent_mlflow.environments import environment_problems
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
        # Pinned: workers check it out; credentials reach them through git's environment, not the spec.
        project=git_credentials.without(project.uri) if project.commit else str(project.work_dir),
        commit=project.commit,
        base_dir=str(base_dir),
        entry_point=node.entry_point,
        parameters=effective_parameters(
            project, node.entry_point, {k: param_str(v) for k, v in node.parameters.items()}
        ),
        env_manager=env_manager,
        tags=project_tags(project, node.entry_point, env_manager, branch=branch),
        image=project.docker_image,
        image_env=project.docker_environment,
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


def _sweep_value_problems(node: ProjectNode, project: ResolvedProject, where: str) -> list[Problem]:
    """Every swept value after the first against its MLproject type (the first is checked as a parameter)."""
    return [
        Problem(f"{where}.sweep.{name}", problem)
        for name, values in node.sweep.items()
        for problem in check_sweep_values(project, node.entry_point, name, [param_str(v) for v in values[1:]])
    ]
