"""What the engine's parts share: the store, MLflow, the executors, each open run's DAG, and a thread pool.

The reconcile loop (reconcile.py) is split by what it does to a run: planning its stages (planning.py),
starting tasks (launching.py) and ending them (endings.py). Each part gets this one context rather than a
reference to the engine, so none can reach into another's state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from concurrent_mlflow.dag import Dag, SourceNode, TaskNode, parse_dag
from concurrent_mlflow.engine import reads
from concurrent_mlflow.engine.plan_files import PlanFiles
from concurrent_mlflow.engine.settings import EngineSettings
from concurrent_mlflow.executors.registry import Executors
from concurrent_mlflow.store import Store, TaskRow
from concurrent_mlflow.store.models import utcnow
from concurrent_mlflow.tracking import Tracking


class RunDags:
    """Each open run's DAG, parsed once from the store (a stored run's DAG never changes)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._dags: dict[str, Dag] = {}

    def dag(self, run_id: str) -> Dag:
        if run_id not in self._dags:
            yaml_text = reads.run(self._store, run_id).dag_yaml
            self._dags[run_id] = parse_dag(yaml_text, f"run {run_id}", ours=True)
        return self._dags[run_id]

    def task_node(self, run_id: str, task: TaskRow) -> TaskNode:
        node = self.dag(run_id).node(task.node_id)
        assert not isinstance(node, SourceNode)
        return node

    def forget(self, run_id: str) -> None:
        self._dags.pop(run_id, None)


class MlflowPool:
    """Launches and endings side by side: each is a few MLflow round trips and its own transactions."""

    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="concurrent-engine")
        self._inflight: list[Future[None]] = []

    def run_all(self, work: list[Callable[[], None]]) -> None:
        """Run every job, even if one fails, then raise the first failure for the pass to report."""
        submitted = [self._pool.submit(job) for job in work]
        self._inflight = submitted
        errors = [error for future in submitted if (error := future.exception()) is not None]
        if errors:
            raise errors[0]

    def settle(self) -> None:
        """Wait for the jobs in flight (a Ctrl-C can land while launches run: each records its handle)."""
        futures.wait(self._inflight)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


@dataclass
class EngineContext:
    store: Store
    tracking: Tracking
    executors: Executors
    settings: EngineSettings
    dags: RunDags
    plans: PlanFiles
    pool: MlflowPool
    wake: threading.Event = field(default_factory=threading.Event)
    """Set when a task may have ended or a plan is done: the next pass need not wait."""
    keep_going: Callable[[], bool] = lambda: True
    """The server's lease check, asked within long passes (see `renew_lease`)."""


def aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes for timezone columns; they were written as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)
