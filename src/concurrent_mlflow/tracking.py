"""Every MLflow call in one place: parent and child runs, tags, params, artifacts, output indexes.

A DAG run is an MLflow parent run; each task attempt is a child run (tag `mlflow.parentRunId`). The planner
stores task specs and partition manifests (many per JSON-lines file) as parent-run artifacts under
`plan/`; a worker logs what its task wrote under `outputs/` plus an index `concurrent/outputs.json` (sizes,
metadata) that downstream planning reads instead of listing artifacts file by file.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import mlflow.artifacts
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient

from concurrent_mlflow.errors import PlanStopped, TrackingError
from concurrent_mlflow.manifest import InputItem, Manifest, TaskSpec, spec_from_json, spec_to_json

TAG_PREFIX = "concurrent."
OUTPUTS_DIR = "outputs"
OUTPUT_INDEX = "concurrent/outputs.json"
LOG_PATH = "logs"
TASK_LOG = f"{LOG_PATH}/task.log"  # an attempt's log, saved in its child run when the attempt ends
MAX_PARAM_LENGTH = 6000
METRICS_PER_BATCH = 1000  # MLflow's most per log_batch
MANIFEST_FILE_BYTES = 1 << 20
ARTIFACT_URIS_KEPT = 4096
T = TypeVar("T")
# Modules MLflow tries to import on every REST call to detect Databricks, a notebook or Spark. A failed import
# is not cached by Python: each try scans sys.path under the import lock, which threads then queue on (about
# a third of a millisecond a call, and 14% of the control plane's busy time under load).
CONTEXT_PROBES = ("dbruntime", "IPython", "pyspark")
_URL_CREDENTIALS = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@'\"]+@")


def spec_path(node_id: str) -> str:
    return f"plan/{node_id}/spec.json"


def manifest_path(node_id: str, partition: int) -> str:
    """One manifest per file: how stages planned before manifests were stored in bulk kept them."""
    return f"plan/{node_id}/manifests/{partition:06d}.json"


def manifest_file(node_id: str, partition: int, per_file: int) -> tuple[str, int]:
    """The file holding partition `partition`'s manifest when `per_file` share a file, and its line there."""
    return f"plan/{node_id}/manifests/{partition // per_file:06d}.jsonl", partition % per_file


def manifest_location(node_id: str, partition: int, spec: TaskSpec) -> tuple[str, int | None]:
    """The plan file holding a partition's manifest and its line there (None: the whole file, as in plans
    stored one manifest per file)."""
    if not spec.manifests_per_file:
        return manifest_path(node_id, partition), None
    return manifest_file(node_id, partition, spec.manifests_per_file)


def manifest_at(lines: Sequence[str], line: int, where: str) -> Manifest:
    if line >= len(lines):
        raise TrackingError(f"{where} has no manifest at line {line + 1}")
    return Manifest.loads(lines[line])


