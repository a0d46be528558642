"""What the engine hands a local worker so that it need not ask MLflow: its stage's spec, its own manifest,
and the experiment and artifact location of its child run.

The plan stays stored on the parent run (the record, and what a Kubernetes pod reads); a local worker gets
the same spec and manifest from the engine's copy of the plan, on its standard input, and saves the five
or more MLflow round trips a `runs:/` download costs per file. A worker handed nothing reads MLflow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from concurrent_mlflow.manifest import Manifest, TaskSpec, spec_from_json, spec_to_json


@dataclass(frozen=True)
class TaskFile:
    spec: TaskSpec
    manifest: Manifest
    experiment_id: str | None = None
    artifact_uri: str | None = None  # the child run's, when the engine knows it (it created the run)

    def dumps(self) -> str:
        return json.dumps(
            {
                "spec": spec_to_json(self.spec),
                "manifest": self.manifest.dumps(),
                "experiment_id": self.experiment_id,
                "artifact_uri": self.artifact_uri,
            }
        )

    @classmethod
    def loads(cls, text: str) -> TaskFile:
        raw = json.loads(text)
        return cls(
            spec=spec_from_json(raw["spec"]),
            manifest=Manifest.loads(raw["manifest"]),
            experiment_id=raw.get("experiment_id"),
            artifact_uri=raw.get("artifact_uri"),
        )
