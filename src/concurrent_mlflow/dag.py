"""DAG documents: the models a YAML file (and later the UI) describes, loading, and structural validation.

A DAG is nodes joined by edges. Every check here reports *all* problems at once, each located by node id and
field (`nodes.train.partitions`), so a user fixes a document in one pass. Checks that need the project's
MLproject file (entry points, parameter types) live in `validate`, which calls `project`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from concurrent_mlflow import bounded_yaml
from concurrent_mlflow.errors import DagValidationError, Problem
from concurrent_mlflow.globs import MAX_PATTERN
from concurrent_mlflow.partition import MAX_PARTITIONS, MAX_SWEEP_COMBINATIONS

NODE_ID = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
INPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,62}$")
ENV_MANAGERS = ("local", "uv", "virtualenv", "conda")
CLUSTER_NAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# The largest DAG document accepted (the API's cap on a request body, and `concurrent` reading a file).
MAX_DOCUMENT_CHARS = 512 * 1024
# A Kubernetes resource quantity: 2, 0.5, 500m, 4Gi, 1e3 ...
QUANTITY = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Partitioner(_Model):
    """How an edge's upstream outputs are split among the downstream node's partitions."""

    kind: Literal["file", "directory", "key", "one-to-one", "broadcast", "gather", "custom"] = "file"
    key: str | None = Field(None, description="`key`: the metadata field written by the upstream task.")
    function: str | None = Field(None, description="`custom`: `package.module:function(items, n)`.")

    def options(self) -> dict[str, str]:
        return {k: v for k, v in (("key", self.key), ("function", self.function)) if v is not None}


class Edge(_Model):
    source: str = Field(alias="from", description="Upstream node id.")
    target: str = Field(alias="to", description="Downstream node id.")
    input: str = Field(description="Name of the input in the downstream task (`task.inputs(name)`).")
    partitioner: Partitioner = Field(default_factory=Partitioner)

    @field_validator("partitioner", mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value


class _NodeBase(_Model):
    id: str = Field(description="Unique node id: lower-case letters, digits and dashes, at most 40.")
    description: str | None = None


class SourceNode(_NodeBase):
    """A data location whose files feed downstream nodes: a local dir, an fsspec URL or MLflow artifacts."""

    kind: Literal["source"] = "source"
    uri: str = Field(
        description="Local path (relative to the DAG file), an fsspec URL (s3://, gs://, ...), "
        "runs:/<id>/path or models:/name/version."
    )
    pattern: str | None = Field(
        None,
        max_length=MAX_PATTERN,
        description="Glob on the relative path or the file name, e.g. `*.csv`, `raw/**/*.json`.",
    )
    incremental: bool = Field(
        False,
        description="In a scheduled run, list only the files modified inside the run's time window "
        "(micro-batch: each run processes what arrived since the previous successful run).",
    )


class Resources(_Model):
    """What one partition's pod asks of a Kubernetes node (requests and limits alike). `cpu` also sets the
    threads its numeric libraries start (cpu_share.py)."""

    cpu: str | None = Field(
        None,
        pattern=QUANTITY,
        description="CPU cores: `2`, `0.5`, `500m`; also the task's BLAS/OpenMP/Arrow threads (at least 1).",
    )
    memory: str | None = Field(None, pattern=QUANTITY, description="Memory: `4Gi`, `512Mi`.")
    gpu: int | None = Field(None, ge=0, le=64, description="NVIDIA GPUs (`nvidia.com/gpu`).")

    @field_validator("cpu", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class Toleration(_Model):
    """A Kubernetes toleration, as in a pod spec."""

    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(None, alias="tolerationSeconds", ge=0)


class _TaskNode(_NodeBase):
    partitions: int | None = Field(None, ge=1, le=MAX_PARTITIONS, description="Number of partitions (tasks).")
    parallelism: int | None = Field(None, ge=1, description="At most this many partitions run at once.")
    retries: int | None = Field(None, ge=0, le=100, description="Extra attempts per failed partition.")
    timeout: float | None = Field(None, gt=0, description="Seconds one attempt may run before it is killed.")
    cluster: str | None = Field(
        None,
        pattern=CLUSTER_NAME,
        description="Run the partitions as pods on this registered Kubernetes cluster "
        "(default: on this machine).",
    )
    clusters: dict[str, int] | None = Field(
        None, description="Spread the partitions over several registered clusters, in proportion to weights."
    )
    resources: Resources | None = Field(None, description="Kubernetes: CPU, memory and GPUs per partition.")
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Kubernetes: labels a node must have to run the partitions."
    )
    tolerations: list[Toleration] = Field(default_factory=list, description="Kubernetes: taints tolerated.")


class ProjectNode(_TaskNode):
    """Runs an MLproject entry point once per partition."""

    kind: Literal["project"] = "project"
    project: str = Field(description="Local path or git URI (`https://host/repo.git#subdir`).")
    version: str | None = Field(None, description="Git branch, tag or commit.")
    entry_point: str = "main"
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    sweep: dict[str, list[str | int | float | bool]] = Field(
        default_factory=dict,
        description=f"Parameter grid: one partition per combination, at most {MAX_SWEEP_COMBINATIONS:,}.",
    )
    env_manager: Literal["local", "uv", "virtualenv", "conda"] | None = None
    extra_parameters: Literal["refuse", "allow"] = Field(
        "refuse",
        description="A parameter the entry point does not declare: refused (catches typos), or passed on as "
        "`--name value` and logged, as `mlflow run` does.",
    )


class InferenceNode(_TaskNode):
    """Scores its partition of CSV/Parquet files with an MLflow model, writing Parquet predictions."""

    kind: Literal["inference"] = "inference"
    model: str = Field(description="`models:/name/version`, `models:/name@alias` or `runs:/<id>/path`.")
    batch_size: int = Field(10_000, ge=1, description="Rows scored per model call.")
    columns: list[str] | None = Field(None, description="Feature columns (default: all).")
    prediction_column: str = "prediction"


Node = Annotated[SourceNode | ProjectNode | InferenceNode, Field(discriminator="kind")]
TaskNode = ProjectNode | InferenceNode


class Defaults(_Model):
    """Values a task node takes when it does not set its own."""

    parallelism: int | None = Field(None, ge=1)
    retries: int = Field(0, ge=0, le=100)
    timeout: float | None = Field(None, gt=0)
    env_manager: Literal["local", "uv", "virtualenv", "conda"] = "local"
    cluster: str | None = Field(None, pattern=CLUSTER_NAME, description="Cluster of nodes that name none.")


class Dag(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    description: str | None = None
    experiment: str | None = Field(
        None, description="MLflow experiment for the runs (default: the DAG name)."
    )
    defaults: Defaults = Field(default_factory=Defaults)
    nodes: list[Node]
    edges: list[Edge] = Field(default_factory=list)

    def node(self, node_id: str) -> SourceNode | ProjectNode | InferenceNode:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def incoming(self, node_id: str) -> list[Edge]:
        return [e for e in self.edges if e.target == node_id]

    def upstream(self, node_id: str) -> list[str]:
        return sorted({e.source for e in self.incoming(node_id)})

    def downstream(self, node_id: str) -> list[str]:
        return sorted({e.target for e in self.edges if e.source == node_id})

    def topological_order(self) -> list[str]:
        """Node ids in rounds: each round the nodes whose upstream nodes are all placed, in document order.

        Nodes on a cycle (or fed by an unknown node) are left out. Linear in nodes and edges: rescanning
        every node each round made a 3,000-node chain take minutes to validate.
        """
        position = {node.id: i for i, node in enumerate(self.nodes)}
        waiting: dict[str, set[str]] = {node.id: set() for node in self.nodes}
        feeds: dict[str, list[str]] = {node.id: [] for node in self.nodes}
        for edge in self.edges:
            if edge.target in waiting:
                waiting[edge.target].add(edge.source)
                feeds.setdefault(edge.source, []).append(edge.target)
        order: list[str] = []
        ready = [node.id for node in self.nodes if not waiting[node.id]]
        while ready:
            order.extend(ready)
            unblocked: set[str] = set()
            for node_id in ready:
                for target in feeds[node_id]:
                    waiting[target].discard(node_id)
                    if not waiting[target]:
                        unblocked.add(target)
            ready = sorted(unblocked, key=position.__getitem__)
        return order

    def retries(self, node: TaskNode) -> int:
        return node.retries if node.retries is not None else self.defaults.retries

    def timeout(self, node: TaskNode) -> float | None:
        return node.timeout if node.timeout is not None else self.defaults.timeout

    def parallelism(self, node: TaskNode) -> int | None:
        return node.parallelism if node.parallelism is not None else self.defaults.parallelism

    def env_manager(self, node: ProjectNode) -> str:
        return node.env_manager or self.defaults.env_manager

    def placement(self, node: TaskNode) -> dict[str, int]:
        """The clusters a node's partitions run on, with their weights; empty: on this machine."""
        if node.clusters:
            return dict(node.clusters)
        cluster = node.cluster or self.defaults.cluster
        return {cluster: 1} if cluster else {}

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)
        data = {"name": self.name, **data}
        for node, raw in zip(self.nodes, data.get("nodes", []), strict=True):
            raw["kind"] = node.kind
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a DAG document, generated from the models (shipped as dag.schema.json)."""
    schema = Dag.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Concurrent for MLflow DAG"
    return schema


def parse_dag(text: str, source: str = "DAG", *, ours: bool = False) -> Dag:
    """Parse YAML text into a `Dag`, raising one DagValidationError that lists every problem.

    The YAML is read with bounded work (see `bounded_yaml`). `ours`: the text is a `Dag.to_yaml` we wrote,
    which spells out short forms (`partitioner: file` becomes a mapping) and so may be somewhat larger than
    the document the user sent; it is read with twice the limits, so a run never fails to re-read its DAG.
    """
    scale = 2 if ours else 1
    try:
        data = bounded_yaml.load(
            text, max_nodes=scale * bounded_yaml.MAX_NODES, max_chars=scale * bounded_yaml.MAX_CHARS
        )
    except bounded_yaml.ExpansionError as exc:
        raise DagValidationError([Problem(_mark(exc), str(exc.problem))], source) from exc
    except yaml.YAMLError as exc:
        raise DagValidationError([Problem(_mark(exc), f"not valid YAML: {exc}")], source) from exc
    except (ValueError, RecursionError) as exc:  # PyYAML's own: an impossible date, nesting too deep
        raise DagValidationError([Problem("", f"not a usable YAML document: {exc}")], source) from exc
    if not isinstance(data, dict):
        raise DagValidationError(
            [Problem("", "a DAG document must be a YAML mapping with `name` and `nodes`")], source
        )
    if nul := nul_locations(data):
        raise DagValidationError([Problem(where, "contains a NUL character") for where in nul], source)
    try:
        dag = Dag.model_validate(data)
    except ValidationError as exc:
        raise DagValidationError(_pydantic_problems(exc, data), source) from exc
    problems = structural_problems(dag)
    if problems:
        raise DagValidationError(problems, source)
    return dag


def _mark(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""


def nul_locations(value: object, where: str = "") -> list[str]:
    """Where NUL characters hide in parsed YAML or JSON (YAML's "\\0" makes one): PostgreSQL refuses them."""
    if isinstance(value, str):
        return [where] if "\x00" in value else []
    if isinstance(value, dict):
        items = [(str(key), item) for key, item in value.items()]
        found = [f"{where}.{key}".lstrip(".") for key, _ in items if "\x00" in key]
        return found + [
            hit for key, item in items for hit in nul_locations(item, f"{where}.{key}".lstrip("."))
        ]
    if isinstance(value, list):
        return [hit for index, item in enumerate(value) for hit in nul_locations(item, f"{where}[{index}]")]
    return []


def load_dag(path: Path) -> Dag:
    """Read and parse a DAG file, refusing one larger than the API would accept before reading it all."""
    try:
        with path.open(encoding="utf-8") as file:
            text = file.read(MAX_DOCUMENT_CHARS + 1)
    except OSError as exc:
        raise DagValidationError([Problem("", f"cannot read {path}: {exc.strerror}")], str(path)) from exc
    except ValueError as exc:  # not UTF-8
        problem = Problem("", f"cannot read {path} as UTF-8 text: {exc}")
        raise DagValidationError([problem], str(path)) from exc
    if len(text) > MAX_DOCUMENT_CHARS:
        limit = f"{MAX_DOCUMENT_CHARS:,} characters"
        problem = Problem("", f"the file is larger than {limit}, the most a DAG document may have")
        raise DagValidationError([problem], str(path))
    return parse_dag(text, str(path))


def _pydantic_problems(exc: ValidationError, data: Mapping[str, Any]) -> list[Problem]:
    problems = []
    for error in exc.errors():
        location = _readable_location(error["loc"], data)
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; see `concurrent dag schema`)"
        elif error["type"] == "union_tag_invalid":
            message = "unknown node kind; use one of: source, project, inference"
        problems.append(Problem(location, message))
    return problems


