"""The embedded MLflow tracking server used when no `MLFLOW_TRACKING_URI` is configured.

Parallel tasks must not share one SQLite file directly, so we run a real `mlflow server` on loopback with a
SQLite backend under the data dir, as one process (mlflow_server.py). Artifacts go straight to a local
directory (`--no-serve-artifacts`), so tasks hard-link inputs instead of downloading them. The server is
left running after a command so the printed MLflow URLs keep working; `concurrent mlflow stop` stops it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from concurrent_mlflow.errors import TrackingError

START_TIMEOUT_SECONDS = 180.0


def tracking_uri(root: Path) -> str:
    """`MLFLOW_TRACKING_URI` if set, else the URL of the embedded server (started on first use)."""
    configured = os.environ.get("MLFLOW_TRACKING_URI")
    return configured if configured else ensure_server(root)


def server_url(root: Path) -> str | None:
    """The URL of the embedded server if it is up."""
    state = _read_state(root)
    if state and _healthy(state["url"]):
        return str(state["url"])
    return None


def ensure_server(root: Path) -> str:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "server.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two commands starting at once share one server
        url = server_url(root)
        return url if url else _start(root)


def stop_server(root: Path) -> bool:
    state = _read_state(root)
    if not state:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(int(str(state["pid"])), signal.SIGTERM)
    (root / "server.json").unlink(missing_ok=True)
    return True


def server_command(root: Path, port: int, *, proxy_artifacts: bool, workers: int = 1) -> list[str]:
    """`mlflow server` on loopback with a SQLite backend under `root`.

    proxy_artifacts=False: clients write artifacts straight into root/artifacts (fast, same machine only);
    True: artifacts go through the server (`mlflow-artifacts:/`), as with a remote tracking server.
    """
    artifacts = (
        ["--artifacts-destination", str(root / "artifacts"), "--serve-artifacts"]
        if proxy_artifacts
        else ["--default-artifact-root", str(root / "artifacts"), "--no-serve-artifacts"]
    )
    return [
        sys.executable,
        "-m",
        "concurrent_mlflow.mlflow_server",  # `mlflow server`, in one process (mlflow_server.py)
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        *artifacts,
    ]


def server_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for an `mlflow server` we start: MLflow's job runner off unless the user turned it on.

    With it on (MLflow's default) the server starts a job runner and its consumer processes, used only by
    MLflow's GenAI features: about 1.6 GB more memory and twice the CPU to start, measured on MLflow 3.17.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return env


def _start(root: Path) -> str:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    artifacts = root / "artifacts"
    artifacts.mkdir(exist_ok=True)
    argv = server_command(root, port, proxy_artifacts=False)
    with (root / "server.log").open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=server_env(),
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TrackingError(
                f"The local MLflow server exited with code {process.returncode}; see {root / 'server.log'}."
            )
        if _healthy(url):
            (root / "server.json").write_text(json.dumps({"pid": process.pid, "url": url}), encoding="utf-8")
            return url
        time.sleep(0.3)
    process.kill()
    raise TrackingError(
        f"The local MLflow server did not answer within {START_TIMEOUT_SECONDS:.0f}s; "
        f"see {root / 'server.log'}."
    )


def _read_state(root: Path) -> dict[str, object] | None:
    try:
        return dict(json.loads((root / "server.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def _healthy(url: object) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
