"""What one cluster's Jobs and pods look like now, kept current by list-then-watch (an informer, small).

For each kind (Jobs, pods) a thread lists the objects we labelled, then watches from the list's
resourceVersion, asking for bookmarks so the version stays fresh in a quiet namespace. A watch that ends
(server timeout) resumes from the last version seen; `410 Gone` (the version was compacted away) relists;
`429` and `5xx` answers and dropped connections (an API server restarting) back off exponentially, up to
30 s, then relist, so the cache is correct again after a control-plane restart. Only small summaries are
kept, not the client's object models: 10,000 pods cost a few MB. A change to a Job (its completed or
failed indexes: how partitions end) and each fresh listing call `on_change`, which wakes the engine.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from concurrent_mlflow.executors.jobspec import (
    FAILURES_ANNOTATION,
    INDEX_ANNOTATION,
    MANAGED_BY,
    parse_indexes,
)

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logging.getLogger("concurrent.kubernetes")
SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"
WATCH_SECONDS = 60
MAX_BACKOFF = 30.0


class _Gone(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again."""


@dataclass(frozen=True)
class JobSummary:
    name: str
    completed_indexes: str | None
    failed_indexes: str | None
    active: int
    failed: bool  # the whole Job failed (a Failed condition)
    failure: str | None  # its reason and message
    completed: frozenset[int] = field(default=frozenset(), compare=False)
    failed_set: frozenset[int] = field(default=frozenset(), compare=False)


@dataclass(frozen=True)
class PodSummary:
    name: str
    job: str
    index: int
    failures: int  # earlier failed pods of this index (the try number is failures + 1)
    phase: str
    reason: str | None
    message: str | None
    exit_code: int | None
    created: str

    def describe(self) -> str:
        if self.phase == "Failed":
            why = self.reason or (f"exit code {self.exit_code}" if self.exit_code is not None else "failed")
            if (
                self.reason
                and self.exit_code is not None
                and self.reason not in ("Evicted", "DeadlineExceeded")
            ):
                why += f" (exit code {self.exit_code})"
            if self.reason == "DeadlineExceeded":
                why = "timed out (the pod's activeDeadlineSeconds passed)"
            return f"{why}{': ' + self.message if self.message else ''}"
        return self.phase.lower() if self.phase != "Succeeded" else "succeeded"


def job_summary(raw: dict[str, Any]) -> JobSummary:
    status = raw.get("status") or {}
    failed = next(
        (
            c
            for c in status.get("conditions") or []
            if c.get("type") == "Failed" and c.get("status") == "True"
        ),
        None,
    )
    failure = f"{failed.get('reason', '')}: {failed.get('message', '')}".strip(": ") if failed else None
    return JobSummary(
        name=raw["metadata"]["name"],
        completed_indexes=status.get("completedIndexes"),
        failed_indexes=status.get("failedIndexes"),
        active=int(status.get("active") or 0),
        failed=failed is not None,
        failure=failure,
        completed=frozenset(parse_indexes(status.get("completedIndexes"))),
        failed_set=frozenset(parse_indexes(status.get("failedIndexes"))),
    )


def pod_summary(raw: dict[str, Any]) -> PodSummary | None:
    meta = raw["metadata"]
    annotations = meta.get("annotations") or {}
    job = (meta.get("labels") or {}).get("job-name")
    if job is None or INDEX_ANNOTATION not in annotations:
        return None
    status = raw.get("status") or {}
    exit_code = None
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            exit_code = terminated.get("exitCode")
    return PodSummary(
        name=meta["name"],
        job=job,
        index=int(annotations[INDEX_ANNOTATION]),
        failures=int(annotations.get(FAILURES_ANNOTATION) or 0),
        phase=status.get("phase") or "Pending",
        reason=status.get("reason"),
        message=status.get("message"),
        exit_code=exit_code,
        created=meta.get("creationTimestamp") or "",
    )


