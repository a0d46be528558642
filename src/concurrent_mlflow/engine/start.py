"""Starting a run of a stored DAG: the checks `POST /runs` and a schedule's tick both make, in one place.

A run is recorded only once its DAG version exists, its overrides name real parameters, the server's
execution policy allows every local path it names and every place its tasks would run, and every project
can be fetched with the entry points and parameters the DAG uses; otherwise nothing is written and the
error names the problem. The policy comes first, so a refused path is never read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from concurrent_mlflow.dag import Dag, apply_overrides, parse_dag
from concurrent_mlflow.engine.reconcile import new_run
from concurrent_mlflow.plan import check_projects
from concurrent_mlflow.policy import ExecutionPolicy
from concurrent_mlflow.store import Store, catalog


@dataclass(frozen=True)
class PreparedRun:
    dag: Dag  # with the overrides applied
    version: int


def prepare_stored_run(
    store: Store,
    name: str,
    *,
    version: int | None = None,
    overrides: Mapping[str, str],
    base_dir: Path,
    cache_dir: Path,
    policy: ExecutionPolicy,
) -> PreparedRun:
    """Load a stored DAG version (the newest by default), apply overrides, check the policy and projects."""
    row = catalog.get_version(store, name, version)
    dag = apply_overrides(parse_dag(row.yaml, f"DAG {row.name} v{row.version}"), overrides)
    policy.check_run(dag, base_dir)
    check_projects(dag, base_dir=base_dir, cache_dir=cache_dir)
    return PreparedRun(dag, row.version)


def start_stored_run(
    store: Store,
    name: str,
    *,
    version: int | None = None,
    overrides: Mapping[str, str],
    base_dir: Path,
    cache_dir: Path,
    policy: ExecutionPolicy,
    created_by: str | None,
    schedule_id: int | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> str:
    """Check as `prepare_stored_run` does, then record the run (pending); the engine's loop drives it."""
    prepared = prepare_stored_run(
        store,
        name,
        version=version,
        overrides=overrides,
        base_dir=base_dir,
        cache_dir=cache_dir,
        policy=policy,
    )
    return new_run(
        store,
        prepared.dag,
        base_dir=base_dir,
        overrides=overrides,
        dag_version=prepared.version,
        created_by=created_by,
        schedule_id=schedule_id,
        window=window,
    )
