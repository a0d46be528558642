"""The Kubernetes Job for one stage's partitions on one cluster: a pure function of what the engine decided.

One Indexed Job runs many partitions: pod index j runs `partitions[j]` of the stage, whose child run is
`children[j]`; both lists travel as a parent-run artifact (`jobs_path`), not in the Job object, so the Job
stays a few KB whatever the partition count. Per-partition retries are Kubernetes' own
(`backoffLimitPerIndex`); an eviction or preemption (a `DisruptionTarget` pod condition) does not use one
up. A node's timeout bounds each pod (`activeDeadlineSeconds` of the pod, not of the Job, which may run for
hours through its partitions).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MANAGED_BY = "concurrent-mlflow"
LABEL_PREFIX = "concurrent-mlflow.io/"
RUN_LABEL = LABEL_PREFIX + "run-id"
NODE_LABEL = LABEL_PREFIX + "node"
CLUSTER_LABEL = LABEL_PREFIX + "cluster"
ATTEMPT_LABEL = LABEL_PREFIX + "attempt"
DEFAULT_IMAGE = "ghcr.io/concurrent-mlflow/concurrent-mlflow:0.4.0"
CONTAINER = "task"
CACHE_MOUNT = "/cache"
TERMINATION_LOG = "/dev/termination-log"
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
FAILURES_ANNOTATION = "batch.kubernetes.io/job-index-failure-count"


# Set on the pods of a docker_env project's stage, which run in the project's own image: the worker runs
# the entry point right there, as MLflow's docker backend runs it in its container (a pod has no Docker).
PROJECT_IMAGE_ENV = "CONCURRENT_PROJECT_IMAGE"
TABLE_CHUNK = 500  # index -> (partition, child) rows per artifact file: a pod fetches one small file


def jobs_path(node_id: str, job_name: str) -> str:
    """Where the parent run keeps a Job's index → (partition, child run) table, in chunks."""
    return f"plan/{node_id}/jobs/{job_name}"


def table_chunk(index: int, size: int) -> str:
    """The chunk file (inside `jobs_path`) that holds pod index `index`, in chunks of `size` rows."""
    return f"{index // size:05d}.json"


@dataclass(frozen=True)
class PodSettings:
    """How pods look on one cluster: the cluster's registered settings merged with the DAG node's."""

    image: str = DEFAULT_IMAGE
    namespace: str = "default"
    service_account: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    cpu: str | None = None
    memory: str | None = None
    gpu: int | None = None
    cache_claim: str | None = None  # a PersistentVolumeClaim shared by pods for uv and MLflow env caches
    ttl_seconds: int = 3600


@dataclass(frozen=True)
class JobRequest:
    run_id: str
    node_id: str
    cluster: str
    attempt: int  # the engine's attempt number of every partition in this Job
    partitions: Sequence[int]
    parallelism: int
    retries: int
    timeout: float | None
    tracking_uri: str
    parent_run_id: str
    env: Mapping[str, str]
    pod: PodSettings
    table_chunk: int = TABLE_CHUNK  # told to the pods, so they never assume the engine's constant
    secret_env: Mapping[str, str] = field(default_factory=dict)  # e.g. git credentials: in a Secret

    @property
    def name(self) -> str:
        """Deterministic, so a restarted engine re-creating the Job finds the one it made before."""
        partitions = ",".join(map(str, self.partitions))
        key = f"{self.run_id}/{self.node_id}/{self.cluster}/{self.attempt}/{partitions}"
        return f"{self.node_id}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"

    def labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/managed-by": MANAGED_BY,
            RUN_LABEL: self.run_id,
            NODE_LABEL: self.node_id,
            CLUSTER_LABEL: self.cluster,
            ATTEMPT_LABEL: str(self.attempt),
        }


