"""Import DAGs of the original Concurrent for MLflow (legacy JSON) as our DAG documents.

Legacy format: `{"node": [...], "edge": [{"source": id, "target": id}]}`. A node names its MLproject by
`transform` (a git URL, maybe `#subdir`) and `xform_path` (its folder in the repo), takes `kwarg` parameters
(`[{"key": k, "value": v}]`, a mapping or `"-P a=1 -P b=2"`), fans out over `parallelization` containers
and lists `input`s: `existing_xform` (the artifacts of upstream node `source`), `infinsnap`, `infinslice`,
`s3`, `gs` (`bucketname` + `pathInBucket` or `prefix`), `mlflow-run-artifacts` (`run_id`, `prefix`), `path`
or `uri`; each split by `partition_params.partitioner` (custom: a Python `lambda`). `k8s_params`
(`kube_context`, `namespace`, dotted `resources.*`), `instanceType` and `runlocation` say where a node ran.

Mapping: node -> `project` node (`transform#xform_path`, `version`/`git_commit`, `kwarg` -> `parameters`,
`parallelization` -> `partitions`, name -> description; a valid id is kept, else the name or id is
slugified: lower-case, dashes, at most 40, unique). Upstream input or edge -> edge, its input named by the
legacy input's `name`, else the upstream id. Data input -> one `source` node per distinct location and an
edge (`infinslice` -> `incremental`). Partitioners: object -> file, directory -> directory, broadcast ->
broadcast, custom -> custom if it names `module:function`, else file; none on a fanned-out node ->
broadcast, since the original gave such an input whole to every container. `k8s_params` -> `cluster` (one
name per context and namespace, with the `concurrent cluster add` command that registers it), `resources`
and an instance-type `node_selector` (see legacy_kubernetes). A misspelt field is reported with the
nearest known one.

What does not carry over becomes a `LegacyNote` in the report; nothing is dropped silently. A document that
cannot become a graph (not an object, no node list, an edge to an unknown node, a cycle, a path climbing out
with `..`) raises `DagValidationError` listing every problem.
"""

from __future__ import annotations

import json
import re
import shlex
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from concurrent_mlflow.dag import INPUT_NAME, NODE_ID, Dag, parse_dag
from concurrent_mlflow.errors import DagValidationError, Problem
from concurrent_mlflow.legacy_kubernetes import (
    KubernetesSettings,
    LegacyCluster,
    cluster_name,
    did_you_mean,
    kubernetes_settings,
)
from concurrent_mlflow.project import is_git_uri, split_subdir

Severity = Literal["info", "warning", "error"]
Scalar = str | int | float | bool

NODE_KEYS = {
    "id",
    "name",
    "transform",
    "xform_path",
    "kwarg",
    "parallelization",
    "input",
    "version",
    "git_commit",
}
INPUT_KEYS = {"name", "type", "source", "bucketname", "pathInBucket", "prefix", "path", "uri", "run_id"}
INPUT_KEYS |= {"input_run_id", "time_spec", "partition_params"}
KUBERNETES_KEYS = {"k8s_params", "instanceType", "instance_type", "runlocation"}
UNSUPPORTED = {"positional": "is not carried over: MLprojects take named parameters (`kwarg`)"}
PARTITIONERS = {"object": "file", "directory": "directory", "broadcast": "broadcast"}
BUCKET_SCHEMES = {"s3": "s3", "infinsnap": "s3", "infinslice": "s3", "gs": "gs", "gcs": "gs"}
UPSTREAM_TYPES = {"existing_xform", "node", "upstream"}
RUN_TYPES = {"mlflow-run-artifacts", "mlflow-artifacts"}
FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,221}$")
RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class LegacyNote:
    """Something a person should know about the conversion, located in the legacy document."""

    where: str
    message: str
    severity: Severity

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


