"""Planning off the engine's loop: a slow or hung plan delays no other run, a cancel ends it at once, and a
large plan is stored in a few files, not one per partition."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import s3fs  # type: ignore[import-untyped]
from mlflow.tracking import MlflowClient

from concurrent_mlflow.dag import parse_dag
from concurrent_mlflow.engine import reads
from concurrent_mlflow.engine.plan_files import PlanFiles
from concurrent_mlflow.errors import PlanStopped
from concurrent_mlflow.manifest import InputItem, Manifest, ProjectSpec
from concurrent_mlflow.runner import open_engine
from concurrent_mlflow.settings import Paths
from concurrent_mlflow.store import transitions as tx
from concurrent_mlflow.store.queries import run_view
from concurrent_mlflow.taskfile import TaskFile
from concurrent_mlflow.tracking import Tracking
from tests.fixtures.mlflow_server import MlflowServer
from tests.integration.conftest import TOOLBOX, fan_in_dag, make_files

pytestmark = pytest.mark.integration

HUNG_SOURCE = f"""
name: hung
nodes:
  - {{id: remote, kind: source, uri: "s3://bucket/prefix/"}}
  - {{id: use, kind: project, project: "{TOOLBOX}", entry_point: count}}
edges:
  - {{from: remote, to: use, input: rows, partitioner: gather}}
"""


@pytest.fixture
def hung_s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """An S3 endpoint that accepts connections and never answers: a listing against it hangs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)  # connections complete in the kernel's backlog; nothing ever reads them
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{sock.getsockname()[1]}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
        s3fs.S3FileSystem.clear_instance_cache()  # fsspec keeps filesystems made for other endpoints
        yield
    s3fs.S3FileSystem.clear_instance_cache()  # closing the socket resets the hung listing


def _wait(what: str, check: Callable[[], bool], seconds: float = 300.0) -> None:
    """A liveness bound, not a speed check: the old engine never got here at all."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.2)


def test_a_hung_plan_delays_no_other_run_and_a_cancel_ends_it_while_planning(
    tracking_env: Path, mlflow_server: MlflowServer, hung_s3: None, tmp_path: Path
) -> None:
    paths = Paths(tracking_env)
    engine, store = open_engine(paths, mlflow_server.url, max_parallel=2)
    hung_dir, quick_dir = tmp_path / "hung", tmp_path / "quick"
    make_files(quick_dir / "data", {f"f{i}.txt": f"word{i} body\n" for i in range(4)})
    # The hung run is the older one, so a pass over the runs (the server's loop) reaches it first.
    hung = engine.create_run(parse_dag(HUNG_SOURCE), base_dir=hung_dir, overrides={})
    quick = engine.create_run(parse_dag(fan_in_dag("quick", 2)), base_dir=quick_dir, overrides={})

    def tx_state(run_id: str) -> str:
        return reads.run(store, run_id).state

    stop = threading.Event()

    def serve() -> None:  # what `concurrent server`'s loop does
        while not stop.is_set():
            engine.tick_all()
            stop.wait(0.1)

    driver = threading.Thread(target=serve, daemon=True)
    driver.start()
    try:
        _wait("the quick run ended", lambda: tx_state(quick) in ("succeeded", "failed"))
        assert tx_state(quick) == "succeeded"
        hung_view = run_view(store, hung)
        assert hung_view is not None and hung_view.state == "running"
        assert {s.node_id: s.state for s in hung_view.stages} == {"remote": "pending", "use": "pending"}
        assert engine.planning.planner.planning(hung) == ["remote"]  # still listing the hung endpoint

        tx.request_cancel(store, hung, "cancelled by the test")
        _wait("the hung run was cancelled", lambda: tx_state(hung) == "cancelled", seconds=60)
    finally:
        stop.set()
        driver.join(timeout=60)
    ended = run_view(store, hung)
    assert ended is not None
    assert {s.state for s in ended.stages} == {"cancelled"}
    assert ended.mlflow_run_id is not None
    assert MlflowClient(mlflow_server.url).get_run(ended.mlflow_run_id).info.status == "KILLED"
    assert engine.planning.planner.planning(hung) == []  # the plan's result is dropped, not recorded later
    engine.close()


SPEC = ProjectSpec(
    project="/p", commit=None, base_dir="/", entry_point="main", parameters={}, env_manager="local"
)


def _manifests(count: int) -> list[Manifest]:
    return [
        Manifest(
            node="big",
            partition=i,
            partitions=count,
            inputs={"rows": [InputItem(uri=f"s3://b/k/{i}.csv", relpath=f"{i}.csv", size=i)]},
            parameters={"alpha": str(i % 7)},
        )
        for i in range(count)
    ]


def test_a_large_plan_is_stored_in_a_few_files_and_every_partition_reads_its_own(
    mlflow_server: MlflowServer,
) -> None:
    tracking = Tracking(mlflow_server.url)
    parent = MlflowClient(mlflow_server.url).create_run(tracking.experiment_id("plans")).info.run_id
    manifests = _manifests(20_000)

    tracking.log_plan(parent, "big", SPEC, manifests)

    stored = MlflowClient(mlflow_server.url).list_artifacts(parent, "plan/big/manifests")
    assert 1 <= len(stored) <= 10, [a.path for a in stored]  # not 20,000 uploads
    spec = tracking.read_spec(parent, "big")
    for partition in (0, 1, 9_999, 19_999):
        assert tracking.read_manifest(parent, "big", partition, spec) == manifests[partition]


def test_the_engines_copy_of_a_plan_hands_out_what_the_parent_run_holds_and_refills_from_it(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    tracking = Tracking(mlflow_server.url)
    experiment = tracking.experiment_id("plans")
    parent = MlflowClient(mlflow_server.url).create_run(experiment).info.run_id
    plans = PlanFiles(tmp_path / "plans", tracking)
    manifests = _manifests(3)
    plans.store("r1", parent, "n", SPEC, manifests, lambda: False)

    spec, manifest = plans.task("r1", parent, "n", 2)
    assert spec == tracking.read_spec(parent, "n") and spec.manifests_per_file  # how the plan packs them
    assert manifest == manifests[2] == tracking.read_manifest(parent, "n", 2, tracking.read_spec(parent, "n"))
    plans.forget("r1")  # as when the run ended, before a `run retry`
    assert not (tmp_path / "plans" / "r1").exists()
    assert plans.task("r1", parent, "n", 1)[1] == manifests[1]  # downloaded from the parent run, kept
    assert (tmp_path / "plans" / "r1" / "plan" / "n" / "spec.json").exists()
    handed = TaskFile(spec, manifest, experiment, "mlflow-artifacts:/1/abc/artifacts")
    assert TaskFile.loads(handed.dumps()) == handed


def test_a_stopped_plan_uploads_nothing_and_leaves_no_temporary_files(mlflow_server: MlflowServer) -> None:
    tracking = Tracking(mlflow_server.url)
    parent = MlflowClient(mlflow_server.url).create_run(tracking.experiment_id("plans")).info.run_id
    before = set(Path(tempfile.gettempdir()).glob("concurrent-plan-*"))
    asked: list[int] = []

    def stop_on_second_file() -> bool:
        asked.append(1)
        return len(asked) > 1

    with pytest.raises(PlanStopped):
        tracking.log_plan(parent, "big", SPEC, _manifests(20_000), stop_on_second_file)

    assert set(Path(tempfile.gettempdir()).glob("concurrent-plan-*")) == before
    assert MlflowClient(mlflow_server.url).list_artifacts(parent, "plan") == []