def manifests_per_file(lines: Sequence[str]) -> int:
    """As many manifests per file as keep every file near MANIFEST_FILE_BYTES (at least one): a worker reads
    one file of about that size, and a plan of 100,000 partitions is a few dozen uploads, not 100,000."""
    largest = max((len(line.encode()) + 1 for line in lines), default=1)
    return max(1, MANIFEST_FILE_BYTES // largest)


def ui_url(tracking_uri: str, experiment_id: str | None, mlflow_run_id: str | None) -> str | None:
    """The MLflow UI page of a run, when the tracking URI is a server a browser can open."""
    if not (experiment_id and mlflow_run_id and tracking_uri.startswith(("http://", "https://"))):
        return None
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{mlflow_run_id}"


def parent_identity(run_id: str) -> dict[str, str]:
    """The tags by which an engine finds DAG run `run_id`'s parent run."""
    return {f"{TAG_PREFIX}kind": "dag-run", f"{TAG_PREFIX}run_id": run_id}


def skip_absent_probes() -> None:
    """Make MLflow's per-call imports of `CONTEXT_PROBES` that are not installed fail at once (a None in
    sys.modules is Python's own "known absent" marker); installed ones are left alone."""
    for name in CONTEXT_PROBES:
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            sys.modules[name] = None  # type: ignore[assignment]


class Tracking:
    """A thin, typed layer over MlflowClient that turns MLflow failures into TrackingError."""

    def __init__(self, tracking_uri: str) -> None:
        skip_absent_probes()
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self._artifact_uris: dict[str, str] = {}

    # -- experiments and parent runs --------------------------------------------------------------------
    def experiment_id(self, name: str) -> str:
        def get_or_create() -> str:
            found = self.client.get_experiment_by_name(name)
            return str(found.experiment_id) if found else str(self.client.create_experiment(name))

        return self._call(f"open experiment {name!r}", get_or_create)

    def experiment_name(self, experiment_id: str) -> str:
        return str(
            self._call(
                f"find experiment {experiment_id!r}", lambda: self.client.get_experiment(experiment_id)
            ).name
        )

    def start_parent(
        self,
        experiment_id: str,
        *,
        run_id: str,
        dag_name: str,
        dag_yaml: str,
        overrides: Mapping[str, str],
        tags: Mapping[str, str],
    ) -> str:
        """Create the parent run with `tags`, or find the one created for it already (by `mlflow run -b
        concurrent` before its driver started, or by an engine killed mid-way), and log the DAG."""
        parent = self.find_run(experiment_id, parent_identity(run_id)) or self.create_parent(
            experiment_id, run_id=run_id, dag_name=dag_name, tags=tags
        )
        params = [Param(k[:250], v[:MAX_PARAM_LENGTH]) for k, v in sorted(overrides.items())]
        self._call("log the DAG", lambda: self._log_batch(parent, params, []))
        self.log_text(parent, without_url_credentials(dag_yaml), "dag.yaml")
        return parent

    def create_parent(
        self, experiment_id: str, *, run_id: str, dag_name: str, tags: Mapping[str, str] | None = None
    ) -> str:
        """Create DAG run `run_id`'s parent run with our tags and `tags` (which may name it otherwise)."""
        every_tag = {
            **parent_identity(run_id),
            f"{TAG_PREFIX}dag": dag_name,
            "mlflow.runName": f"{dag_name} {run_id}",
            "mlflow.source.type": "PROJECT",
            **(tags or {}),
        }
        created = self._call(
            "create the parent run", lambda: self.client.create_run(experiment_id, tags=every_tag)
        )
        return str(created.info.run_id)

    def find_run(self, experiment_id: str, tags: Mapping[str, str]) -> str | None:
        """The run in `experiment_id` carrying all these tags: how a restarted engine finds its runs."""
        query = " and ".join(f"tags.`{k}` = '{v.replace(chr(39), '')}'" for k, v in tags.items())
        found = self._call(
            "search runs", lambda: self.client.search_runs([experiment_id], query, max_results=1)
        )
        return str(found[0].info.run_id) if found else None

    def find_parents(self, max_results: int = 50, run_id: str | None = None) -> list[Any]:
        """DAG runs (parent runs), newest first, across experiments; one run if `run_id` is given."""
        experiments = self._call("list experiments", lambda: self.client.search_experiments())
        ids = [e.experiment_id for e in experiments]
        if not ids:
            return []
        query = f"tags.`{TAG_PREFIX}kind` = 'dag-run'"
        if run_id is not None:
            query += f" and tags.`{TAG_PREFIX}run_id` = '{run_id.replace(chr(39), '')}'"
        return list(
            self._call(
                "search runs",
                lambda: self.client.search_runs(
                    ids, query, max_results=max_results, order_by=["attributes.start_time DESC"]
                ),
            )
        )

    def children(self, parent: Any) -> list[Any]:
        query = f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
        return list(
            self._call(
                "search child runs",
                lambda: self.client.search_runs([parent.info.experiment_id], query, max_results=50_000),
            )
        )

    def finished_children(self, experiment_id: str, parent: str) -> list[Any]:
        """The parent's task runs that FINISHED (every attempt's), with their latest metrics."""
        query = (
            f"tags.`mlflow.parentRunId` = '{parent}' and tags.`{TAG_PREFIX}kind` = 'task' "
            "and attributes.status = 'FINISHED'"
        )
        return list(
            self._call(
                "search the finished child runs",
                lambda: self.client.search_runs([experiment_id], query, max_results=50_000),
            )
        )

    def metric_history(self, mlflow_run_id: str, key: str) -> list[Metric]:
        return list(
            self._call(
                f"read the history of metric {key!r} of run {mlflow_run_id}",
                lambda: self.client.get_metric_history(mlflow_run_id, key),
            )
        )

    def log_metrics(self, mlflow_run_id: str, metrics: Sequence[Metric]) -> None:
        """Any number of metrics, in batches of MLflow's largest size."""
        for start in range(0, len(metrics), METRICS_PER_BATCH):
            chunk = list(metrics[start : start + METRICS_PER_BATCH])
            self._call(
                f"log metrics to run {mlflow_run_id}",
                partial(self.client.log_batch, mlflow_run_id, metrics=chunk, synchronous=True),
            )

    def get_run(self, mlflow_run_id: str) -> Any:
        return self._call(f"read run {mlflow_run_id}", lambda: self.client.get_run(mlflow_run_id))

    # -- child runs -------------------------------------------------------------------------------------
    def create_child(
        self,
        experiment_id: str,
        parent: str,
        *,
        run_id: str,
        node_id: str,
        partition: int,
        attempt: int,
        params: Mapping[str, str],
        tags: Mapping[str, str] | None = None,
        recover: bool = False,
    ) -> str:
        """Create the attempt's child run with our tags and `tags` (MLflow's, run_tags.py); with `recover`,
        first look for one an earlier engine created."""
        identity = {
            f"{TAG_PREFIX}run_id": run_id,
            f"{TAG_PREFIX}node": node_id,
            f"{TAG_PREFIX}partition": str(partition),
            f"{TAG_PREFIX}attempt": str(attempt),
        }
        every_tag = {
            **(tags or {}),
            "mlflow.parentRunId": parent,
            "mlflow.runName": f"{node_id}-{partition}" + (f"-attempt{attempt}" if attempt > 1 else ""),
            f"{TAG_PREFIX}kind": "task",
            **identity,
        }
        child = self.find_run(experiment_id, identity) if recover else None
        if child is None:
            created = self._call(
                f"create the child run of {node_id}[{partition}]",
                lambda: self.client.create_run(experiment_id, tags=every_tag),
            )
            child = str(created.info.run_id)
            self.remember_artifact_uri(child, str(created.info.artifact_uri))
        self.log_params(child, params)
        return child

    def remember_artifact_uri(self, mlflow_run_id: str, artifact_uri: str) -> None:
        """Where a run keeps its artifacts, known from its creation: uploading to it then needs no
        `runs/get` first (MlflowClient looks the run up once per run and process)."""
        if len(self._artifact_uris) >= ARTIFACT_URIS_KEPT:
            self._artifact_uris.pop(next(iter(self._artifact_uris)), None)
        self._artifact_uris[mlflow_run_id] = artifact_uri

    def artifact_uri(self, mlflow_run_id: str) -> str | None:
        """The run's artifact location if this process created the run or was told it, else None."""
        return self._artifact_uris.get(mlflow_run_id)

    def log_params(self, mlflow_run_id: str, params: Mapping[str, str]) -> None:
        batch = [Param(k[:250], str(v)[:MAX_PARAM_LENGTH]) for k, v in sorted(params.items())]
        if batch:
            self._call("log params", lambda: self._log_batch(mlflow_run_id, batch, []))

    def set_tags(self, mlflow_run_id: str, tags: Mapping[str, str]) -> None:
        batch = [RunTag(k, v) for k, v in sorted(tags.items())]
        self._call("set tags", lambda: self._log_batch(mlflow_run_id, [], batch))

    def terminate(self, mlflow_run_id: str, status: str, current: str | None = None) -> None:
        """Set a run's final status. FINISHED only closes an open run; FAILED and KILLED also overrule a
        FINISHED that user code set itself (`with mlflow.start_run()` ends the run before our outputs).
        `current`, when the caller just read it, saves a round trip."""

        def settle() -> None:
            now = current or self.client.get_run(mlflow_run_id).info.status
            if now in ("RUNNING", "SCHEDULED") or (status != "FINISHED" and now == "FINISHED"):
                self.client.set_terminated(mlflow_run_id, status)

        self._call(f"end run {mlflow_run_id}", settle)

    def finish(self, mlflow_run_id: str) -> None:
        """Mark a run FINISHED in one call, whatever it is now: how a worker ends its child run once its
        outputs are logged (an entry point that ended the run itself, or set it FAILED and still exited
        0, is overruled; an engine that cancels the task marks the run KILLED after the worker is gone)."""
        self._call(f"end run {mlflow_run_id}", lambda: self.client.set_terminated(mlflow_run_id, "FINISHED"))

    def reopen(self, mlflow_run_id: str) -> None:
        self._call(
            f"reopen run {mlflow_run_id}", lambda: self.client.update_run(mlflow_run_id, status="RUNNING")
        )

    def status(self, mlflow_run_id: str) -> str:
        return str(self.get_run(mlflow_run_id).info.status)

    # -- artifacts --------------------------------------------------------------------------------------
    def log_text(self, mlflow_run_id: str, text: str, artifact_file: str) -> None:
        folder, _, name = artifact_file.rpartition("/")

        def write() -> None:
            with tempfile.TemporaryDirectory(prefix="concurrent-") as tmp:
                path = Path(tmp) / name
                path.write_text(text, encoding="utf-8")
                self._upload(mlflow_run_id, path, folder or None)

        self._call(f"write {artifact_file}", write)

    def log_file(self, mlflow_run_id: str, local_path: Path, artifact_dir: str) -> None:
        self._call(f"upload {local_path.name}", lambda: self._upload(mlflow_run_id, local_path, artifact_dir))

    def log_dir(self, mlflow_run_id: str, local_dir: Path, artifact_dir: str | None) -> None:
        def upload() -> None:
            if (uri := self.artifact_uri(mlflow_run_id)) is not None:
                self._repository(uri).log_artifacts(str(local_dir), artifact_dir)
            else:
                self.client.log_artifacts(mlflow_run_id, str(local_dir), artifact_dir)

        self._call(f"upload {local_dir}", upload)

    def _upload(self, mlflow_run_id: str, local_path: Path, artifact_dir: str | None) -> None:
        if (uri := self.artifact_uri(mlflow_run_id)) is not None:
            self._repository(uri).log_artifact(str(local_path), artifact_dir)
        else:
            self.client.log_artifact(mlflow_run_id, str(local_path), artifact_dir)

    def _repository(self, artifact_uri: str) -> Any:
        return get_artifact_repository(artifact_uri, tracking_uri=self.tracking_uri)

    def read_text(self, mlflow_run_id: str, artifact_file: str) -> str:
        return self._read_uri(
            f"runs:/{mlflow_run_id}/{artifact_file}", f"read {artifact_file} of run {mlflow_run_id}"
        )

    def read_bytes(self, mlflow_run_id: str, artifact_file: str) -> bytes | None:
        """An artifact of a run as it was stored; None if the run has no such file."""
        folder, _, _ = artifact_file.rpartition("/")
        listed = self._call(
            f"list {folder or 'the artifacts'} of run {mlflow_run_id}",
            lambda: self.client.list_artifacts(mlflow_run_id, folder or None),
        )
        if artifact_file not in {entry.path for entry in listed}:
            return None

        def download() -> bytes:
            with tempfile.TemporaryDirectory(prefix="concurrent-") as tmp:
                return Path(self.client.download_artifacts(mlflow_run_id, artifact_file, tmp)).read_bytes()

        return self._call(f"read {artifact_file} of run {mlflow_run_id}", download)

    def log_plan(
        self,
        parent: str,
        node_id: str,
        spec: TaskSpec,
        manifests: Sequence[Manifest],
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        """Store a stage's task spec and its manifests, many per JSON-lines file, with one upload call.

        `should_stop` is asked between files: a cancelled run's plan stops there (PlanStopped), and its
        temporary directory is removed on that path as on every other.
        """
        with tempfile.TemporaryDirectory(prefix="concurrent-plan-") as tmp:
            write_plan(Path(tmp), node_id, spec, manifests, should_stop)
            self.log_dir(parent, Path(tmp) / "plan" / node_id, f"plan/{node_id}")

    def read_spec(self, parent: str, node_id: str) -> TaskSpec:
        return spec_from_json(json.loads(self.read_text(parent, spec_path(node_id))))

    def read_manifest(self, parent: str, node_id: str, partition: int, spec: TaskSpec) -> Manifest:
        """Partition `partition`'s manifest, from its JSON-lines file (or its own file, for older plans)."""
        name, line = manifest_location(node_id, partition, spec)
        text = self.read_text(parent, name)
        return manifest_at(
            text.splitlines() if line is not None else [text], line or 0, f"{name} of {parent}"
        )

    def read_outputs(self, child_run_id: str, origin: int) -> list[InputItem]:
        """The files a finished task logged, as items downstream tasks can fetch."""
        artifact_uri = str(self.get_run(child_run_id).info.artifact_uri)
        index = json.loads(
            self._read_uri(f"{artifact_uri}/{OUTPUT_INDEX}", f"read {OUTPUT_INDEX} of {child_run_id}")
        )
        base = _fetchable_base(artifact_uri, child_run_id)
        return [
            InputItem(
                uri=f"{base}/{OUTPUTS_DIR}/{entry['relpath']}",
                relpath=f"part-{origin:05d}/{entry['relpath']}",
                size=int(entry["size"]),
                metadata=dict(entry.get("metadata") or {}),
                origin=origin,
            )
            for entry in index["files"]
        ]

    def _read_uri(self, artifact_uri: str, what: str) -> str:
        def download() -> str:
            with tempfile.TemporaryDirectory(prefix="concurrent-") as tmp:
                path = mlflow.artifacts.download_artifacts(
                    artifact_uri=artifact_uri, dst_path=tmp, tracking_uri=self.tracking_uri
                )
                return Path(path).read_text(encoding="utf-8")

        return self._call(what, download)

    # -- plumbing ---------------------------------------------------------------------------------------
    def _log_batch(self, mlflow_run_id: str, params: list[Param], tags: list[RunTag]) -> None:
        self.client.log_batch(mlflow_run_id, params=params, tags=tags, synchronous=True)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one MLflow call, retrying transient failures briefly, and say what failed and where."""
        delay = 0.5
        for attempt in range(4):
            try:
                return fn()
            except MlflowException as exc:
                status = int(exc.get_http_status_code())  # type: ignore[no-untyped-call]
                transient = status >= 500 or "Connection" in str(exc)
                if not transient or attempt == 3:
                    raise TrackingError(
                        f"MLflow at {self.tracking_uri} could not {what}: {exc.message}"
                    ) from exc
            except OSError as exc:
                if attempt == 3:
                    raise TrackingError(f"MLflow at {self.tracking_uri} could not {what}: {exc}") from exc
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")


def write_plan(
    root: Path,
    node_id: str,
    spec: TaskSpec,
    manifests: Sequence[Manifest],
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Write a stage's spec and manifests below `root` as they are stored on the parent run (`plan/...`)."""
    lines = [manifest.dumps() for manifest in manifests]
    per_file = manifests_per_file(lines)
    (root / spec_path(node_id)).parent.mkdir(parents=True)
    (root / spec_path(node_id)).write_text(
        json.dumps(spec_to_json(replace(spec, manifests_per_file=per_file)), indent=2, sort_keys=True),
        encoding="utf-8",
    )
    (root / manifest_path(node_id, 0)).parent.mkdir(parents=True)
    for start in range(0, len(lines), per_file):
        if should_stop():
            raise PlanStopped(f"planning of {node_id} stopped: the run is ending")
        name, _ = manifest_file(node_id, start, per_file)
        (root / name).write_text("\n".join(lines[start : start + per_file]) + "\n", encoding="utf-8")
    if should_stop():
        raise PlanStopped(f"planning of {node_id} stopped: the run is ending")


def without_url_credentials(text: str) -> str:
    """`https://user:token@host/...` -> `https://host/...` everywhere in `text`: the copy of a DAG logged on
    its parent run is readable by everyone who can read the experiment (the store keeps the original)."""
    return _URL_CREDENTIALS.sub(r"\1", text)


def partition_params(partition: int, partitions: int) -> dict[str, str]:
    """The parameters every child run carries, whoever logs them first (the engine or the worker)."""
    return {"partition": str(partition), "partitions": str(partitions)}


def _fetchable_base(artifact_uri: str, mlflow_run_id: str) -> str:
    """Where a run's artifacts can be fetched from directly: a local path for file stores, else runs:/."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme in ("", "file"):
        return unquote(parsed.path) if parsed.scheme else artifact_uri
    if parsed.scheme in ("s3", "gs", "gcs", "abfss", "hdfs"):
        return artifact_uri
    return f"runs:/{mlflow_run_id}"