@dataclass(frozen=True)
class LegacyConversion:
    dag: Dag
    report: list[LegacyNote]
    clusters: list[LegacyCluster] = field(default_factory=list)

    def summary(self) -> list[str]:
        """Counts of what was mapped and what was not (every warning and error note is one legacy setting
        not carried over as written), then the commands that register the clusters the nodes name."""
        kinds = [node.kind for node in self.dag.nodes]
        on_clusters = sum(1 for node in self.dag.nodes if getattr(node, "cluster", None))
        unmapped = sum(1 for note in self.report if note.severity != "info")
        lines = [
            f"Mapped {kinds.count('project')} legacy node(s) to project nodes, {kinds.count('source')} data "
            f"location(s) to source nodes and {len(self.dag.edges)} edge(s); {on_clusters} node(s) run on "
            f"{len(self.clusters)} Kubernetes cluster(s).",
            f"{unmapped} legacy setting(s) could not be mapped as written (the warnings and errors above); "
            f"{len(self.report) - unmapped} note(s) on renames and choices.",
        ]
        return lines + [
            f"Register cluster {c.name!r} before running (with --kubeconfig FILE if its context is not in "
            f"your default kubeconfig): {c.command}"
            for c in self.clusters
        ]


def convert_legacy(document: Mapping[str, Any], *, name: str) -> LegacyConversion:
    """Our DAG named `name` for a legacy DAG document, and the report of what did not carry over."""
    converter = _Converter()
    data = converter.convert(document, name)
    dag = parse_dag(yaml.safe_dump(data, sort_keys=False), f"Legacy DAG {name!r}")
    return LegacyConversion(dag, converter.notes, list(converter.clusters.values()))