class ClusterWatch:
    def __init__(
        self,
        client: ApiClient,
        namespace: str,
        cluster: str,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.client, self.namespace, self.cluster = client, namespace, cluster
        self.on_change = on_change
        self._jobs: dict[str, JobSummary] = {}
        self._deleted: set[str] = set()  # Jobs the watch saw go: a late confirmation must not bring them back
        self._pods: dict[str, PodSummary] = {}
        self._by_index: dict[tuple[str, int], dict[str, PodSummary]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._synced = {"jobs": threading.Event(), "pods": threading.Event()}
        self._threads: list[threading.Thread] = []
        self.calls = 0  # list and watch requests made: the bench reports them

    def start(self) -> None:
        for kind in ("jobs", "pods"):
            thread = threading.Thread(
                target=self._run, args=(kind,), daemon=True, name=f"watch-{self.cluster}-{kind}"
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def synced(self, timeout: float = 0.0) -> bool:
        return all(event.wait(timeout) for event in self._synced.values())

    def job(self, name: str) -> JobSummary | None:
        with self._lock:
            return self._jobs.get(name)

    def confirm_job(self, name: str) -> JobSummary | None:
        """The Job as the API server has it now, for one the watch has not seen (yet): a Job just created
        reaches the watch some time after the create call returns, longer on a loaded API server, and is
        not lost meanwhile. None only when the API server says it does not exist; an error is raised."""
        from kubernetes.client import BatchV1Api
        from kubernetes.client.exceptions import ApiException

        with self._lock:
            if name in self._deleted:  # gone (or answered 404) already: every partition of it asks
                return None
        self.calls += 1
        try:
            jobs = BatchV1Api(self.client)
            found = jobs.read_namespaced_job(name, self.namespace, _request_timeout=(10, 30))
        except ApiException as exc:
            if exc.status == 404:
                with self._lock:
                    self._deleted.add(name)
                return None
            raise
        summary = job_summary(self.client.sanitize_for_serialization(found))  # the watch's JSON form
        with self._lock:
            if name in self._deleted:
                return None  # deleted between the read and now: the watch's word is the later one
            return self._jobs.setdefault(name, summary)  # an event that came meanwhile is newer

    def pods(self, job: str, index: int) -> list[PodSummary]:
        with self._lock:
            found = list(self._by_index.get((job, index), {}).values())
        return sorted(found, key=lambda p: (p.failures, p.created, p.name))

    # -- list then watch ---------------------------------------------------------------------------------
    def _run(self, kind: str) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                version = self._list(kind)
                self._synced[kind].set()
                self.on_change()
                backoff = 0.5
                while not self._stop.is_set():
                    version = self._watch(kind, version)
            except _Gone:
                log.info("%s: %s watch expired (410 Gone); listing again", self.cluster, kind)
            except Exception as exc:  # 429, 5xx, connection refused while an API server restarts ...
                from concurrent_mlflow.kube import describe

                if self._stop.is_set():  # closing the client ended the stream
                    return
                log.warning(
                    "%s: watching %s failed (%s); retrying in %.1fs",
                    self.cluster,
                    kind,
                    describe(exc),
                    backoff,
                )
                self._stop.wait(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _call(self, kind: str) -> Callable[..., Any]:
        from kubernetes.client import BatchV1Api, CoreV1Api

        if kind == "jobs":
            return BatchV1Api(self.client).list_namespaced_job
        return CoreV1Api(self.client).list_namespaced_pod

    def _list(self, kind: str) -> str:
        self.calls += 1
        response = self._call(kind)(
            self.namespace, label_selector=SELECTOR, _preload_content=False, _request_timeout=(10, 120)
        )
        body = json.loads(response.data)
        with self._lock:
            if kind == "jobs":
                self._jobs = {j.name: j for j in map(job_summary, body["items"])}
                self._deleted.clear()  # the list is the truth as of now
            else:
                self._pods, self._by_index = {}, {}
                for pod in filter(None, map(pod_summary, body["items"])):
                    self._put_pod(pod)
        return str(body["metadata"]["resourceVersion"])

    def _watch(self, kind: str, version: str) -> str:
        self.calls += 1
        response = self._call(kind)(
            self.namespace,
            label_selector=SELECTOR,
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _preload_content=False,
            _request_timeout=(10, WATCH_SECONDS + 30),
        )
        try:
            for event in _events(response):
                if self._stop.is_set():
                    break
                version = self._apply(kind, event) or version
        finally:
            response.release_conn()
        return version

    def _apply(self, kind: str, event: dict[str, Any]) -> str | None:
        kind_of_event, raw = event["type"], event["object"]
        if kind_of_event == "ERROR":
            if raw.get("code") == 410:
                raise _Gone()
            raise RuntimeError(f"watch error {raw.get('code')}: {raw.get('message')}")
        version = raw.get("metadata", {}).get("resourceVersion")
        if kind_of_event == "BOOKMARK":
            return str(version) if version else None
        name = raw["metadata"]["name"]
        with self._lock:
            if kind == "jobs":
                if kind_of_event == "DELETED":
                    self._jobs.pop(name, None)
                    self._deleted.add(name)
                else:
                    self._jobs[name] = job_summary(raw)
                    self._deleted.discard(name)
                self.on_change()  # (pods only say running or not: the fallback poll sees that soon enough)
            elif kind_of_event == "DELETED":
                if (gone := self._pods.pop(name, None)) is not None:
                    self._by_index.get((gone.job, gone.index), {}).pop(name, None)
            elif (summary := pod_summary(raw)) is not None:
                self._put_pod(summary)
        return str(version) if version else None

    def _put_pod(self, pod: PodSummary) -> None:
        self._pods[pod.name] = pod
        self._by_index.setdefault((pod.job, pod.index), {})[pod.name] = pod


def _events(response: Any) -> Iterator[dict[str, Any]]:
    """One watch event per line of the streamed response."""
    pending = b""
    for chunk in response.stream(65536, decode_content=False):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield json.loads(line)
    if pending.strip():
        yield json.loads(pending)
