"""How an engine runs: its limits, waits and retry backoff, and the server's execution policy."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from concurrent_mlflow.policy import ExecutionPolicy


@dataclass(frozen=True)
class EngineSettings:
    cache_dir: Path
    max_parallel: int = field(default_factory=lambda: os.cpu_count() or 1)
    poll_interval: float = 2.0
    """The fallback: the longest wait between passes when no event and no deadline comes first."""
    retry_backoff: float = 1.0  # seconds before the first retry; doubles per attempt
    max_backoff: float = 60.0
    dispatch_batch: int = 256  # launches per run per pass, so a pass (and the server's lease) stays short
    mlflow_threads: int = 8  # launches and endings in flight at once: each is a few MLflow round trips
    stage_batch: int = 100_000  # partitions handed to Kubernetes in one pass (one Job per cluster)
    policy: ExecutionPolicy = field(default_factory=ExecutionPolicy)
    """A server's execution policy, checked again before a node is listed or planned."""