def load_legacy(path: Path, *, name: str | None = None) -> LegacyConversion:
    """Read and convert a legacy DAG JSON file; the DAG is named after the file unless `name` is given."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        problem = Problem(f"line {exc.lineno}, column {exc.colno}", f"not valid JSON: {exc.msg}")
        raise DagValidationError([problem], str(path)) from exc
    except (OSError, ValueError, RecursionError) as exc:  # unreadable, not UTF-8, nested too deeply
        raise DagValidationError([Problem("", f"cannot read it as JSON text: {exc}")], str(path)) from exc
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-._")[:100]
    try:
        return convert_legacy(document, name=name or stem or "legacy-dag")
    except DagValidationError as exc:
        raise DagValidationError(exc.problems, str(path)) from exc


class _Converter:
    """One conversion's state: our nodes and edges so far, the legacy -> new id map, notes and problems."""

    def __init__(self) -> None:
        self.notes: list[LegacyNote] = []
        self.problems: list[Problem] = []
        self.ids: dict[str, str] = {}
        self.partitions: dict[str, int | None] = {}
        self.nodes: list[dict[str, Any]] = []
        self.edges: list[dict[str, Any]] = []
        self.sources: dict[tuple[str, bool], str] = {}
        self.clusters: dict[tuple[str | None, str | None], LegacyCluster] = {}

    def note(self, where: str, message: str, severity: Severity = "warning") -> None:
        self.notes.append(LegacyNote(where, message, severity))

    def problem(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message))

    def convert(self, document: Any, name: str) -> dict[str, Any]:
        nodes = document.get("node", document.get("nodes")) if isinstance(document, Mapping) else None
        if not isinstance(nodes, list) or not nodes:
            problem = Problem("node", "a legacy DAG is a JSON object with a non-empty `node` list")
            raise DagValidationError([problem], "Legacy DAG")
        for key in [key for key in document if key not in ("node", "nodes", "edge", "edges")]:
            self.note(str(key), "top-level field is not carried over")
        good = self._assign_ids(nodes)
        pairs = self._edges(document.get("edge", document.get("edges")))
        for index, raw, node_id in good:
            self._node(f"node[{index}]", raw, node_id)
        wired = {(edge["from"], edge["to"]) for edge in self.edges}
        for source, target, where in [pair for pair in pairs if pair[:2] not in wired]:
            self._wire(source, target, {}, where)
        if self.problems:
            raise DagValidationError(self.problems, "Legacy DAG")
        return {"name": name, "nodes": self.nodes, "edges": self.edges}

    def _assign_ids(self, nodes: list[Any]) -> list[tuple[int, Mapping[str, Any], str]]:
        good: list[tuple[int, Mapping[str, Any], str]] = []
        taken: set[str] = set()
        for index, raw in enumerate(nodes):
            where = f"node[{index}].id"
            legacy = _legacy_id(raw.get("id")) if isinstance(raw, Mapping) else None
            if not isinstance(raw, Mapping) or legacy is None:
                self.problem(where, "missing: every legacy node is an object with an `id`")
            elif re.search(r"[/\\\x00-\x1f]|\.\.", legacy):
                self.problem(where, f"{legacy!r} looks like a path, not a node id")
            elif legacy in self.ids:
                self.problem(where, f"duplicate id {legacy!r}")
            else:
                label = raw.get("name")
                base = legacy if NODE_ID.match(legacy) else _slug(label if isinstance(label, str) else "")
                self.ids[legacy] = node_id = _unique(base or _slug(legacy) or "node", taken, 40)
                good.append((index, raw, node_id))
                if node_id != legacy:
                    self.note(where, f"node {legacy!r} is now {node_id!r} (our id rules)", "info")
        return good

    def _edges(self, raw: Any) -> list[tuple[str, str, str]]:
        """(source, target, where) of each distinct legacy edge, in our ids."""
        if raw is not None and not isinstance(raw, list):
            self.problem("edge", "expected a list of {source, target}")
        pairs: list[tuple[str, str, str]] = []
        for index, edge in enumerate(raw if isinstance(raw, list) else []):
            where, edge = f"edge[{index}]", edge if isinstance(edge, Mapping) else {}
            source, target = self._end(edge, "source", "from", where), self._end(edge, "target", "to", where)
            for key in [key for key in edge if key not in ("source", "from", "target", "to")]:
                self.note(f"{where}.{key}", "edge field is not carried over")
            if source is not None and source == target:
                self.problem(where, f"the edge joins node {source!r} to itself")
            elif source and target and (source, target) not in {pair[:2] for pair in pairs}:
                pairs.append((source, target, where))
        return pairs

    def _end(self, edge: Mapping[str, Any], key: str, alias: str, where: str) -> str | None:
        value = edge.get(key, edge.get(alias))
        node_id = self.ids.get(_legacy_id(value) or "")
        if node_id is None:
            self.problem(f"{where}.{key}", f"no node with id {value!r}")
        return node_id

    def _node(self, where: str, raw: Mapping[str, Any], node_id: str) -> None:
        node: dict[str, Any] = {"id": node_id, "kind": "project", **self._project(where, raw)}
        label = raw.get("name")
        if isinstance(label, str) and label.strip() and label != node_id:
            node["description"] = label
        if parameters := self._parameters(raw.get("kwarg"), f"{where}.kwarg"):
            node["parameters"] = parameters
        partitions = self._partitions(raw.get("parallelization"), f"{where}.parallelization")
        self.partitions[node_id] = node["partitions"] = partitions
        for key, value in raw.items():
            if key in UNSUPPORTED and value not in (None, "", []):
                self.note(f"{where}.{key}", f"{value!r} {UNSUPPORTED[key]}")
            elif key not in NODE_KEYS | KUBERNETES_KEYS and key not in UNSUPPORTED:
                self._unknown(f"{where}.{key}", key, sorted(NODE_KEYS | KUBERNETES_KEYS), "field")
        self._kubernetes(where, raw, node)
        self._inputs(raw.get("input"), node_id, f"{where}.input")
        self.nodes.append(node)

    def _unknown(self, where: str, key: str, known: list[str], what: str) -> None:
        """Unknown: an error naming the nearest known one if it looks misspelt (its value is lost)."""
        hint = did_you_mean(key, known)
        self.note(where, f"unknown {what}, not carried over{hint}", "error" if hint else "warning")

    def _kubernetes(self, where: str, raw: Mapping[str, Any], node: dict[str, Any]) -> None:
        """`k8s_params` -> `cluster`, `resources`, `node_selector`; `instanceType`/`runlocation` only say
        where the node ran, which its cluster now says."""
        params = raw.get("k8s_params")
        found = kubernetes_settings(params, f"{where}.k8s_params") if params else KubernetesSettings()
        for note in found.notes:
            self.note(*note)
        if found.context or found.namespace:
            node["cluster"] = self._cluster(found.context, found.namespace).name
            if found.resources:
                node["resources"] = found.resources
            if found.node_selector:
                node["node_selector"] = found.node_selector
            mapped = ", ".join(f"{k}={v}" for k, v in {**found.resources, **found.node_selector}.items())
            message = f"runs on cluster {node['cluster']!r}" + (f" with {mapped}" if mapped else "")
            self.note(f"{where}.k8s_params", message, "info")
        elif found.resources or found.node_selector:
            why = "dropped: no kube_context or namespace names a cluster to run them on"
            self.note(f"{where}.k8s_params", f"resources and instance type {why}", "error")
        for key in ("instanceType", "instance_type", "runlocation"):
            if raw.get(key) not in (None, "", []):
                self._where_it_ran(f"{where}.{key}", raw[key], node.get("cluster"))

    def _where_it_ran(self, where: str, value: Any, cluster: str | None) -> None:
        if cluster:
            self.note(where, f"{value!r}: the node runs on cluster {cluster!r}", "info")
        else:
            why = (
                "no `k8s_params` kube_context or namespace names a cluster, so the node runs on this machine"
            )
            self.note(where, f"{value!r} is not carried over: {why}")

    def _cluster(self, context: str | None, namespace: str | None) -> LegacyCluster:
        """One cluster per distinct (context, namespace), named after the context."""
        if (context, namespace) not in self.clusters:
            name = cluster_name(context, namespace, {c.name for c in self.clusters.values()})
            self.clusters[(context, namespace)] = LegacyCluster(name, context, namespace)
        return self.clusters[(context, namespace)]

    def _project(self, where: str, raw: Mapping[str, Any]) -> dict[str, str]:
        transform, xform_path = raw.get("transform"), raw.get("xform_path")
        if not isinstance(transform, str) or not transform.strip():
            self.problem(f"{where}.transform", "missing: the git URL of the node's MLproject")
            return {}
        repo, fragment = split_subdir(transform.strip())
        subdir = self._inside(fragment, f"{where}.transform")
        inner = self._inside("" if xform_path is None else xform_path, f"{where}.xform_path")
        if subdir and inner:
            self.note(f"{where}.xform_path", f"read inside the URL's #{subdir}: #{subdir}/{inner}", "info")
        path = "/".join(part for part in (subdir, inner) if part)
        project = {"project": f"{repo}#{path}" if path else repo}
        version = raw.get("version", raw.get("git_commit"))
        if isinstance(version, str) and version.strip() and is_git_uri(repo):
            project["version"] = version.strip()
        elif version is not None:
            self.note(f"{where}.version", f"{version!r} dropped: not a version of a git project", "error")
        return project

    def _inside(self, path: Any, where: str) -> str | None:
        """`path` as a relative POSIX path; None (a problem) if it is not a string or climbs out with '..'."""
        if isinstance(path, str) and not _climbs(path):
            return "/".join(part for part in re.split(r"[/\\]", path) if part not in ("", "."))
        self.problem(where, f"{path!r} is not a path inside its folder (no '..')")
        return None

    def _matching(self, pattern: re.Pattern[str], value: Any, where: str, what: str) -> str | None:
        if isinstance(value, str) and pattern.match(value):
            return value
        self.problem(where, f"{value!r} is not {what}")
        return None

    def _parameters(self, value: Any, where: str) -> dict[str, Scalar]:
        if isinstance(value, Mapping):
            pairs = [(key, item, f"{where}.{key}") for key, item in value.items()]
        elif isinstance(value, list):
            items = [item if isinstance(item, Mapping) else {"value": item} for item in value]
            pairs = [(item.get("key"), item.get("value"), f"{where}[{i}]") for i, item in enumerate(items)]
        elif isinstance(value, str):
            pairs = self._cli_pairs(value, where)
        else:
            pairs = [] if value is None else [(None, value, where)]
        parameters: dict[str, Scalar] = {}
        for key, item, loc in pairs:
            if isinstance(key, str) and key.strip() and isinstance(item, Scalar):
                parameters[key.strip()] = item
            else:
                self.note(loc, f"{key}={item!r} dropped: not NAME=text, number or boolean", "error")
        return parameters

    def _cli_pairs(self, text: str, where: str) -> list[tuple[Any, Any, str]]:
        """`-P a=1 -P "b=c d"` (as for `mlflow run`) -> [("a", "1", where), ("b", "c d", where)]."""
        try:
            tokens = [token for token in shlex.split(text) if token not in ("-P", "--param-list")]
        except ValueError as exc:
            self.note(where, f"cannot split {text!r}: {exc}; dropped", "error")
            return []
        pairs: list[tuple[Any, Any, str]] = []
        for token in tokens:
            key, sep, value = token.removeprefix("-P").partition("=")
            pairs.append((key if sep else None, value if sep else token, where))
        return pairs

    def _partitions(self, value: Any, where: str) -> int | None:
        text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else "?"
        if value is None or value == "" or (text.isdigit() and 1 <= int(text) <= 1_000_000):
            return int(text) if value not in (None, "") else None
        self.note(where, f"{value!r} is not 1 to 1,000,000 partitions; one partition used", "error")
        return None

    def _inputs(self, raw: Any, node_id: str, where: str) -> None:
        if raw is not None and not isinstance(raw, list):
            self.note(where, "expected a list of inputs; none carried over", "error")
        for index, spec in enumerate(raw if isinstance(raw, list) else []):
            loc, spec = f"{where}[{index}]", spec if isinstance(spec, Mapping) else {"type": repr(spec)}
            for key in [key for key in spec if key not in INPUT_KEYS]:
                self._unknown(f"{loc}.{key}", str(key), sorted(INPUT_KEYS), "input field")
            kind = str(spec.get("type", "")).strip().lower()
            if kind == "no-input-data":
                self.note(loc, "`no-input-data` needs no edge", "info")
            elif kind in UPSTREAM_TYPES and (upstream := self._end(spec, "source", "source", loc)):
                self._wire(upstream, node_id, spec, loc)
            elif (source := self._source(spec, kind, node_id, loc)) is not None:
                self._wire(source, node_id, spec, loc)

    def _source(self, spec: Mapping[str, Any], kind: str, consumer: str, where: str) -> str | None:
        """The source node for a data input (made on first use); None if it has no equivalent."""
        location = self._location(spec, kind, where)
        if location is not None and location not in self.sources:
            label = spec.get("name")
            base = _slug(label if isinstance(label, str) else "") or f"{consumer}-data"
            node_id = _unique(base, {n["id"] for n in self.nodes} | set(self.ids.values()), 40)
            self.sources[location] = node_id
            self.nodes.append(
                {"id": node_id, "kind": "source", "uri": location[0], "incremental": location[1]}
            )
        return None if location is None else self.sources[location]

    def _location(self, spec: Mapping[str, Any], kind: str, where: str) -> tuple[str, bool] | None:
        """(URI, incremental) of a data input; None if malformed (a problem) or without equivalent (noted)."""
        if kind in BUCKET_SCHEMES:
            key = "pathInBucket" if "pathInBucket" in spec else "prefix"
            bucket = self._matching(BUCKET, spec.get("bucketname"), f"{where}.bucketname", "a bucket name")
            prefix = self._inside(spec.get(key) or "", f"{where}.{key}")
            if spec.get("time_spec"):
                self.note(f"{where}.time_spec", "not carried over: a source reads the data as of its run")
            if kind == "infinslice":
                self.note(where, "infinslice: an incremental source, each run reads what arrived", "info")
            uri = f"{BUCKET_SCHEMES[kind]}://{bucket}/{prefix}".rstrip("/")
            return None if bucket is None or prefix is None else (uri, kind == "infinslice")
        if kind in RUN_TYPES:
            run_id = spec.get("run_id", spec.get("input_run_id"))
            run = self._matching(RUN_ID, run_id, f"{where}.run_id", "an MLflow run id")
            prefix = self._inside(spec.get("prefix") or "", f"{where}.prefix")
            return None if run is None or prefix is None else (f"runs:/{run}/{prefix}".rstrip("/"), False)
        if kind in ("path", "local", "uri", "url"):
            key = "uri" if "uri" in spec else "path"
            value = spec.get(key)
            if isinstance(value, str) and value.strip() and not _climbs(value):
                return value.strip(), False
            self.problem(f"{where}.{key}", f"{value!r} is not a location (no '..')")
            return None
        self.note(where, f"input type {spec.get('type')!r} has no equivalent; input dropped", "error")
        return None

    def _wire(self, source: str, target: str, spec: Mapping[str, Any], where: str) -> None:
        """Edge `source` -> `target` for the legacy input `spec` ({} for a bare legacy edge)."""
        wanted = spec.get("name")
        name = wanted.strip() if isinstance(wanted, str) and wanted.strip() else source
        if not INPUT_NAME.match(name):
            fixed = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
            fixed = (fixed if re.match(r"[A-Za-z_]", fixed) else f"_{fixed}")[:63]
            self.note(f"{where}.name", f"input {name!r} is now {fixed!r} (our input name rules)", "info")
            name = fixed
        unique = _unique(name, {e["input"] for e in self.edges if e["to"] == target}, 63)
        if unique != name:
            self.note(
                f"{where}.name", f"{target!r} has an input {name!r} already; this is {unique!r}", "info"
            )
        params_at = f"{where}.partition_params" if spec else where
        partitioner = self._partitioner(spec.get("partition_params"), target, params_at)
        self.edges.append({"from": source, "to": target, "input": unique, "partitioner": partitioner})

    def _partitioner(self, params: Any, target: str, where: str) -> dict[str, str]:
        params = params if isinstance(params, Mapping) else {"partitioner": params}
        for key in [key for key in params if key not in ("partitioner", "lambda", "partition_lambda")]:
            self.note(f"{where}.{key}", "partition field is not carried over")
        legacy = params.get("partitioner")
        kind = str(legacy or "").strip().lower()
        if kind in PARTITIONERS:
            return {"kind": PARTITIONERS[kind]}
        if kind == "custom":
            key = "lambda" if "lambda" in params else "partition_lambda"
            function = params.get(key)
            if isinstance(function, str) and FUNCTION.match(function.strip()):
                return {"kind": "custom", "function": function.strip()}
            message = "is not `module:function` (a Python lambda cannot run here); `file` used"
            self.note(f"{where}.{key}", f"{function!r} {message}", "error")
        elif kind not in ("", "none"):
            self.note(f"{where}.partitioner", f"unknown partitioner {legacy!r}; `file` used", "error")
        elif (self.partitions.get(target) or 1) > 1:
            self.note(where, "no partitioner: every container got all of it, so `broadcast`", "info")
            return {"kind": "broadcast"}
        return {"kind": "file"}


def _legacy_id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value).strip() or None


def _climbs(path: str) -> bool:
    return ".." in re.split(r"[/\\]", path) or "\x00" in path


def _slug(text: str) -> str:
    """`Pré-process Images #2` -> `pre-process-images-2`: a node id, or "" if nothing is left."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "-", plain).strip("-")
    slug = slug if not slug or slug[0].isalpha() else f"n-{slug}"
    return slug[:40].rstrip("-")


def _unique(base: str, taken: set[str], limit: int) -> str:
    """`base`, or `base-2`, `base-3`... (cut to `limit`), whichever is not in `taken`; records the choice."""
    name, count = base, 2
    while name in taken:
        name, count = f"{base[: limit - len(str(count)) - 1].rstrip('-')}-{count}", count + 1
    taken.add(name)
    return name
