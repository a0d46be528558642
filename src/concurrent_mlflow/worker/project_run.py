"""Runs an MLproject entry point through MLflow's own local project backend, in the task's child run.

MLflow builds (and caches) the project's environment for `uv`, `virtualenv` and `conda`; a file lock keeps
parallel tasks of one machine from building the same environment twice at once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
from pathlib import Path

from concurrent_mlflow.executors.jobspec import PROJECT_IMAGE_ENV
from concurrent_mlflow.manifest import Manifest, ProjectSpec
from concurrent_mlflow.project import resolve_project
from concurrent_mlflow.tracking import Tracking

log = logging.getLogger("concurrent.worker")


def run_project(
    spec: ProjectSpec, manifest: Manifest, child: str, tracking: Tracking, experiment_id: str | None = None
) -> int:
    """Run the entry point to its end; returns its exit code (what the executor reports to the user).
    `experiment_id`, when the engine handed it over, saves reading the child run for it."""
    from mlflow.projects.backend.local import LocalBackend
    from mlflow.projects.utils import (
        MLFLOW_LOCAL_BACKEND_RUN_ID_CONFIG,
        PROJECT_BUILD_IMAGE,
        PROJECT_DOCKER_ARGS,
        PROJECT_DOCKER_AUTH,
        PROJECT_ENV_MANAGER,
        PROJECT_STORAGE_DIR,
        PROJECT_SYNCHRONOUS,
    )

    cache_dir = Path(os.environ.get("CONCURRENT_CACHE", Path.home() / ".cache" / "concurrent-mlflow"))
    project = resolve_project(spec.project, spec.commit, base_dir=Path(spec.base_dir), cache_dir=cache_dir)
    parameters = {**spec.parameters, **manifest.parameters}
    env_manager = spec.env_manager
    config = {
        MLFLOW_LOCAL_BACKEND_RUN_ID_CONFIG: child,
        PROJECT_ENV_MANAGER: env_manager,
        PROJECT_SYNCHRONOUS: True,
        PROJECT_DOCKER_ARGS: None,
        PROJECT_STORAGE_DIR: None,
        PROJECT_BUILD_IMAGE: False,
        PROJECT_DOCKER_AUTH: None,
    }
    # With env_manager local, `python` in an entry point must be the worker's interpreter (it has this package
    # and MLflow); for uv and virtualenv, MLflow finds those tools beside it.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    os.environ.setdefault("MLFLOW_ENV_ROOT", str(cache_dir / "envs"))  # built once, reused by every task
    if experiment_id is None:
        experiment_id = tracking.get_run(child).info.experiment_id
    if Path(spec.base_dir).is_dir():  # MLflow reads a relative `path` parameter from the current directory:
        os.chdir(spec.base_dir)  # the caller's (`mlflow run`) or the DAG file's, not the fork server's
    log.info(
        "running %s entry point %r with %s (env manager: %s)",
        project.work_dir,
        spec.entry_point,
        parameters,
        env_manager,
    )
    if spec.image is not None and os.environ.get(PROJECT_IMAGE_ENV) == spec.image:
        return _run_in_this_image(project.work_dir, spec.entry_point, parameters, child, experiment_id)
    with _environment_lock(cache_dir, enabled=env_manager != "local"):
        submitted = LocalBackend().run(  # type: ignore[no-untyped-call]
            str(project.work_dir),
            spec.entry_point,
            parameters,
            None,
            config,
            tracking.tracking_uri,
            experiment_id,
        )
    submitted.wait()
    code = int(submitted.command_proc.returncode)
    code = code if code >= 0 else 128 - code  # killed by signal N: the shell's 128+N, not a negative
    log.info("entry point %s", "succeeded" if code == 0 else f"failed with exit code {code}")
    return code


def _run_in_this_image(
    work_dir: Path, entry_point: str, parameters: dict[str, str], child: str, experiment_id: str
) -> int:
    """The entry point's command, as MLflow builds it, run in this container (the project's image)."""
    import tempfile

    from mlflow.projects import _project_spec
    from mlflow.projects.backend.local import _run_entry_point
    from mlflow.projects.utils import get_entry_point_command

    project = _project_spec.load_project(str(work_dir))  # type: ignore[no-untyped-call]
    with tempfile.TemporaryDirectory(prefix="concurrent-params-") as storage_dir:  # `path` downloads
        command = " ".join(get_entry_point_command(project, entry_point, parameters, storage_dir))  # type: ignore[no-untyped-call]
        log.info("running %r in this pod, the project's image", command)
        submitted = _run_entry_point(command, str(work_dir), experiment_id, child)  # type: ignore[no-untyped-call]
        submitted.wait()
    code = int(submitted.command_proc.returncode)
    return code if code >= 0 else 128 - code


class _environment_lock:
    def __init__(self, cache_dir: Path, *, enabled: bool) -> None:
        self.path = cache_dir / "environment.lock"
        self.enabled = enabled
        self.fd: int | None = None

    def __enter__(self) -> None:
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR)
            fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