def _readable_location(loc: Iterable[int | str], data: Mapping[str, Any]) -> str:
    """Turn pydantic's ('nodes', 2, 'project', 'partitions') into 'nodes.train.partitions'."""
    parts: list[str] = []
    items = list(loc)
    for i, part in enumerate(items):
        if isinstance(part, int) and i > 0 and items[i - 1] in ("nodes", "edges"):
            parts.append(_element_name(data, str(items[i - 1]), part))
        elif part in ("source", "project", "inference") and i > 1 and items[i - 2] == "nodes":
            continue  # the discriminator tag pydantic inserts
        else:
            parts.append(str(part))
    return ".".join(parts)


def _element_name(data: Mapping[str, Any], collection: str, index: int) -> str:
    elements = data.get(collection)
    element = elements[index] if isinstance(elements, list) and index < len(elements) else None
    if isinstance(element, dict):
        if collection == "nodes" and isinstance(element.get("id"), str):
            return str(element["id"])
        if collection == "edges":
            return f"{element.get('from', '?')}->{element.get('to', '?')}"
    return f"[{index}]"


def structural_problems(dag: Dag) -> list[Problem]:
    """Every problem with the graph itself: ids, dangling edges, cycles, partitioners, partition counts."""
    problems = _node_problems(dag) + _edge_problems(dag)
    if not problems:
        problems += _cycle_problems(dag)
    if not problems:
        problems += _partitioning_problems(dag)
    return problems


