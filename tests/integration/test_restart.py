"""kill -9 the control plane at random moments of a run of a few hundred partitions; the run still completes.

After every kill the server starts again on the same store. Asserted on what MLflow holds at the end: each
partition has exactly one FINISHED child run, no child run is left RUNNING, and the fan-in task received
every output exactly once (none lost, none logged twice).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from concurrent_mlflow.executors import forkserver
from tests.fixtures.control_plane import ControlPlane, MakeControlPlane
from tests.integration.conftest import TOOLBOX, make_files

pytestmark = pytest.mark.integration

PARTITIONS = int(os.environ.get("CONCURRENT_RESTART_PARTITIONS", "200"))
MIN_KILLS = int(os.environ.get("CONCURRENT_RESTART_KILLS", "8"))
SEED = int(os.environ.get("CONCURRENT_RESTART_SEED", str(random.SystemRandom().randrange(1 << 30))))

DAG = f"""
name: restart
nodes:
  - {{id: raw, kind: source, uri: data}}
  - id: upper
    kind: project
    project: "{TOOLBOX}"
    entry_point: transform
    partitions: {PARTITIONS}
    parameters: {{metric: "no"}}  # the server's crashes are under test, not MLflow's import in 200 tasks
  - {{id: total, kind: project, project: "{TOOLBOX}", entry_point: count}}
edges:
  - {{from: raw, to: upper, input: text, partitioner: file}}
  - {{from: upper, to: total, input: upper, partitioner: gather}}
"""


def run_state(plane: ControlPlane, run_id: str) -> str:
    with plane.client() as api:
        state: str = api.get(f"/runs/{run_id}").raise_for_status().json()["state"]
        return state


def kill_and_restart_until_done(plane: ControlPlane, run_id: str, rng: random.Random) -> int:
    kills, deadline = 0, time.monotonic() + 40 * 60
    while run_state(plane, run_id) not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"the run did not end; server logs:\n{plane.logs()}"
        # Early kills land in planning and the first dispatches; later ones anywhere in the fan-out.
        time.sleep(rng.uniform(0.0, 2.0) if kills < 3 else rng.uniform(1.0, 25.0))
        plane.kill()
        kills += 1
        time.sleep(rng.uniform(0.0, 3.0))  # tasks keep running (and may finish) while no server is up
        plane.start()
        if kills >= MIN_KILLS:
            break
    return kills


@pytest.mark.timeout(45 * 60)
def test_a_run_survives_repeated_kill_9_of_the_server(
    make_control_plane: MakeControlPlane, tmp_path: Path
) -> None:
    print(f"seed {SEED} (CONCURRENT_RESTART_SEED to repeat), {PARTITIONS} partitions")
    rng = random.Random(SEED)
    plane = make_control_plane(args=["--max-parallel", "4"]).start()
    names = [f"f{i:04d}.txt" for i in range(PARTITIONS * 2)]
    make_files(plane.work_dir / "data", {name: f"w{i % 5} {name}\n" for i, name in enumerate(names)})
    with plane.client() as api:
        api.post("/dags", json={"yaml": DAG}).raise_for_status()
        run: dict[str, Any] = (
            api.post("/runs", json={"dag": "restart", "base_dir": str(plane.work_dir)})
            .raise_for_status()
            .json()
        )

    kills = kill_and_restart_until_done(plane, run["id"], rng)
    done = plane.wait_for_run(run["id"], timeout=40 * 60)

    assert kills >= 3, "the run ended before the server was killed enough times to mean anything"
    assert done["state"] == "succeeded", (done, plane.logs())
    assert {s["node"]: s["counts"] for s in done["stages"]} == {
        "raw": {},
        "upper": {"succeeded": PARTITIONS},
        "total": {"succeeded": 1},
    }
    client = MlflowClient(plane.tracking_uri)
    query = f"tags.`mlflow.parentRunId` = '{done['mlflow_run_id']}'"
    children = list(client.search_runs([done["experiment_id"]], query, max_results=10_000))
    finished: dict[tuple[str, int], list[str]] = {}
    for child in children:
        assert child.info.status != "RUNNING", f"child run {child.info.run_id} was left RUNNING"
        if child.info.status == "FINISHED":
            key = (child.data.tags["concurrent.node"], int(child.data.tags["concurrent.partition"]))
            finished.setdefault(key, []).append(child.info.run_id)
    assert sorted(finished) == [("total", 0)] + [("upper", p) for p in range(PARTITIONS)]
    assert all(len(runs) == 1 for runs in finished.values()), {
        k: v for k, v in finished.items() if len(v) > 1
    }

    (total,) = finished[("total", 0)]
    summary_path = client.download_artifacts(total, "outputs/summary.json", str(tmp_path / "dl"))
    summary = json.loads(Path(summary_path).read_text())
    received = sorted(path.split("/", 1)[1] for path in summary["inputs"]["upper"])
    assert received == sorted(
        f"text/{name}.out" for name in names
    )  # every output once: none lost, none twice
    assert client.get_run(done["mlflow_run_id"]).info.status == "FINISHED"
    pid_files = list((plane.home / "logs" / run["id"]).rglob("*.pid"))
    assert len(pid_files) >= PARTITIONS + 1, "every forked worker leaves a pid file"
    leftover = [
        record
        for pid_file in pid_files
        if (record := forkserver.read_pid_file(pid_file.with_suffix(""))) and forkserver.running(*record)
    ]
    assert not leftover, f"worker processes outlived the run: {leftover}"
    print(f"{kills} kills; {len(children)} child runs for {PARTITIONS + 1} tasks")
