"""The server's execution policy: which local paths a DAG may name, and whether its tasks may run here.

A token holder writes DAGs; the server lists their sources, reads their projects and (with the local
executor) runs their code, all with its own privileges. So a server with auth on, or with local roots
configured, is *restricted*:

- a local path (a source's `uri`, a project's directory or `file://` repository, an inference `model`, a
  run's `base_dir`, `GET /projects?uri=`) is allowed only if, with `..` and symbolic links resolved, it lies
  under a root the operator configured (`--allow-local-root`, `CONCURRENT_LOCAL_ROOTS`) and neither is
  nor contains a private path: the data dir (store, secret.key, logs), the cache, a SQLite store, /proc;
- any other source must be an object store (s3://, gs://, az://, ...) or MLflow (runs:/, models:/), any
  other project a git URI; chained fsspec URLs (`zip::file://...`) and other schemes are refused;
- project and inference nodes run on this machine only if the operator allows it
  (`--allow-local-execution`); otherwise they must name a Kubernetes cluster.

A refusal never depends on whether the path exists, so it tells nothing about the server's file system.
With auth off and no roots (a single-user server on loopback) the policy is unrestricted, as before.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import fsspec

from concurrent_mlflow.dag import Dag, Node, ProjectNode, SourceNode
from concurrent_mlflow.errors import PolicyError, Problem
from concurrent_mlflow.project import local_project_path
from concurrent_mlflow.sources import MLFLOW_SCHEMES, local_path

ROOTS_ENV = "CONCURRENT_LOCAL_ROOTS"
LOCAL_EXECUTION_ENV = "CONCURRENT_ALLOW_LOCAL_EXECUTION"
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl"})
FIX = "ask the operator to add the directory with --allow-local-root, or use a git/s3 URI"
LinkCheck = Callable[[Path], None]


@dataclass(frozen=True)
class ExecutionPolicy:
    """Unrestricted by default (the CLI on the user's own machine); `for_server` builds a server's."""

    roots: tuple[Path, ...] | None = None
    """Real directories under which local paths are allowed; None: any local path, any scheme."""
    private: tuple[Path, ...] = ()
    """Real paths no DAG may read, even under a root: the data dir, the cache, the store, /proc."""
    local_execution: bool = True

    @classmethod
    def for_server(
        cls, *, auth: bool, roots: Sequence[Path], local_execution: bool, private: Sequence[Path]
    ) -> ExecutionPolicy:
        """Restricted when auth is on or roots are given; local tasks allowed without auth or by choice."""
        if not auth and not roots:
            return cls()
        hidden = tuple(_real(p) for p in (*private, Path("/proc")))
        return cls(tuple(_real(r) for r in roots), hidden, local_execution or not auth)

    @property
    def restricted(self) -> bool:
        return self.roots is not None

    def describe(self) -> str:
        """The policy in one phrase, for refusals and the server's start-up log."""
        if self.roots is None:
            return "any local path"
        if not self.roots:
            return "no local paths (this server has no --allow-local-root)"
        return "local paths only under " + ", ".join(str(r) for r in self.roots)

    # -- checks that raise ------------------------------------------------------------------------------
    def check_dag(self, dag: Dag, base_dir: Path) -> None:
        """Refuse a DAG that names a local path outside the roots or a scheme the policy does not allow."""
        _raise([p for node in dag.nodes for p in self.node_paths(node, base_dir)], f"DAG {dag.name!r}")

    def check_run(self, dag: Dag, base_dir: Path) -> None:
        """`check_dag`, and refuse task nodes that would run on this machine when that is not allowed."""
        problems = [p for node in dag.nodes for p in self.node_paths(node, base_dir)]
        problems += [p for node in dag.nodes for p in self.node_execution(dag, node)]
        _raise(problems, f"A run of DAG {dag.name!r}")

    def check_node(self, dag: Dag, node: Node, base_dir: Path) -> None:
        """The engine's check before it lists or plans a node of a run (which may predate the policy)."""
        _raise(self.node_paths(node, base_dir) + self.node_execution(dag, node), f"Node {node.id!r}")

    def check_base_dir(self, base_dir: Path) -> None:
        """A run's base_dir is never listed, only joined with paths checked on their own: it may hold the
        data dir, as a work dir often does, but must lie under a root."""
        problem = self._path_problem(base_dir, str(base_dir), listed=False)
        _raise([Problem("base_dir", problem)] if problem else [], "The run's base_dir")

    def check_project_uri(self, uri: str, base_dir: Path) -> None:
        """For `GET /projects?uri=`: the same rule as a project node's `project`."""
        problem = self._project_problem(uri, base_dir)
        _raise([Problem("uri", problem)] if problem else [], f"Project {uri!r}")

    def link_check(self, where: str) -> LinkCheck | None:
        """For listing a local source: refuses a symbolic link inside it that leads out of the roots."""
        if not self.restricted:
            return None

        def check(link: Path) -> None:
            if not self._allowed(_real(link)):
                message = f"the symbolic link {link} in this source leads outside what the policy allows"
                raise PolicyError([Problem(where, f"{message} ({self.describe()}); remove it, or {FIX}")])

        return check

    # -- problems ---------------------------------------------------------------------------------------
    def node_paths(self, node: Node, base_dir: Path) -> list[Problem]:
        where = f"nodes.{node.id}"
        if isinstance(node, SourceNode):
            problem, field = self._data_problem(node.uri, base_dir), "uri"
        elif isinstance(node, ProjectNode):
            problem, field = self._project_problem(node.project, base_dir), "project"
        else:
            problem, field = self._data_problem(node.model, base_dir), "model"
        return [Problem(f"{where}.{field}", problem)] if problem else []

    def node_execution(self, dag: Dag, node: Node) -> list[Problem]:
        if self.local_execution or isinstance(node, SourceNode) or dag.placement(node):
            return []
        return [
            Problem(
                f"nodes.{node.id}.cluster",
                f"node {node.id!r} would run on this server's machine, which this server does not allow "
                "for user code (execution policy: no --allow-local-execution with auth on); set `cluster` "
                "on the node (or `defaults.cluster`) to run it on Kubernetes, or ask the operator",
            )
        ]

    def _data_problem(self, uri: str, base_dir: Path) -> str | None:
        """A source URI or an inference model: a local path under the roots, an object store or MLflow."""
        if not self.restricted or uri.startswith(MLFLOW_SCHEMES):
            return None
        if "::" in uri:
            return f"{uri!r} is a chained URL, which the execution policy does not allow; use s3://, gs://..."
        try:
            path = local_path(uri, base_dir)
        except RuntimeError as exc:  # `~user` that does not exist
            return f"{uri!r} is not a usable path ({exc}); {FIX}"
        if path is not None:
            return self._path_problem(path, uri)
        protocol = str(fsspec.core.split_protocol(uri)[0]).lower()
        if protocol in OBJECT_STORES:
            return None
        return (
            f"{uri!r} uses {protocol}://, which the execution policy does not allow (object stores "
            f"{', '.join(sorted(OBJECT_STORES))}, runs:/, models:/ and allowed local paths only)"
        )

    def _project_problem(self, uri: str, base_dir: Path) -> str | None:
        if not self.restricted:
            return None
        try:
            path = local_project_path(uri, base_dir)
        except RuntimeError as exc:
            return f"{uri!r} is not a usable path ({exc}); {FIX}"
        return None if path is None else self._path_problem(path, uri)

    def _path_problem(self, path: Path, value: str, listed: bool = True) -> str | None:
        """Why `path` (as the user wrote `value`) may not be read; None if it may. Quotes only `value`, and
        says the same whether the path exists or not. A `listed` path may not even hold a private one."""
        if not self.restricted:
            return None
        try:
            real = _real(path)
        except (OSError, ValueError) as exc:
            return f"{value!r} is not a usable path ({exc}); {FIX}"
        if self._allowed(real, listed):
            return None
        return (
            f"{value!r} is not a local path this server allows ({self.describe()}, never the server's own "
            f"data dir nor a directory holding it); {FIX}"
        )

    def _allowed(self, real: Path, listed: bool = True) -> bool:
        assert self.roots is not None
        if any(real.is_relative_to(p) or (listed and p.is_relative_to(real)) for p in self.private):
            return False
        return any(real.is_relative_to(root) for root in self.roots)


def _real(path: Path) -> Path:
    """`path` absolute, with '..' and every symbolic link that exists resolved (never raises on a loop)."""
    return Path(os.path.realpath(path))


def _raise(problems: list[Problem], source: str) -> None:
    if problems:
        raise PolicyError(problems, source)


def roots_from_env() -> tuple[Path, ...]:
    """`CONCURRENT_LOCAL_ROOTS`, os.pathsep-separated (for `mlflow server --app-name concurrent`)."""
    return tuple(Path(p).expanduser() for p in os.environ.get(ROOTS_ENV, "").split(os.pathsep) if p)


def local_execution_from_env() -> bool:
    return os.environ.get(LOCAL_EXECUTION_ENV, "").strip().lower() in ("1", "true", "yes", "on")
