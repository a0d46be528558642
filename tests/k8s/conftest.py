"""The real Kubernetes control plane of scripts/k8s-testbed, started once for the k8s tests.

`make test` builds the testbed's binaries first (`scripts/k8s-testbed build`), so starting one here takes
seconds. Where Go or the build is unavailable the k8s tests are skipped with a loud reason, except under
CI (`CI=true`), where that is an error: CI must run them.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.k8s.kubelet import Kubelet

ROOT = Path(__file__).resolve().parents[2]
TESTBED = ROOT / "scripts" / "k8s-testbed"
NAMESPACE = "concurrent"


@dataclass(frozen=True)
class Testbed:
    __test__ = False  # not a test class, despite the name

    name: str
    port: int
    state: Path

    @property
    def admin_kubeconfig(self) -> Path:
        return self.state / "admin.kubeconfig"

    @property
    def tenant_kubeconfig(self) -> Path:
        return self.state / "tenant.kubeconfig"

    def kubeconfig_text(self, user: str = "admin") -> str:
        return (self.state / f"{user}.kubeconfig").read_text()

    def kubeconfig_document(self, user: str = "admin") -> dict[str, object]:
        document: dict[str, object] = yaml.safe_load(self.kubeconfig_text(user))
        return document

    def restart_apiserver(self) -> None:
        _testbed("restart-apiserver", "--name", self.name)


def _testbed(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(TESTBED), *args], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"k8s-testbed {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _start(name: str) -> Iterator[Testbed]:
    """Start a testbed on free ports; a port taken between the probe and the start (another process's)
    gets the half-started testbed taken down and another try on other ports."""
    for attempt in range(3):
        port = _free_base_port()
        try:
            _testbed("up", "--name", name, "--port", str(port), "--nodes", "2")
            break
        except (RuntimeError, OSError) as exc:
            with contextlib.suppress(RuntimeError, OSError):
                _testbed("down", "--name", name)
            if attempt == 2:
                message = f"KUBERNETES TESTS NOT RUN: the testbed did not start: {exc}"
                if os.environ.get("CI"):
                    pytest.fail(message + " (CI must run them)")
                pytest.skip(message)
    state = Path(json.loads(_testbed("env", "--name", name, "--json").stdout)["state"])
    try:
        yield Testbed(name, port, state)
    finally:
        _testbed("down", "--name", name)


def _free_base_port() -> int:
    """A base port P with P..P+6 free on loopback (the testbed's components and its token webhook)."""
    for _ in range(100):
        base = random.randrange(20000, 60000, 10)
        try:
            for port in range(base, base + 7):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no seven free ports in a row")


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    yield from _start(f"pytest-{os.getpid()}-a")


@pytest.fixture(scope="session")
def second_testbed() -> Iterator[Testbed]:
    """An independent second cluster (its own etcd, API server, controllers and nodes)."""
    yield from _start(f"pytest-{os.getpid()}-b")


def cluster_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`concurrent cluster ARGS` as a user runs it, on the data dir `home`."""
    env = {**os.environ, "CONCURRENT_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "concurrent_mlflow.cli", "cluster", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def python_on_path() -> str:
    """The PATH the harness gives pods: this interpreter's bin dir first, so `python` is ours."""
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


# The integration suite's DAG runner, for DAGs whose nodes run on the testbed.
from tests.integration.conftest import run_dag  # noqa: E402, F401


@pytest.fixture
def kubelet(testbed: Testbed, tmp_path: Path) -> Iterator[Kubelet]:
    """The stand-in kubelet on the session's testbed: pods scheduled to its node run as local processes."""
    overrides = {
        "PATH": python_on_path(),
        "CONCURRENT_SCRATCH": str(tmp_path / "pod-scratch"),
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "MLFLOW_ENV_ROOT": str(tmp_path / "envs"),
        "CONCURRENT_CACHE": str(tmp_path / "pod-cache"),
    }
    with Kubelet(testbed.admin_kubeconfig, tmp_path / "kubelet", overrides=overrides) as running:
        yield running