def _node_problems(dag: Dag) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for node in dag.nodes:
        if not NODE_ID.match(node.id):
            problems.append(
                Problem(
                    f"nodes.{node.id}.id",
                    "must be lower-case letters, digits and dashes, "
                    "start with a letter, at most 40 characters",
                )
            )
        if node.id in seen:
            problems.append(Problem(f"nodes.{node.id}", "duplicate node id"))
        seen.add(node.id)
        if not isinstance(node, SourceNode):
            problems += _placement_problems(dag, node)
    if not dag.nodes:
        problems.append(Problem("nodes", "a DAG needs at least one node"))
    return problems


def _placement_problems(dag: Dag, node: TaskNode) -> list[Problem]:
    where = f"nodes.{node.id}"
    problems: list[Problem] = []
    if node.cluster and node.clusters:
        problems.append(
            Problem(f"{where}.clusters", "set either `cluster` or `clusters` (weights), not both")
        )
    for name, weight in (node.clusters or {}).items():
        if not re.match(CLUSTER_NAME, name):
            problems.append(Problem(f"{where}.clusters.{name}", "is not a valid cluster name"))
        if weight < 1:
            problems.append(Problem(f"{where}.clusters.{name}", "weight must be a positive integer"))
    kubernetes_only = [
        field for field in ("resources", "node_selector", "tolerations") if getattr(node, field)
    ]
    if kubernetes_only and not dag.placement(node):
        problems.append(
            Problem(
                f"{where}.{kubernetes_only[0]}",
                "applies to pods on Kubernetes, but this node runs on this machine: set `cluster`",
            )
        )
    return problems


