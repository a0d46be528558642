"""The engine's own copy of each stage's plan, from which a local task is handed its spec and manifest.

A plan is stored on the parent run (`plan/<node>/`: the record, and what Kubernetes pods read). The engine
writes the same files under `<cache>/plans/<run id>/` first and uploads them from there, so that launching
a local task reads its manifest from this disk instead of the worker downloading it through MLflow (a
`runs:/` download is several round trips per file). A file missing here (the stage was planned by another
engine, or the copy went with its run's end before a `run retry`) is downloaded from the parent run once
and kept. The copy of a run is removed when the run ends.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

from concurrent_mlflow.manifest import Manifest, TaskSpec, spec_from_json
from concurrent_mlflow.tracking import Tracking, manifest_at, manifest_location, spec_path, write_plan

FILES_KEPT = 8  # manifest files kept split into lines in memory: a stage's launches read the same few


class PlanFiles:
    def __init__(self, root: Path, tracking: Tracking) -> None:
        self.root, self.tracking = root, tracking
        self._lock = threading.Lock()
        self._lines: OrderedDict[Path, Sequence[str]] = OrderedDict()
        self._specs: dict[tuple[str, str], TaskSpec] = {}  # a stage's spec, read once (every launch asks)

    def store(
        self,
        run_id: str,
        parent: str,
        node_id: str,
        spec: TaskSpec,
        manifests: Sequence[Manifest],
        should_stop: Callable[[], bool],
    ) -> None:
        """Write the stage's plan here, upload it to the parent run, and only then put it in place."""
        (self.root / run_id).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".plan-", dir=self.root / run_id) as tmp:
            write_plan(Path(tmp), node_id, spec, manifests, should_stop)
            self.tracking.log_dir(parent, Path(tmp) / "plan" / node_id, f"plan/{node_id}")
            final = self.root / run_id / "plan" / node_id
            with self._lock:
                shutil.rmtree(final, ignore_errors=True)
                final.parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / "plan" / node_id).replace(final)
                self._forget_lines(final)
                self._specs.pop((run_id, node_id), None)

    def spec(self, run_id: str, parent: str, node_id: str) -> TaskSpec:
        """A stage's spec (ConcurrentError if neither here nor on the parent run)."""
        with self._lock:
            if (found := self._specs.get((run_id, node_id))) is not None:
                return found
        spec = spec_from_json(json.loads(self._text(run_id, parent, spec_path(node_id))))
        with self._lock:
            self._specs[(run_id, node_id)] = spec
        return spec

    def task(self, run_id: str, parent: str, node_id: str, partition: int) -> tuple[TaskSpec, Manifest]:
        """A partition's stage spec and manifest (ConcurrentError if neither here nor on the parent run)."""
        spec = self.spec(run_id, parent, node_id)
        name, line = manifest_location(node_id, partition, spec)
        if line is None:
            return spec, Manifest.loads(self._text(run_id, parent, name))
        return spec, manifest_at(self._split(run_id, parent, name), line, f"{name} of {parent}")

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._forget_lines(self.root / run_id)
            for key in [k for k in self._specs if k[0] == run_id]:
                del self._specs[key]
        shutil.rmtree(self.root / run_id, ignore_errors=True)

    def _text(self, run_id: str, parent: str, artifact_file: str) -> str:
        path = self.root / run_id / artifact_file
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            pass
        text = self.tracking.read_text(parent, artifact_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, encoding="utf-8") as out:
            out.write(text)
        Path(out.name).replace(path)
        return text

    def _split(self, run_id: str, parent: str, artifact_file: str) -> Sequence[str]:
        path = self.root / run_id / artifact_file
        with self._lock:
            if (lines := self._lines.get(path)) is not None:
                self._lines.move_to_end(path)
                return lines
        lines = self._text(run_id, parent, artifact_file).splitlines()
        with self._lock:
            self._lines[path] = lines
            while len(self._lines) > FILES_KEPT:
                self._lines.popitem(last=False)
        return lines

    def _forget_lines(self, below: Path) -> None:
        for path in [p for p in self._lines if p.is_relative_to(below)]:
            del self._lines[path]
