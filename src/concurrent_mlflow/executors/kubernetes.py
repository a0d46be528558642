"""Runs a stage's partitions as pods on registered Kubernetes clusters: one Indexed Job per (stage, cluster).

The engine hands over a whole stage at once (`start_stage`); the partitions are split over the node's
clusters by weight, and each cluster gets one Job (see jobspec.py). Status comes from a watch per cluster
(`ClusterWatch`), never from polling per task: `observe` is a dictionary lookup, so 10,000 partitions
cost the API server two watch streams, not 10,000 GETs a second. Jobs carry labels with the run, node,
cluster and attempt, and their names are a hash of what they run, so an engine that restarts re-creates
nothing: creating an existing Job adopts it.

Handles are `{"cluster", "namespace", "job", "index", "partition"}`. Cancel deletes the Job with
foreground propagation (its pods go first). The log of a partition is every pod it took, in order, each
followed by a line saying how that pod ended, read through the API server; so a failed or evicted try
leaves its output in the child run too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from concurrent_mlflow import kube
from concurrent_mlflow.errors import ConcurrentError, ExecutorError
from concurrent_mlflow.executors.base import (
    KUBERNETES,
    ChildRuns,
    ExecutorTraits,
    Observation,
    StageLaunch,
    StageSubmission,
    StageTask,
    TaskLaunch,
)
from concurrent_mlflow.executors.clusterwatch import ClusterWatch, PodSummary
from concurrent_mlflow.executors.jobspec import (
    CONTAINER,
    TABLE_CHUNK,
    JobRequest,
    PodSettings,
    build_job,
    build_secret,
    jobs_path,
    table_chunk,
)
from concurrent_mlflow.store import clusters
from concurrent_mlflow.store.crypto import Cipher
from concurrent_mlflow.store.db import Store
from concurrent_mlflow.tracking import Tracking

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logging.getLogger("concurrent.kubernetes")
REQUEST_TIMEOUT = 30.0


def split_by_weight(tasks: Sequence[StageTask], weights: Mapping[str, int]) -> dict[str, list[StageTask]]:
    """Contiguous slices of `tasks` per cluster, sized by weight (largest remainder); deterministic."""
    names = sorted(weights)
    total = sum(weights[n] for n in names)
    exact = {n: len(tasks) * weights[n] / total for n in names}
    sizes = {n: int(exact[n]) for n in names}
    for n in sorted(names, key=lambda n: (sizes[n] - exact[n], n))[: len(tasks) - sum(sizes.values())]:
        sizes[n] += 1
    slices, start = {}, 0
    for n in names:
        slices[n] = list(tasks[start : start + sizes[n]])
        start += sizes[n]
    return {n: s for n, s in slices.items() if s}


class _Cluster:
    """One registered cluster in use: an API client that lives as long as the executor, and its watch."""

    def __init__(
        self, name: str, settings: clusters.Cluster, document: dict[str, Any], on_change: Callable[[], None]
    ) -> None:
        self.name, self.settings = name, settings
        self.client: ApiClient = kube.persistent_client(document)
        self.secrets = kube.secret_values(document)
        self.watch = ClusterWatch(self.client, settings.namespace, name, on_change=on_change)
        self.watch.start()

    def close(self) -> None:
        self.watch.stop()
        self.client.close()


class KubernetesExecutor:
    name = KUBERNETES
    traits = ExecutorTraits(whole_stages=True, retries_inside=True, own_deadlines=True)
    table_chunk = TABLE_CHUNK  # rows of a Job's table per artifact file

    def __init__(self, store: Store, cipher: Callable[[], Cipher], tracking: Tracking) -> None:
        self.store, self._cipher, self.tracking = store, cipher, tracking
        self._clusters: dict[str, _Cluster] = {}
        self._lock = threading.Lock()
        self._cancelled: set[tuple[str, str]] = set()
        self._wakes: list[Callable[[], None]] = []

    # -- submitting ---------------------------------------------------------------------------------------
    def start_stage(self, stage: StageLaunch, child_runs: ChildRuns) -> StageSubmission:
        """Create (or adopt) the stage's Jobs and fill their tables; returns each partition's handle.

        Child runs are made chunk by chunk (`child_runs`, for the tasks that have none yet), and each Job is
        created as soon as its first table chunk is stored, so pods start while later chunks are still
        being made (a pod whose chunk is not there yet waits for it). A cluster that cannot take its Job
        fails only its own partitions (`StageSubmission.failed`); any other error propagates, and the
        engine's next pass hands the stage over again, which finds the child runs and adopts the Jobs."""
        result = StageSubmission()
        pending: list[tuple[JobRequest, list[StageTask]]] = []
        for cluster_name, tasks in split_by_weight(stage.tasks, stage.placement).items():
            for attempt in sorted({t.attempt for t in tasks}):
                group = [t for t in tasks if t.attempt == attempt]
                try:
                    cluster = self._cluster(cluster_name)
                    request = self._request(stage, cluster, attempt, group)
                    self._fill_chunk(stage, request, group, 0, child_runs)
                    job_uid = self._create(cluster, build_job(request))
                    self._create_secret(cluster, build_secret(request, job_uid))
                except ExecutorError as exc:
                    result.failed.update({t.partition: str(exc) for t in group})
                    continue
                pending.append((request, group))
        for request, group in pending:  # the Jobs run already; the rest of their tables follows
            for start in range(request.table_chunk, len(group), request.table_chunk):
                self._fill_chunk(stage, request, group, start, child_runs)
            for index, task in enumerate(group):
                result.handles[task.partition] = {
                    "cluster": request.cluster,
                    "namespace": request.pod.namespace,
                    "job": request.name,
                    "index": index,
                    "partition": task.partition,
                }
        return result

    def _request(
        self, stage: StageLaunch, cluster: _Cluster, attempt: int, group: list[StageTask]
    ) -> JobRequest:
        settings = cluster.settings
        extra = settings.pod
        pod = PodSettings(
            image=stage.image or settings.image or PodSettings.image,
            namespace=settings.namespace,
            service_account=extra.get("service_account"),
            node_selector={**extra.get("node_selector", {}), **stage.node_selector},
            tolerations=[*extra.get("tolerations", []), *stage.tolerations],
            labels=extra.get("labels", {}),
            env=extra.get("env", {}),
            cpu=stage.cpu,
            memory=stage.memory,
            gpu=stage.gpu,
            cache_claim=extra.get("cache_claim"),
        )
        return JobRequest(
            run_id=stage.run_id,
            node_id=stage.node_id,
            cluster=cluster.name,
            attempt=attempt,
            partitions=[t.partition for t in group],
            parallelism=stage.parallelism,
            retries=stage.retries,
            timeout=stage.timeout,
            tracking_uri=extra.get("tracking_uri") or stage.tracking_uri,
            parent_run_id=stage.parent_run_id,
            env=stage.env,
            pod=pod,
            table_chunk=self.table_chunk,
            secret_env=stage.secret_env,
        )

    def _fill_chunk(
        self, stage: StageLaunch, job: JobRequest, group: list[StageTask], start: int, child_runs: ChildRuns
    ) -> None:
        """Give the tasks of one table chunk their child runs (in `group`, in place), then store the chunk on
        the parent run (what each pod index runs; a pod reads only its chunk)."""
        end = start + job.table_chunk
        chunk = group[start:end]
        made = child_runs([t for t in chunk if not t.child_run_id])
        chunk = [replace(t, child_run_id=t.child_run_id or made[t.partition]) for t in chunk]
        rows = {"partitions": [t.partition for t in chunk], "children": [t.child_run_id for t in chunk]}
        with tempfile.TemporaryDirectory(prefix="concurrent-job-") as tmp:
            path = Path(tmp) / table_chunk(start, job.table_chunk)
            path.write_text(json.dumps(rows), encoding="utf-8")
            self.tracking.log_file(stage.parent_run_id, path, jobs_path(stage.node_id, job.name))
        group[start:end] = chunk

    def _create(self, cluster: _Cluster, job: dict[str, Any]) -> str:
        """Create the Job (or adopt the one an engine that died made); its uid."""
        from kubernetes.client import BatchV1Api
        from kubernetes.client.exceptions import ApiException

        name, namespace = job["metadata"]["name"], job["metadata"]["namespace"]
        api, timeout = BatchV1Api(cluster.client), (REQUEST_TIMEOUT, REQUEST_TIMEOUT)
        try:
            try:
                made = api.create_namespaced_job(
                    namespace,
                    job,  # type: ignore[arg-type]  # the client sends a dict body as is
                    _request_timeout=timeout,
                )
            except ApiException as exc:
                if exc.status != 409:  # 409: made by an engine that died before recording it: adopt it
                    raise
                made = api.read_namespaced_job(name, namespace, _request_timeout=timeout)
        except Exception as exc:
            raise self._error(cluster, f"could not create Job {name}", exc) from None
        return str(made.metadata.uid if made.metadata else "")

    def _create_secret(self, cluster: _Cluster, secret: dict[str, Any] | None) -> None:
        """Create the Job's Secret (owned by the Job, so deleted with it). Its pods wait for it, as a
        kubelet holds a container whose Secret is missing; if it cannot be made, the Job is deleted."""
        from kubernetes.client import BatchV1Api, CoreV1Api
        from kubernetes.client.exceptions import ApiException

        if secret is None:
            return
        name, namespace = secret["metadata"]["name"], secret["metadata"]["namespace"]
        timeout = (REQUEST_TIMEOUT, REQUEST_TIMEOUT)
        try:
            CoreV1Api(cluster.client).create_namespaced_secret(
                namespace,
                secret,  # type: ignore[arg-type]  # the client sends a dict body as is
                _request_timeout=timeout,
            )
        except Exception as exc:
            if isinstance(exc, ApiException) and exc.status == 409:  # made before an engine restart
                return
            with contextlib.suppress(Exception):
                BatchV1Api(cluster.client).delete_namespaced_job(
                    name, namespace, propagation_policy="Background", _request_timeout=timeout
                )
            raise self._error(cluster, f"could not create Secret {name} for its Job", exc) from None

    def _cluster(self, name: str) -> _Cluster:
        with self._lock:
            if name in self._clusters:
                return self._clusters[name]
            try:
                settings = clusters.get(self.store, name)
                document = clusters.credentials(self.store, self._cipher(), name)
                # A cloud sign-in mints its first token here; its failure fails this cluster's tasks.
                self._clusters[name] = _Cluster(name, settings, document, self._changed)
            except ConcurrentError as exc:
                raise ExecutorError(f"cluster {name!r}: {exc}") from None
            return self._clusters[name]

    def _error(self, cluster: _Cluster, what: str, exc: BaseException) -> ExecutorError:
        reason = kube.scrub(kube.describe(exc), cluster.secrets)
        return ExecutorError(f"cluster {cluster.name!r} ({cluster.settings.server}): {what}: {reason}")

    # -- the Executor protocol ------------------------------------------------------------------------------
    def submit(self, launch: TaskLaunch) -> tuple[dict[str, Any], str | None]:
        raise ExecutorError("the Kubernetes executor starts whole stages (start_stage), not single tasks")

    def find(self, launch: TaskLaunch) -> tuple[dict[str, Any], str | None] | None:
        return None  # a restarted engine re-submits the stage, which adopts Jobs that exist

    def observe(self, handle: dict[str, Any]) -> Observation:
        watch = self._cluster(handle["cluster"]).watch
        if not watch.synced():
            return Observation("queued")
        job = watch.job(handle["job"])
        if job is None:  # not seen by the watch (yet): ask the API server (ClusterWatch.confirm_job)
            try:
                job = watch.confirm_job(handle["job"])
            except Exception as exc:  # unreachable, 5xx: no verdict on the Job; ask again next pass
                log.warning(
                    "%s: could not read Job %s: %s", handle["cluster"], handle["job"], kube.describe(exc)
                )
                return Observation("queued")
        index = int(handle["index"])
        if job is None:
            return Observation("lost", detail=f"Job {handle['job']} no longer exists on {handle['cluster']}")
        if index in job.completed:  # the common case needs no pod lookup: this runs per partition per pass
            return Observation("exited", exit_code=0)
        pods = watch.pods(handle["job"], index)
        failed = index in job.failed_set or (job.failed and not job.active)
        if failed:
            last = pods[-1] if pods else None
            code = last.exit_code if last and last.exit_code is not None else 1
            return Observation("exited", exit_code=code or 1, detail=_failure(job.failure or "", pods))
        if any(p.phase == "Running" for p in pods):
            return Observation("running")
        return Observation("queued")

    def cancel(self, handle: dict[str, Any]) -> None:
        from kubernetes.client import BatchV1Api, V1DeleteOptions
        from kubernetes.client.exceptions import ApiException

        key = (handle["cluster"], handle["job"])
        with self._lock:
            if key in self._cancelled:
                return
            self._cancelled.add(key)
        cluster = self._cluster(handle["cluster"])
        try:
            BatchV1Api(cluster.client).delete_namespaced_job(
                handle["job"],
                handle["namespace"],
                body=V1DeleteOptions(propagation_policy="Foreground"),
                _request_timeout=(REQUEST_TIMEOUT, REQUEST_TIMEOUT),
            )
        except ApiException as exc:
            if exc.status != 404:
                raise self._error(cluster, f"could not delete Job {handle['job']}", exc) from None

    def read_log(self, handle: dict[str, Any]) -> bytes:
        """Every pod this partition took, oldest first: a header naming the pod, its log, and once it has
        ended a line saying how. Read again later, it only grows (a follower sends just the new bytes)."""
        cluster = self._cluster(handle["cluster"])
        parts: list[str] = []
        for pod in cluster.watch.pods(handle["job"], int(handle["index"])):
            text = "" if pod.phase == "Pending" else _pod_log(cluster, pod.name, handle["namespace"])
            if text is None:  # deleted since the watch saw it: its log went with it
                continue
            parts += [f"===== pod {pod.name} (try {pod.failures + 1}) =====\n", text]
            if pod.phase in ("Succeeded", "Failed"):
                newline = "" if not text or text.endswith("\n") else "\n"
                parts.append(f"{newline}----- pod {pod.name} ended: {pod.describe()} -----\n")
        return "".join(parts).encode()

    def prepare(self) -> None:
        pass  # a cluster is connected to when a stage or a log first needs it

    def wake_on_change(self, wake: Callable[[], None]) -> None:
        self._wakes.append(wake)

    def _changed(self) -> None:
        for wake in self._wakes:
            wake()

    def close(self) -> None:
        with self._lock:
            for cluster in self._clusters.values():
                cluster.close()
            self._clusters.clear()


def _pod_log(cluster: _Cluster, pod: str, namespace: str) -> str | None:
    """A pod's log through the API server; None if the pod is gone, a line saying why if it cannot be read."""
    from kubernetes.client import CoreV1Api
    from kubernetes.client.exceptions import ApiException

    try:
        return CoreV1Api(cluster.client).read_namespaced_pod_log(
            pod, namespace, container=CONTAINER, _request_timeout=(10, 60)
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        reason = kube.describe(exc)
    except Exception as exc:
        reason = kube.describe(exc)
    return f"(the log could not be read: {kube.scrub(reason, cluster.secrets)})\n"


def _failure(job_failure: str, pods: list[PodSummary]) -> str:
    if not pods:
        return job_failure or "the Job failed before a pod started"
    tries = f"{len(pods)} pod(s)"
    return f"{pods[-1].describe()} (after {tries}){'; ' + job_failure if job_failure else ''}"
