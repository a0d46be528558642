"""Contender environments for `make bench`: each heavy contender in a virtualenv of its own.

Prefect and PySpark are never in the project's lock (nor installed by `make test`): `ensure` makes a venv
under the bench's work dir with uv, from the pins below, and reuses it while the pins are unchanged. The
Spark env gets this environment's MLflow, scikit-learn, pandas and pyarrow versions, so `spark_udf` loads
the very model the other contenders score with.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

PREFECT = "prefect==3.9.1"
PYSPARK = "pyspark==4.3.0"


def requirements(name: str) -> list[str]:
    """The pinned requirements of the contender env `name` (`prefect` or `spark`)."""
    same = [f"{package}=={version(package)}" for package in ("mlflow", "scikit-learn", "pandas", "pyarrow")]
    pins = {"prefect": [PREFECT], "spark": [PYSPARK, *same]}
    if name not in pins:
        raise ValueError(f"unknown contender env {name!r}; use one of: {', '.join(pins)}")
    return pins[name]


def ensure(name: str, workdir: Path) -> Path:
    """The Python of the contender env `name` under `workdir/envs`, made (or remade) if its pins changed."""
    wanted = requirements(name)
    root = workdir / "envs" / name
    python = root / "bin" / "python"
    stamp = root / ".pins"
    digest = hashlib.sha256("\n".join(wanted).encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    shutil.rmtree(root, ignore_errors=True)
    uv = _uv()
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(root)], check=True)
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(python), *wanted], check=True)
    stamp.write_text(digest)
    return python


def _uv() -> str:
    """uv as `make` installs it (.tools/bin/uv), else the one on PATH, else the project env's own."""
    for candidate in (
        Path(__file__).resolve().parent.parent / ".tools" / "bin" / "uv",
        Path(shutil.which("uv") or ""),
        Path(sys.executable).parent / "uv",
    ):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise RuntimeError("uv not found: run `make install-dev` first")