def _edge_problems(dag: Dag) -> list[Problem]:
    problems: list[Problem] = []
    ids = {n.id for n in dag.nodes}
    kinds = {n.id: n.kind for n in dag.nodes}
    fed = {e.target for e in dag.edges}
    inputs_seen: set[tuple[str, str]] = set()
    for edge in dag.edges:
        where = f"edges.{edge.source}->{edge.target}"
        for end, node_id in (("from", edge.source), ("to", edge.target)):
            if node_id not in ids:
                problems.append(Problem(f"{where}.{end}", f"no node with id {node_id!r}"))
        if edge.source == edge.target:
            problems.append(Problem(where, "an edge cannot join a node to itself"))
        if kinds.get(edge.target) == "source":
            problems.append(Problem(where, f"source node {edge.target!r} cannot have inputs"))
        if not INPUT_NAME.match(edge.input):
            problems.append(
                Problem(
                    f"{where}.input",
                    f"{edge.input!r} is not a valid input name (letters, digits, '_', '.', '-'; no '/')",
                )
            )
        if (edge.target, edge.input) in inputs_seen:
            problems.append(
                Problem(
                    f"{where}.input",
                    f"node {edge.target!r} already has an input named "
                    f"{edge.input!r}; give each incoming edge its own input name",
                )
            )
        inputs_seen.add((edge.target, edge.input))
        problems += _partitioner_problems(edge, where)
    for node in dag.nodes:
        if node.kind == "inference" and node.id not in fed:
            problems.append(
                Problem(
                    f"nodes.{node.id}",
                    "an inference node needs at least one incoming edge with the files to score",
                )
            )
    return problems