def build_job(request: JobRequest) -> dict[str, Any]:
    labels = request.labels()
    completions = len(request.partitions)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": request.name, "namespace": request.pod.namespace, "labels": labels},
        "spec": {
            "completionMode": "Indexed",
            "completions": completions,
            "parallelism": max(1, min(request.parallelism, completions)),
            "backoffLimitPerIndex": request.retries,
            "podReplacementPolicy": "Failed",
            "podFailurePolicy": {
                "rules": [
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
                ]
            },
            "ttlSecondsAfterFinished": request.pod.ttl_seconds,
            "template": {
                "metadata": {"labels": {**request.pod.labels, **labels}},
                "spec": _pod_spec(request),
            },
        },
    }


def build_secret(request: JobRequest, job_uid: str) -> dict[str, Any] | None:
    """The Secret holding the Job's `secret_env`, so the values appear in neither the Job nor its pods'
    specs; named as the Job and owned by it (Kubernetes deletes it with the Job). None when there are none."""
    if not request.secret_env:
        return None
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": request.name, "uid": job_uid}
    metadata = {
        "name": request.name,
        "namespace": request.pod.namespace,
        "labels": request.labels(),
        "ownerReferences": [owner],
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata,
        "stringData": dict(request.secret_env),
    }


def _pod_spec(request: JobRequest) -> dict[str, Any]:
    pod = request.pod
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,  # a task needs no Kubernetes API
        # The `restricted` pod security level: the image runs as its non-root user 10001.
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "enableServiceLinks": False,
        "containers": [_container(request)],
        "volumes": [
            {"name": "cache", "persistentVolumeClaim": {"claimName": pod.cache_claim}}
            if pod.cache_claim
            else {"name": "cache", "emptyDir": {}}
        ],
    }
    if request.timeout is not None:
        spec["activeDeadlineSeconds"] = max(1, math.ceil(request.timeout))
    if pod.service_account:
        spec["serviceAccountName"] = pod.service_account
    if pod.node_selector:
        spec["nodeSelector"] = dict(pod.node_selector)
    if pod.tolerations:
        spec["tolerations"] = [dict(t) for t in pod.tolerations]
    return spec


def _container(request: JobRequest) -> dict[str, Any]:
    pod = request.pod
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": pod.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "concurrent_mlflow.worker", "--from-job"],
        "env": _env(request),
        "volumeMounts": [{"name": "cache", "mountPath": CACHE_MOUNT}],
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    amounts = {"cpu": pod.cpu, "memory": pod.memory, "nvidia.com/gpu": str(pod.gpu) if pod.gpu else None}
    wanted = {k: v for k, v in amounts.items() if v}
    if wanted:
        container["resources"] = {"requests": wanted, "limits": wanted}
    return container


def _env(request: JobRequest) -> list[dict[str, Any]]:
    values = {
        **request.pod.env,
        **request.env,
        "MLFLOW_TRACKING_URI": request.tracking_uri,
        "CONCURRENT_PARENT_RUN": request.parent_run_id,
        "CONCURRENT_NODE": request.node_id,
        "CONCURRENT_JOB_TABLE": jobs_path(request.node_id, request.name),
        "CONCURRENT_TABLE_CHUNK": str(request.table_chunk),
        "CONCURRENT_CACHE": f"{CACHE_MOUNT}/concurrent",
        "CONCURRENT_SCRATCH": "/tmp/concurrent-scratch",
        "UV_CACHE_DIR": f"{CACHE_MOUNT}/uv",
        "MLFLOW_ENV_ROOT": f"{CACHE_MOUNT}/envs",
        "CONCURRENT_TERMINATION_LOG": TERMINATION_LOG,
        "PYTHONUNBUFFERED": "1",
    }
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(values.items())]
    env += [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": request.name, "key": k}}}
        for k in sorted(request.secret_env)
    ]
    env += [
        {"name": "CONCURRENT_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {
            "name": "CONCURRENT_INDEX_FAILURES",
            "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{FAILURES_ANNOTATION}']"}},
        },
    ]
    return env


def parse_indexes(text: str | None) -> set[int]:
    """A Job status index list such as `1,3-5,7` as a set of ints."""
    found: set[int] = set()
    for part in (text or "").split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        found.update(range(int(first), int(last or first) + 1))
    return found
