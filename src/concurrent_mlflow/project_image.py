"""A project's image: a base image (the cluster's worker image) plus the project's code and its Python
environment, made here with uv for the cluster's platform and pushed with oci_image.py. No Docker.

The environment is what MLflow's virtualenv manager would build at pod start (python_env.yaml, or conda.yaml's
python version and `pip:` list, read with MLflow's own `_PythonEnv`), made once instead: a venv created by
`uv venv --relocatable` with the Python of the build machine's matching version, filled by `uv pip install
--python-platform` with the wheels of the cluster's platform, then pointed at the base image's interpreter
(`bin/python` and `pyvenv.cfg`'s home). A pod runs the entry point with that venv first on its PATH.

Package indexes are uv's own settings (`UV_INDEX_URL`, `UV_EXTRA_INDEX_URL`, `UV_FIND_LINKS`, ...), taken
from the environment, as for every uv the project runs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from concurrent_mlflow.oci_image import (
    BuiltImage,
    ImageError,
    ImageRef,
    Layer,
    Registry,
    extend,
    layer_from_directory,
)
from concurrent_mlflow.project import ResolvedProject

log = logging.getLogger("concurrent.images")

CODE_DIR = "/opt/concurrent/project"
ENV_DIR = "/opt/concurrent/env"
PROJECT_ENV_VARIABLE = "CONCURRENT_PROJECT_ENV"  # set in the image: the venv a pod runs the entry point with
PROJECT_DIR_VARIABLE = "CONCURRENT_PROJECT_DIR"  # and where the project's code is
RECIPE_VERSION = "1"  # part of every image's key: a change to how images are made rebuilds them


@dataclass(frozen=True)
class Platform:
    """Where the image's tasks run: uv's name of the platform and the base image's Python."""

    python_platform: str = "x86_64-manylinux_2_28"
    interpreter: str = "/usr/local/bin/python3"  # the stock worker image's (python:3.11-slim)
    python_version: str = "3.11"  # the base image's Python, major.minor


@dataclass(frozen=True)
class Environment:
    """What the project's venv holds: its Python (major.minor) and its pip requirements."""

    python: str
    requirements: tuple[str, ...]

    @classmethod
    def of(cls, project: ResolvedProject, platform: Platform) -> Environment | None:
        """The project's environment as MLflow's virtualenv manager reads it; None if it declares none
        (its tasks then run in the base image's Python, as with env_manager local)."""
        from mlflow.utils.environment import _PythonEnv

        if project.env_file is None or project.env_type not in ("python_env", "conda_env"):
            return None
        read = _PythonEnv.from_yaml if project.env_type == "python_env" else _PythonEnv.from_conda_yaml
        declared = read(str(project.env_file))  # type: ignore[no-untyped-call]
        python = ".".join(str(declared.python or platform.python_version).split(".")[:2])
        requirements = [*(declared.build_dependencies or []), *(declared.dependencies or [])]
        return cls(python, tuple(str(r) for r in requirements))


def image_key(project: ResolvedProject, environment: Environment | None, platform: Platform) -> str:
    """What the image is made of, in words: the same key is the same image (oci_image.content_tag)."""
    code = project.commit or _tree_digest(project.work_dir)  # a local directory: its content
    env = (
        "none" if environment is None else f"python {environment.python}; {sorted(environment.requirements)}"
    )
    return (
        f"recipe {RECIPE_VERSION}; code {code} {project.work_dir.name}; env {env}; "
        f"platform {platform.python_platform} {platform.interpreter}"
    )


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and ".git" not in path.relative_to(root).parts:
            digest.update(f"{path.relative_to(root).as_posix()}\n".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def build_project_image(
    registry: Registry,
    base: ImageRef,
    target: ImageRef,
    project: ResolvedProject,
    platform: Platform,
) -> BuiltImage:
    """The project's image on `base`, pushed as `target` with a content tag (a cache hit when it exists)."""
    environment = Environment.of(project, platform)
    if environment is not None and environment.python != platform.python_version:
        raise ImageError(
            f"project {project.uri!r} asks for Python {environment.python}, but the base image {base} "
            f"has Python {platform.python_version}: use a base image with Python {environment.python}, or "
            "let the pods build the environment at start (no registry for the cluster)"
        )

    def layers(scratch: Path) -> list[Layer]:
        made = [layer_from_directory(project.work_dir, CODE_DIR, scratch, f"project code ({project.uri})")]
        if environment is not None:
            venv = scratch / "env"
            _make_venv(venv, environment, platform)
            made.append(
                layer_from_directory(venv, ENV_DIR, scratch, f"environment {environment.requirements}")
            )
        return made

    variables = {PROJECT_DIR_VARIABLE: CODE_DIR}
    if environment is not None:
        variables[PROJECT_ENV_VARIABLE] = ENV_DIR
    labels = {
        "org.concurrent-mlflow.project": project.uri,
        "org.concurrent-mlflow.commit": project.commit or "",
        "org.concurrent-mlflow.platform": platform.python_platform,
    }
    key = image_key(project, environment, platform)
    return extend(registry, base, target, key, layers, env=variables, labels=labels)


def _make_venv(venv: Path, environment: Environment, platform: Platform) -> None:
    """A relocatable venv with the requirements for the target platform, whose python is the base image's."""
    uv = _uv()
    _run(
        [uv, "venv", "--relocatable", "--no-project", "--python", environment.python, str(venv)],
        "create the venv",
    )
    if environment.requirements:
        _run(
            [
                uv, "pip", "install", "--python", str(venv / "bin" / "python"),
                "--python-platform", platform.python_platform, "--python-version", environment.python,
                "--no-progress", *environment.requirements,
            ],
            "install the requirements",
        )  # fmt: skip
    _point_at(venv, platform.interpreter)


def _point_at(venv: Path, interpreter: str) -> None:
    """The venv's interpreter links and `home` name the base image's Python, not this machine's."""
    for link in (venv / "bin").iterdir():
        if link.is_symlink() and link.name.startswith("python"):
            link.unlink()
            link.symlink_to(interpreter)
    config = venv / "pyvenv.cfg"
    lines = config.read_text().splitlines()
    home = str(Path(interpreter).parent)
    config.write_text("\n".join(f"home = {home}" if ln.startswith("home ") else ln for ln in lines) + "\n")


def _uv() -> str:
    """The uv installed beside this Python (a dependency of this package), else the one on PATH."""
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        raise ImageError("uv is not installed here: it builds project environments (pip install uv)")
    return found


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "UV_NO_CONFIG": "1"})
    if done.returncode != 0:
        raise ImageError(f"could not {what} for the project image: {done.stderr.strip()[-2000:]}")