def _partitioner_problems(edge: Edge, where: str) -> list[Problem]:
    spec = edge.partitioner
    if spec.kind == "key" and not spec.key:
        return [
            Problem(
                f"{where}.partitioner.key",
                "the `key` partitioner needs `key:`, the metadata field "
                "the upstream task writes with task.log_output(path, <key>=...)",
            )
        ]
    if spec.kind == "custom" and not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", spec.function or ""):
        return [
            Problem(
                f"{where}.partitioner.function",
                "the `custom` partitioner needs `function: package.module:function`",
            )
        ]
    if spec.kind not in ("key", "custom") and (spec.key or spec.function):
        return [
            Problem(f"{where}.partitioner", f"`key`/`function` do not apply to the {spec.kind!r} partitioner")
        ]
    return []


def _cycle_problems(dag: Dag) -> list[Problem]:
    order = dag.topological_order()
    if len(order) == len(dag.nodes):
        return []
    cycle = _find_cycle(dag, {n.id for n in dag.nodes} - set(order))
    return [Problem("edges", f"the graph has a cycle: {' -> '.join(cycle)}; a DAG must not loop back")]


def _find_cycle(dag: Dag, candidates: set[str]) -> list[str]:
    """Walk upstream inside the unplaced nodes until a node repeats; that loop is the cycle."""
    incoming = _incoming_by_node(dag)
    path = [min(candidates)]
    seen = {path[0]: 0}
    while True:
        previous = min(e.source for e in incoming[path[-1]] if e.source in candidates)
        if previous in seen:
            loop = [*path[seen[previous] :], previous]
            return list(reversed(loop))
        seen[previous] = len(path)
        path.append(previous)


def _incoming_by_node(dag: Dag) -> dict[str, list[Edge]]:
    """`dag.incoming` for every node at once: asking each node scans every edge, quadratic in big DAGs."""
    incoming: dict[str, list[Edge]] = {node.id: [] for node in dag.nodes}
    for edge in dag.edges:
        incoming.setdefault(edge.target, []).append(edge)
    return incoming


