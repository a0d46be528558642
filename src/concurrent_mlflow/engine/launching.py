"""Starting work: an attempt's child run, what its worker is told, and the executor's start of it.

An executor starts tasks one at a time (local) or a whole stage at once (Kubernetes), as its traits say
(executors/base.py). Either way each attempt gets one MLflow child run, made with its tags in one call,
and its handle recorded in the store; after a crash (`recover`), child runs and workers an earlier engine
made are found, not made twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial

from concurrent_mlflow import cpu_share, git_credentials
from concurrent_mlflow.dag import ProjectNode, TaskNode
from concurrent_mlflow.engine.context import EngineContext, aware
from concurrent_mlflow.engine.endings import Endings
from concurrent_mlflow.errors import ConcurrentError
from concurrent_mlflow.executors.base import StageLaunch, StageTask, TaskLaunch
from concurrent_mlflow.executors.jobspec import PROJECT_IMAGE_ENV
from concurrent_mlflow.manifest import ProjectSpec
from concurrent_mlflow.project import split_subdir
from concurrent_mlflow.run_tags import run_tags
from concurrent_mlflow.store import RunRow, TaskRow
from concurrent_mlflow.store import transitions as tx
from concurrent_mlflow.taskfile import TaskFile

log = logging.getLogger("concurrent.engine")
StageItem = tuple[TaskRow, int, str | None]  # a task, its reserved attempt's id, its child run if made


class Launcher:
    def __init__(self, context: EngineContext, endings: Endings, renew_lease: Callable[[], None]) -> None:
        self.c, self.endings, self._renew_lease = context, endings, renew_lease

    def launch(
        self,
        run: RunRow,
        task: TaskRow,
        attempt_id: int,
        child: str | None,
        partitions: int,
        recover: bool,
    ) -> None:
        """Create the attempt's child run and start it on the local executor; after a crash (`recover`),
        find both first."""
        assert run.mlflow_run_id and run.experiment_id
        executor = self.c.executors.local
        if child is None:
            child = self.create_child(run, task, attempt_id, recover=recover)
        launch = TaskLaunch(
            run_id=run.id,
            node_id=task.node_id,
            partition=task.partition,
            partitions=partitions,
            attempt=task.attempts,
            parent_run_id=run.mlflow_run_id,
            child_run_id=child,
            tracking_uri=self.c.tracking.tracking_uri,
            env={
                **self._task_env(run),
                **self._local_threads(run.id, task, partitions),
                **self._git_credentials(run.id, task.node_id, os.environ),
            },
            task=self._task_file(run, task, child),
        )
        try:
            found = executor.find(launch) if recover else None
            if recover and found is None and self.endings.ended_unwatched(task, attempt_id, child):
                self.c.wake.set()  # ended without an exit to report it: the next pass closes its stage
                return
            handle, log_path = found or executor.submit(launch)
        except ConcurrentError as exc:
            log.error("%s[%d]: could not start: %s", task.node_id, task.partition, exc)
            self.endings.not_started(task, attempt_id, child, str(exc))
            return
        tx.attach_handle(self.c.store, attempt_id, handle, log_path)

    def launch_stage(
        self, run: RunRow, node_id: str, partitions: int, items: list[StageItem], recover: bool
    ) -> None:
        """Hand partitions of a stage to the executor of its placement. It asks for child runs one table
        chunk at a time and starts each Job after its first chunk; every handle is recorded in one
        transaction at the end."""
        assert run.mlflow_run_id and run.experiment_id
        items = sorted(items, key=lambda item: item[0].partition)  # Job names depend on the order
        by_partition = {task.partition: (task, aid) for task, aid, _ in items}
        children: dict[int, str] = {task.partition: child for task, _, child in items if child}

        def child_runs(tasks: Sequence[StageTask]) -> dict[int, str]:
            self._renew_lease()  # a stage of many chunks can outlast the lease of one pass

            def make(partition: int) -> None:
                task, attempt_id = by_partition[partition]
                children[partition] = self.create_child(run, task, attempt_id, recover)

            self.c.pool.run_all([partial(make, t.partition) for t in tasks])
            return {t.partition: children[t.partition] for t in tasks}

        stage = self._stage_launch(run, node_id, items)
        submitted = self.c.executors.stage_executor().start_stage(stage, child_runs)
        for partition, error in submitted.failed.items():
            log.error("%s[%d]: could not start on Kubernetes: %s", node_id, partition, error)
            task, attempt_id = by_partition[partition]
            self.endings.not_started(task, attempt_id, children.get(partition), error)
        handles = {by_partition[p][1]: handle for p, handle in submitted.handles.items()}
        tx.attach_handles(self.c.store, handles)

    def _stage_launch(self, run: RunRow, node_id: str, items: list[StageItem]) -> StageLaunch:
        assert run.mlflow_run_id
        dag = self.c.dags.dag(run.id)
        node = self.c.dags.task_node(run.id, items[0][0])
        image, image_env = self._project_image(run, node_id)
        return StageLaunch(
            run_id=run.id,
            node_id=node_id,
            parent_run_id=run.mlflow_run_id,
            tracking_uri=self.c.tracking.tracking_uri,
            placement=dag.placement(node),
            tasks=[StageTask(t.partition, t.attempts, child) for t, _, child in items],
            parallelism=dag.parallelism(node) or len(items),
            retries=dag.retries(node),
            timeout=dag.timeout(node),
            env={
                **self._task_env(run, remote=True),
                **({PROJECT_IMAGE_ENV: image, **image_env} if image else {}),
                **_pod_threads(node),
            },
            cpu=node.resources.cpu if node.resources else None,
            memory=node.resources.memory if node.resources else None,
            gpu=node.resources.gpu if node.resources else None,
            node_selector=node.node_selector,
            tolerations=[t.model_dump(by_alias=True, exclude_none=True) for t in node.tolerations],
            image=image,
            secret_env=self._git_credentials(run.id, node_id, {}),
        )

    def create_child(self, run: RunRow, task: TaskRow, attempt_id: int, recover: bool) -> str:
        """The attempt's MLflow child run (found again after a crash with `recover`), recorded on it: one
        `runs/create` with its tags, MLflow's standard ones included. The worker logs the parameters,
        partition ones included, in one batch with the project's (once per child, not by both)."""
        assert run.mlflow_run_id and run.experiment_id
        child = self.c.tracking.create_child(
            run.experiment_id,
            run.mlflow_run_id,
            run_id=run.id,
            node_id=task.node_id,
            partition=task.partition,
            attempt=task.attempts,
            params={},
            tags={**run_tags(run.created_by), **self._project_tags(run, task.node_id)},
            recover=recover,
        )
        tx.attach_child(self.c.store, attempt_id, child)
        return child

    # -- what a task is told ----------------------------------------------------------------------------
    def _project_image(self, run: RunRow, node_id: str) -> tuple[str | None, dict[str, str]]:
        """A docker_env project's image, which its pods run in, and its `environment`; (None, {}): the
        cluster's worker image."""
        assert run.mlflow_run_id
        spec = self.c.plans.spec(run.id, run.mlflow_run_id, node_id)
        if isinstance(spec, ProjectSpec) and spec.image:
            return spec.image, spec.image_env
        return None, {}

    def _project_tags(self, run: RunRow, node_id: str) -> dict[str, str]:
        """MLflow's tags for a run of the node's project, from its planned spec ({} if that is unreadable:
        the tags are a record, not worth failing the task for)."""
        assert run.mlflow_run_id
        try:
            spec = self.c.plans.spec(run.id, run.mlflow_run_id, node_id)
        except (ConcurrentError, OSError, ValueError) as exc:
            log.warning("%s: the child runs lack the project's MLflow tags: %s", node_id, exc)
            return {}
        return dict(spec.tags) if isinstance(spec, ProjectSpec) else {}

    def _task_file(self, run: RunRow, task: TaskRow, child: str) -> str | None:
        """What the local worker is handed on stdin, from the engine's copy of the plan; None (the worker
        then reads the parent run) if the plan cannot be read here."""
        assert run.mlflow_run_id
        try:
            spec, manifest = self.c.plans.task(run.id, run.mlflow_run_id, task.node_id, task.partition)
        except (ConcurrentError, OSError, ValueError) as exc:
            log.warning(
                "%s[%d]: the worker reads its plan from MLflow: %s", task.node_id, task.partition, exc
            )
            return None
        uri = self.c.tracking.artifact_uri(child)
        return TaskFile(spec, manifest, run.experiment_id, uri).dumps()

    def _task_env(self, run: RunRow, remote: bool = False) -> dict[str, str]:
        env = {} if remote else {"CONCURRENT_CACHE": str(self.c.settings.cache_dir)}
        if run.window_start and run.window_end:
            env["CONCURRENT_WINDOW_START"] = aware(run.window_start).isoformat()
            env["CONCURRENT_WINDOW_END"] = aware(run.window_end).isoformat()
        return env

    def _local_threads(self, run_id: str, task: TaskRow, partitions: int) -> dict[str, str]:
        """The thread variables giving a local task its share of this machine's cores: the stage's tasks
        that run at once split them (see cpu_share.py)."""
        parallelism = self.c.dags.dag(run_id).parallelism(self.c.dags.task_node(run_id, task)) or partitions
        at_once = min(self.c.settings.max_parallel, parallelism, partitions)
        return cpu_share.thread_env(cpu_share.task_threads(cpu_share.usable_cores(), at_once), os.environ)

    def _git_credentials(self, run_id: str, node_id: str, environ: Mapping[str, str]) -> dict[str, str]:
        """The credentials of a project node's git URL, for its worker's git only: the spec every pod reads
        from MLflow has the URL without them (git_credentials.py); the DAG in the store keeps them."""
        node = self.c.dags.dag(run_id).node(node_id)
        if not isinstance(node, ProjectNode):
            return {}
        return git_credentials.git_env([split_subdir(node.project)[0]], environ)


def _pod_threads(node: TaskNode) -> dict[str, str]:
    """A pod sees every core of its Kubernetes node: with `resources.cpu`, its threads follow that."""
    declared = cpu_share.declared_cpus(node.resources.cpu if node.resources else None)
    return {} if declared is None else cpu_share.thread_env(declared, {})
