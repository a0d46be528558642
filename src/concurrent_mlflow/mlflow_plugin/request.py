"""What `mlflow run -b concurrent` asks for, as a DAG: the project as a `project` node, each backend-config
input as a `source` node split among the partitions by the `file` partitioner, the other backend-config keys
as the project node's fields. Checked by the same parser and project checks as any DAG, with problems named
in the request's terms (backend-config keys, `-P`), so nothing starts from a bad request."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from concurrent_mlflow.dag import Dag, ProjectNode, parse_dag
from concurrent_mlflow.environments import environment_problems
from concurrent_mlflow.errors import DagValidationError, Problem
from concurrent_mlflow.plan import check_projects
from concurrent_mlflow.project import ResolvedProject, is_git_uri, nearest_parameter
from concurrent_mlflow.settings import Paths
from concurrent_mlflow.task_output import parse_output_mode

log = logging.getLogger("concurrent_mlflow.mlflow_plugin")

# The project node's fields a backend config may set, plus `inputs` (source nodes).
NODE_KEYS = (
    "cluster",
    "clusters",
    "partitions",
    "parallelism",
    "retries",
    "timeout",
    "resources",
    "node_selector",
    "tolerations",
)
CONFIG_KEYS = (*NODE_KEYS, "inputs", "output")  # output: which tasks' output the terminal shows
# Keys MLflow adds to every backend config (mlflow.projects._run); of these only ENV_MANAGER matters here.
MLFLOW_KEYS = frozenset(
    {"ENV_MANAGER", "SYNCHRONOUS", "DOCKER_ARGS", "STORAGE_DIR", "build_image", "docker_auth"}
)
REQUEST = "The `-b concurrent` run request"
# What `mlflow run` uses for a project's environment when no --env-manager is given (MLflow's
# `_env_type_to_env_manager`); a project that names no environment runs in this Python, as DAG nodes do.
MLFLOW_ENV_MANAGERS = {"conda_env": "conda", "python_env": "virtualenv"}


@dataclass(frozen=True)
class ProjectRequest:
    """What MLflow asks to run, with relative local paths already resolved against `base_dir`."""

    project_uri: str
    entry_point: str
    params: dict[str, str]
    version: str | None
    experiment: str
    base_dir: Path
    env_manager: str | None
    run_name: str | None = None  # `mlflow run --run-name`, which MLflow itself sets only once `run` returns


def read_config(backend_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Our keys of the backend config; MLflow's own keys are tolerated, any other key is refused."""
    config = dict(backend_config or {})
    unknown = sorted(str(key) for key in config if key not in CONFIG_KEYS and key not in MLFLOW_KEYS)
    if unknown:
        allowed = ", ".join(CONFIG_KEYS)
        problems = [
            Problem(key, f"unknown backend config key; the allowed keys are: {allowed}") for key in unknown
        ]
        raise DagValidationError(problems, "The backend config")
    for key, value in config.items():
        if key in ("DOCKER_ARGS", "build_image", "docker_auth") and value:
            log.warning("the concurrent backend runs no docker command: %s is ignored", key)
    try:
        parse_output_mode(str(config.get("output", "auto")))
    except ValueError as exc:
        raise DagValidationError([Problem("output", str(exc))], "The backend config") from exc
    return {key: value for key, value in config.items() if key in CONFIG_KEYS}


@dataclass(frozen=True)
class RequestDag:
    """A request as a DAG, with its one project node and that node's project as resolved to check it."""

    dag: Dag
    node: ProjectNode
    project: ResolvedProject


def build_dag(request: ProjectRequest, config: Mapping[str, Any], cache_dir: Path) -> RequestDag:
    """The DAG of this request, parsed and its project checked as any DAG's; problems name the request's
    terms (backend config keys, `-P`) rather than DAG fields."""
    document, names = dag_document(request, config)
    try:
        text = yaml.safe_dump(document, sort_keys=False)
    except yaml.YAMLError as exc:  # the Python API takes any object; a document holds JSON-like values
        raise DagValidationError([Problem("", f"not JSON-like values: {exc}")], "The backend config") from exc
    try:
        dag = parse_dag(text, REQUEST)
        resolved = check_projects(dag, base_dir=request.base_dir, cache_dir=cache_dir)
    except DagValidationError as exc:
        raise DagValidationError([_in_request_terms(p, names) for p in exc.problems], REQUEST) from exc
    (node_id, project), *_ = resolved.items()
    node = dag.node(node_id)
    assert isinstance(node, ProjectNode)
    _warn_undeclared(project, request)
    if request.env_manager is None and (chosen := MLFLOW_ENV_MANAGERS.get(project.env_type)):
        dag, node = _with_env_manager(dag, node, chosen)
        problems = environment_problems(dag, node, project)
        if problems:
            hint = f"(without --env-manager, MLflow runs a {project.env_type} project with {chosen})"
            raise DagValidationError([Problem("--env-manager", f"{p} {hint}") for p in problems], REQUEST)
    return RequestDag(dag, node, project)


def _warn_undeclared(project: ResolvedProject, request: ProjectRequest) -> None:
    """MLflow passes an undeclared -P on as `--name value` and logs it; so do we, saying so, since it is
    more often a typo than a wish."""
    spec = project.entry_points.get(request.entry_point)
    if spec is None:  # a script entry point declares nothing: every parameter is passed on
        return
    for name in sorted(set(request.params) - set(spec.parameters)):
        log.warning(
            "-P %s: entry point %r declares no parameter %r%s; it is passed on as `--%s %s`, as `mlflow run` "
            "does",
            name,
            request.entry_point,
            name,
            nearest_parameter(spec, name),
            name,
            request.params[name],
        )