def _partitioning_problems(dag: Dag) -> list[Problem]:
    problems: list[Problem] = []
    incoming = _incoming_by_node(dag)
    sources = {n.id for n in dag.nodes if n.kind == "source"}
    for node in dag.nodes:
        if node.kind == "source":
            continue
        where = f"nodes.{node.id}"
        kinds: set[str] = {e.partitioner.kind for e in incoming[node.id]}
        if "gather" in kinds and node.partitions not in (None, 1):
            problems.append(
                Problem(
                    f"{where}.partitions",
                    "a node fed by a `gather` edge runs as one partition; remove `partitions` or set it to 1",
                )
            )
        if isinstance(node, ProjectNode) and node.sweep:
            problems += _sweep_problems(dag, node, where, kinds)
        for edge in incoming[node.id]:
            if edge.partitioner.kind == "one-to-one" and edge.source in sources:
                problems.append(
                    Problem(
                        f"edges.{edge.source}->{edge.target}.partitioner",
                        "`one-to-one` needs a project or inference node upstream; "
                        "a source has no partitions (use `file` or `directory`)",
                    )
                )
    return problems


def _sweep_problems(dag: Dag, node: ProjectNode, where: str, kinds: set[str]) -> list[Problem]:
    problems: list[Problem] = []
    if node.partitions is not None:
        problems.append(
            Problem(f"{where}.partitions", "a sweep runs one partition per combination; remove `partitions`")
        )
    if kinds - {"broadcast", "gather"}:
        problems.append(
            Problem(
                f"{where}.sweep",
                "every input of a sweep node must use the `broadcast` "
                "partitioner: each combination sees all the data",
            )
        )
    for name, values in node.sweep.items():
        if not values:
            problems.append(Problem(f"{where}.sweep.{name}", "needs at least one value"))
        if name in node.parameters:
            problems.append(
                Problem(f"{where}.sweep.{name}", "is also set in `parameters`; set it in one place")
            )
    return problems + _sweep_size_problems(node, where)


def _sweep_size_problems(node: ProjectNode, where: str) -> list[Problem]:
    """A grid too large to plan is refused here, not when a run reaches the node."""
    combinations = math.prod(len(values) for values in node.sweep.values())
    if combinations <= MAX_SWEEP_COMBINATIONS:
        return []
    sizes = " x ".join(f"{len(values):,} {name}" for name, values in node.sweep.items())
    return [
        Problem(
            f"{where}.sweep",
            f"has {combinations:,} combinations ({sizes}), more than the {MAX_SWEEP_COMBINATIONS:,} a sweep "
            "may have; sweep fewer values, or split the grid over several nodes",
        )
    ]


def apply_overrides(dag: Dag, overrides: Mapping[str, str]) -> Dag:
    """Return a copy of `dag` with `node.param=value` overrides applied to project nodes' parameters."""
    problems: list[Problem] = []
    updated = dag.model_copy(deep=True)
    for key, value in overrides.items():
        node_id, _, param = key.partition(".")
        try:
            node = updated.node(node_id)
        except KeyError:
            problems.append(Problem(f"-P {key}", f"no node {node_id!r}; use NODE.PARAM=VALUE"))
            continue
        if not isinstance(node, ProjectNode) or not param:
            problems.append(
                Problem(f"-P {key}", "overrides set a project node's parameter: NODE.PARAM=VALUE")
            )
            continue
        node.parameters[param] = value
    if problems:
        raise DagValidationError(problems, "Parameter overrides")
    return updated


def parse_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """`["train.alpha=0.5"]` -> `{"train.alpha": "0.5"}`; malformed pairs raise DagValidationError."""
    result: dict[str, str] = {}
    problems: list[Problem] = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or "." not in key:
            problems.append(Problem(f"-P {pair}", "expected NODE.PARAM=VALUE"))
        else:
            result[key.strip()] = value
    if problems:
        raise DagValidationError(problems, "Parameter overrides")
    return result
