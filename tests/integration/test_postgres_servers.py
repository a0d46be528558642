"""Two `concurrent server` processes on one PostgreSQL store: both serve the API, exactly one drives the
engine, and when that one is killed (-9) the other takes the lease over and finishes the run."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient

from tests.fixtures.control_plane import ControlPlane, MakeControlPlane
from tests.integration.conftest import fan_in_dag, make_files

pytestmark = pytest.mark.integration

LEASE_SECONDS = 3
PARTITIONS = 4


def leader_of(*planes: ControlPlane) -> tuple[ControlPlane, ControlPlane]:
    """(leader, follower) once both servers agree on which of them holds the engine lease."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        health = [httpx.get(f"{p.url}/api/v1/health", timeout=5).json() for p in planes]
        ids = [h["this_server"] for h in health]
        leaders = {h["leader"] for h in health}
        if len(leaders) == 1 and (leader := leaders.pop()) in ids:
            index = ids.index(leader)
            return planes[index], planes[1 - index]
        time.sleep(0.3)
    raise AssertionError(f"the servers did not agree on a leader: {health}")


def finished_children(plane: ControlPlane, run: dict[str, object]) -> dict[tuple[str, int], int]:
    client = MlflowClient(plane.tracking_uri)
    query = f"tags.`mlflow.parentRunId` = '{run['mlflow_run_id']}'"
    counts: dict[tuple[str, int], int] = {}
    for child in client.search_runs([str(run["experiment_id"])], query, max_results=1000):
        assert child.info.status != "RUNNING", child.info.run_id
        if child.info.status == "FINISHED":
            key = (child.data.tags["concurrent.node"], int(child.data.tags["concurrent.partition"]))
            counts[key] = counts.get(key, 0) + 1
    return counts


def test_two_servers_share_a_store_and_the_survivor_finishes_the_leaders_run(
    make_control_plane: MakeControlPlane, postgres_url: str, tmp_path: Path
) -> None:
    args = ["--lease-seconds", str(LEASE_SECONDS), "--max-parallel", "2"]
    first = make_control_plane(store_url=postgres_url, args=args)
    second = make_control_plane(store_url=postgres_url, args=args)
    first.start(), second.start()
    make_files(tmp_path / "data", {f"f{i}.txt": f"word{i}\n" for i in range(PARTITIONS)})
    leader, follower = leader_of(first, second)

    # Written through one server, read through the other: they share one store.
    with follower.client() as api:
        api.post(
            "/dags", json={"yaml": fan_in_dag("shared", PARTITIONS, retries=None, sleep=0)}
        ).raise_for_status()
        quick = api.post("/runs", json={"dag": "shared"}).raise_for_status().json()
    done = leader.wait_for_run(quick["id"])
    assert done["state"] == "succeeded", (done, leader.logs(), follower.logs())
    assert leader_of(first, second) == (leader, follower)  # the lease stayed put while its holder lived

    with leader.client() as api:
        api.put(
            "/dags/shared", json={"yaml": fan_in_dag("shared", PARTITIONS, retries=None, sleep=3)}
        ).raise_for_status()
        slow = api.post("/runs", json={"dag": "shared"}).raise_for_status().json()
        deadline = time.monotonic() + 120
        while api.get(f"/runs/{slow['id']}/tasks", params={"state": "succeeded"}).json()["total"] < 1:
            assert time.monotonic() < deadline, leader.logs()
            time.sleep(0.3)
    leader.kill()  # mid-run: some partitions done, some running, some not started

    done = follower.wait_for_run(slow["id"], timeout=300)
    assert done["state"] == "succeeded", (done, follower.logs())
    health = httpx.get(f"{follower.url}/api/v1/health").json()
    assert health["leader"] == health["this_server"]
    assert finished_children(follower, done) == {
        ("total", 0): 1,
        **{("upper", p): 1 for p in range(PARTITIONS)},
    }
    assert done["dag_version"] == 2