def _with_env_manager(dag: Dag, node: ProjectNode, env_manager: str) -> tuple[Dag, ProjectNode]:
    changed = node.model_copy(update={"env_manager": env_manager})
    nodes = [changed if n.id == node.id else n for n in dag.nodes]
    return dag.model_copy(update={"nodes": nodes}), changed


def dag_document(request: ProjectRequest, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The DAG document, and what its node ids and edge names stand for in the request."""
    taken: set[str] = set()
    project_id = _node_id(request.entry_point, taken, fallback="project")
    node: dict[str, Any] = {
        "id": project_id,
        "kind": "project",
        "project": request.project_uri,
        "entry_point": request.entry_point,
        "parameters": request.params,
        "extra_parameters": "allow",  # as `mlflow run` passes an undeclared -P on (with a warning, below)
        **({"version": request.version} if request.version is not None else {}),
        **({"env_manager": request.env_manager} if request.env_manager else {}),
        **{key: config[key] for key in NODE_KEYS if key in config},
    }
    inputs = config.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise DagValidationError(
            [Problem("inputs", 'must map input names to locations, e.g. {"images": "data/images"}')], REQUEST
        )
    names = {f"nodes.{project_id}": ""}
    sources, edges, missing = [], [], []
    for name, uri in inputs.items():
        source_id = _node_id(str(name), taken, fallback="input")
        uri_text = absolute(uri, request.base_dir) if isinstance(uri, str) else uri
        if isinstance(uri, str) and _is_path(uri) and not Path(uri_text).exists():  # now, not at planning
            missing.append(Problem(f"inputs.{name}", f"{uri_text} does not exist"))
        sources.append({"id": source_id, "kind": "source", "uri": uri_text})
        edges.append({"from": source_id, "to": project_id, "input": name, "partitioner": "file"})
        names[f"nodes.{source_id}"] = names[f"edges.{source_id}->{project_id}"] = f"inputs.{name}"
    if missing:
        raise DagValidationError(missing, REQUEST)
    document = {
        "name": _dag_name(request.project_uri, request.entry_point),
        "experiment": request.experiment,
        "nodes": [*sources, node],
        "edges": edges,
    }
    return document, names


def check_clusters(dag: Dag, paths: Paths) -> None:
    """Every cluster the DAG names is registered here (the engine would only find out at dispatch). The
    store is opened only when the DAG names a cluster: a local run's submission never imports it."""
    named = {name for node in dag.nodes if node.kind != "source" for name in dag.placement(node)}
    if not named:
        return
    from concurrent_mlflow.store import clusters, open_store

    store = open_store(paths.store_url)
    try:
        registered = {cluster.name for cluster in clusters.list_clusters(store)}
    finally:
        store.close()
    missing = sorted(named - registered)
    if missing:
        known = ", ".join(sorted(registered)) or "none"
        message = (
            f"no cluster named {', '.join(map(repr, missing))} is registered in {paths.home} (registered: "
            f"{known}); register one with `concurrent cluster add NAME --kubeconfig FILE`"
        )
        raise DagValidationError([Problem("cluster", message)], REQUEST)


def _in_request_terms(problem: Problem, names: Mapping[str, str]) -> Problem:
    """`nodes.transform.partitions` -> `partitions`, `nodes.images.uri` -> `inputs.images`, and so on."""
    where = problem.location
    for prefix, term in sorted(names.items(), key=lambda item: -len(item[0])):
        if where == prefix or where.startswith(prefix + "."):
            rest = where[len(prefix) :].lstrip(".")
            if term:  # an input: its node and edge fields are all about that one entry
                return Problem(term, problem.message)
            if rest.startswith("parameters"):
                return Problem("-P" + rest[len("parameters") :].replace(".", " ", 1), problem.message)
            return Problem({"project": "project URI", "entry_point": "-e"}.get(rest, rest), problem.message)
    return problem


def _node_id(text: str, taken: set[str], *, fallback: str) -> str:
    """A valid node id (lower-case letters, digits, dashes, a letter first) that is not taken yet."""
    base = re.sub(r"^[^a-z]+", "", re.sub(r"[^a-z0-9-]+", "-", text.lower()))[:36].strip("-") or fallback
    node_id, number = base, 2
    while node_id in taken:
        node_id, number = f"{base}-{number}", number + 1
    taken.add(node_id)
    return node_id


def _dag_name(project_uri: str, entry_point: str) -> str:
    """`…/toolbox` + `transform` -> `toolbox-transform`: what the parent run is called in MLflow."""
    repo, _, subdir = project_uri.partition("#")
    base = (subdir or repo).rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") or "project"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{base}-{entry_point}").strip("-_.")
    return name[:100] or "project"


def absolute(uri: str, base_dir: Path) -> str:
    """A local path made absolute against `base_dir` (as `mlflow run` reads it); URIs stay as they are."""
    return str((base_dir / Path(uri).expanduser()).resolve()) if _is_path(uri) else uri


def _is_path(uri: str) -> bool:
    """Not a git URI nor a URL (s3://, runs:/, file:...)."""
    return not (is_git_uri(uri) or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", uri))
