"""Helpers to run real DAGs through the engine, with real worker processes and a real MLflow server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from concurrent_mlflow.dag import apply_overrides, parse_dag
from concurrent_mlflow.engine import Engine
from concurrent_mlflow.plan import check_projects
from concurrent_mlflow.runner import open_engine
from concurrent_mlflow.settings import Paths
from concurrent_mlflow.store import Store
from concurrent_mlflow.store.queries import RunView, run_view

TOOLBOX = Path(__file__).resolve().parents[1] / "projects" / "toolbox"


@dataclass
class Finished:
    run_id: str
    state: str
    view: RunView
    engine: Engine
    store: Store
    client: MlflowClient

    @property
    def parent(self) -> Any:
        assert self.view.mlflow_run_id
        return self.client.get_run(self.view.mlflow_run_id)

    def children(self, node: str | None = None) -> list[Any]:
        query = f"tags.`mlflow.parentRunId` = '{self.view.mlflow_run_id}'"
        if node:
            query += f" and tags.`concurrent.node` = '{node}'"
        runs = self.client.search_runs([self.view.experiment_id], query, max_results=1000)
        return sorted(
            runs,
            key=lambda r: (
                r.data.tags["concurrent.node"],
                int(r.data.tags["concurrent.partition"]),
                int(r.data.tags["concurrent.attempt"]),
            ),
        )

    def stage(self, node: str) -> Any:
        return next(s for s in self.view.stages if s.node_id == node)

    @property
    def why(self) -> str:
        """The run's end and each stage's error in full (an assertion's repr of the view is cut short)."""
        lines = [f"run {self.view.id} ended {self.view.state}: {self.view.error or ''}"]
        lines += [f"  {s.node_id}: {s.state} {s.counts} {s.error or ''}" for s in self.view.stages]
        return "\n".join(lines)

    def artifact_text(self, mlflow_run_id: str, path: str, tmp: Path) -> str:
        return Path(self.client.download_artifacts(mlflow_run_id, path, str(tmp))).read_text()


RunDag = Callable[..., Finished]


@pytest.fixture
def run_dag(tracking_env: Path, tmp_path: Path) -> Iterator[RunDag]:
    """Write a DAG (`{toolbox}` expands to the test project) beside `tmp_path`, run it to its end."""
    opened: list[Engine] = []

    def run(
        yaml_text: str,
        overrides: dict[str, str] | None = None,
        max_parallel: int = 2,
        retry_of: str | None = None,
    ) -> Finished:
        paths = Paths(tracking_env)
        engine, store = open_engine(paths, _tracking_uri(), max_parallel)
        opened.append(engine)
        if retry_of:
            engine.retry(retry_of)
            run_id = retry_of
        else:
            dag_file = tmp_path / "dag.yaml"
            dag_file.write_text(yaml_text.replace("{toolbox}", str(TOOLBOX)))
            dag = apply_overrides(parse_dag(dag_file.read_text()), overrides or {})
            check_projects(dag, base_dir=tmp_path, cache_dir=paths.cache)
            run_id = engine.start(dag, base_dir=tmp_path, overrides=overrides or {})
        state = engine.run_until_done(run_id)
        view = run_view(store, run_id)
        assert view is not None
        return Finished(run_id, state, view, engine, store, MlflowClient(_tracking_uri()))

    yield run
    for engine in opened:
        engine.close()  # its fork server, which would otherwise live as long as pytest


def _tracking_uri() -> str:
    import os

    return os.environ["MLFLOW_TRACKING_URI"]


def make_files(root: Path, files: dict[str, str]) -> Path:
    for relpath, text in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def fan_in_dag(name: str, partitions: int, *, retries: int | None = 0, **params: object) -> str:
    """raw files -> `upper` (toolbox transform, `partitions` partitions, `params`) -> `total` (gather)."""
    parameters = ", ".join(f"{k}: {json.dumps(v)}" for k, v in params.items())
    retry_line = f"\n    retries: {retries}" if retries is not None else ""
    return f"""
name: {name}
nodes:
  - {{id: raw, kind: source, uri: data}}
  - id: upper
    kind: project
    project: "{TOOLBOX}"
    entry_point: transform
    partitions: {partitions}{retry_line}
    parameters: {{{parameters}}}
  - {{id: total, kind: project, project: "{TOOLBOX}", entry_point: count}}
edges:
  - {{from: raw, to: upper, input: text, partitioner: file}}
  - {{from: upper, to: total, input: upper, partitioner: gather}}
"""
