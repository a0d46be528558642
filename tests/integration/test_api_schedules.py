"""/api/v1/schedules against a real `concurrent server` and a real MLflow server.

The end-to-end test is a micro-batch: an `incremental: true` source over a directory, a schedule ticking
every 5 seconds (the sixth cron field is seconds), files added between runs; the second run must process
only the new files, and its window must start where the first one's ended. The rest covers how bad
requests are refused (problem+json) and which roles may do what (a second server, with auth on).

Schedules that could fire are deleted (or created paused) before each test ends, so no run starts behind
the other tests' backs on the shared module server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from mlflow.tracking import MlflowClient

from concurrent_mlflow.store import access, open_store
from tests.fixtures.control_plane import ControlPlane, started
from tests.fixtures.mlflow_server import MlflowServer
from tests.integration.conftest import TOOLBOX, make_files

pytestmark = pytest.mark.integration

PROBLEM_TYPE = "https://concurrent-mlflow.invalid/problems/"
EVERY_5_SECONDS = "* * * * * */5"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def plane(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One server (SQLite store, auth off on loopback) for the module."""
    with started(ControlPlane.under(tmp_path_factory.mktemp("api-schedules"), mlflow_server.url)) as plane:
        yield plane


@pytest.fixture
def api(plane: ControlPlane) -> Iterator[httpx.Client]:
    with plane.client() as client:
        yield client


def dag_yaml(name: str, inbox: Path | str = "data") -> str:
    return f"""
name: {name}
nodes:
  - {{id: raw, kind: source, uri: "{inbox}", incremental: true}}
  - {{id: upper, kind: project, project: "{TOOLBOX}", entry_point: transform, partitions: 2, retries: 0}}
  - {{id: total, kind: project, project: "{TOOLBOX}", entry_point: count}}
edges:
  - {{from: raw, to: upper, input: text, partitioner: file}}
  - {{from: upper, to: total, input: upper, partitioner: gather}}
"""


def create_dag(api: httpx.Client, name: str, inbox: Path | str = "data") -> None:
    response = api.post("/dags", json={"yaml": dag_yaml(name, inbox)})
    assert response.status_code == 201, response.text


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"] == PROBLEM_TYPE + slug, body
    return body


def moment(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is not None, f"{text!r} has no UTC offset"
    return parsed


def scheduled_runs(api: httpx.Client, schedule_id: int) -> list[dict[str, Any]]:
    """The runs a schedule started, oldest first."""
    page = api.get("/runs", params={"schedule": schedule_id, "limit": 500}).raise_for_status().json()
    return list(reversed(page["items"]))


def wait_for_runs(
    api: httpx.Client, schedule_id: int, count: int, timeout: float = 60.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len(runs := scheduled_runs(api, schedule_id)) < count:
        assert time.monotonic() < deadline, f"schedule {schedule_id} started {len(runs)} run(s), not {count}"
        time.sleep(0.2)
    return runs


def fan_in_summary(plane: ControlPlane, run: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """What the fan-in task received, from its child run's artifact in MLflow."""
    client = MlflowClient(plane.tracking_uri)
    query = f"tags.`mlflow.parentRunId` = '{run['mlflow_run_id']}' and tags.`concurrent.node` = 'total'"
    (total,) = client.search_runs([run["experiment_id"]], query)
    path = client.download_artifacts(total.info.run_id, "outputs/summary.json", str(tmp))
    summary: dict[str, Any] = json.loads(Path(path).read_text())
    return summary


def upper_files(plane: ControlPlane, run: dict[str, Any]) -> float:
    """Files the fan-out tasks processed, summed over their child runs' `files` metric."""
    client = MlflowClient(plane.tracking_uri)
    query = f"tags.`mlflow.parentRunId` = '{run['mlflow_run_id']}' and tags.`concurrent.node` = 'upper'"
    return sum(r.data.metrics.get("files", 0.0) for r in client.search_runs([run["experiment_id"]], query))


def received(summary: dict[str, Any]) -> list[str]:
    return sorted(path.split("/", 1)[1] for path in summary["inputs"]["upper"])


def test_each_scheduled_run_processes_only_the_files_that_arrived_in_its_window(
    plane: ControlPlane, api: httpx.Client, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    make_files(inbox, {"a1.txt": "alpha one\n", "a2.txt": "alpha two\n"})
    create_dag(api, "micro", inbox)
    created = api.post("/schedules", json={"dag": "micro", "cron": EVERY_5_SECONDS})
    assert created.status_code == 201, created.text
    schedule = created.json()
    sid = schedule["id"]
    assert (schedule["overlap"], schedule["missed_ticks"], schedule["enabled"]) == ("skip", "coalesce", True)
    assert moment(schedule["next_fire_at"]) > moment(schedule["created_at"])
    try:
        (first,) = wait_for_runs(api, sid, 1)
        # Paused while the first run goes, so no tick fires between it and the files added below.
        assert api.patch(f"/schedules/{sid}", json={"enabled": False}).json()["next_fire_at"] is None
        first = plane.wait_for_run(first["id"])
        assert first["state"] == "succeeded", first
        assert first["schedule_id"] == sid and first["dag_version"] == 1
        assert moment(first["window_start"]) == EPOCH  # the first run takes everything already there
        # The first tick; a later one only if an engine pass overran a tick (missed ticks coalesce).
        assert moment(first["window_end"]) >= moment(schedule["next_fire_at"])

        make_files(inbox, {"b1.txt": "beta one\n", "b2.txt": "beta two\n", "b3.txt": "beta three\n"})
        resumed = api.patch(f"/schedules/{sid}", json={"enabled": True}).json()
        assert resumed["enabled"] and moment(resumed["next_fire_at"]) > moment(first["window_end"])
        first_again, second = wait_for_runs(api, sid, 2)
        assert first_again["id"] == first["id"]
        second = plane.wait_for_run(second["id"])
        assert second["state"] == "succeeded", second
    finally:
        assert api.delete(f"/schedules/{sid}").status_code == 204

    assert moment(second["window_start"]) == moment(first["window_end"])  # the windows chain
    assert moment(second["window_end"]) >= moment(resumed["next_fire_at"])
    assert received(fan_in_summary(plane, first, tmp_path / "s1")) == ["text/a1.txt.out", "text/a2.txt.out"]
    assert received(fan_in_summary(plane, second, tmp_path / "s2")) == [
        "text/b1.txt.out",
        "text/b2.txt.out",
        "text/b3.txt.out",
    ]
    assert (upper_files(plane, first), upper_files(plane, second)) == (2.0, 3.0)
    # The runs stay after their schedule is deleted; they just no longer name it.
    assert api.get(f"/runs/{second['id']}").json()["schedule_id"] is None


def test_a_schedule_is_listed_changed_and_deleted(api: httpx.Client) -> None:
    create_dag(api, "listed")
    ids = []
    for cron in ("0 * * * *", "30 2 * * 1", "*/10 * * * *"):
        body = {"dag": "listed", "cron": cron, "enabled": False, "overrides": {"upper.suffix": ".txt"}}
        response = api.post("/schedules", json=body)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])

    first_page = api.get("/schedules", params={"dag": "listed", "limit": 2}).json()
    assert (first_page["total"], first_page["next_offset"]) == (3, 2)
    last_page = api.get("/schedules", params={"dag": "listed", "offset": 2}).json()
    assert [s["id"] for s in first_page["items"] + last_page["items"]] == ids
    assert last_page["next_offset"] is None
    assert all(s["next_fire_at"] is None and s["last_run_id"] is None for s in last_page["items"])

    changed = api.patch(
        f"/schedules/{ids[0]}",
        json={"cron": "15 9 * * *", "timezone": "Europe/Paris", "overlap": "queue", "enabled": True},
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["cron"], body["timezone"], body["overlap"], body["enabled"]) == (
        "15 9 * * *",
        "Europe/Paris",
        "queue",
        True,
    )
    local = moment(body["next_fire_at"]).astimezone(ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute) == (9, 15)
    assert api.get(f"/schedules/{ids[0]}").json() == body
    assert api.patch(f"/schedules/{ids[0]}", json={"enabled": False}).json()["next_fire_at"] is None

    for sid in ids:
        assert api.delete(f"/schedules/{sid}").status_code == 204
    assert_problem(api.get(f"/schedules/{ids[0]}"), 404, "not-found")
    assert_problem(api.delete(f"/schedules/{ids[0]}"), 404, "not-found")
    assert api.get("/schedules", params={"dag": "listed"}).json()["total"] == 0


def test_bad_requests_are_refused_with_a_problem_naming_the_field(api: httpx.Client) -> None:
    create_dag(api, "picky")

    def post(**fields: Any) -> httpx.Response:
        return api.post("/schedules", json={"dag": "picky", "cron": "0 * * * *", **fields})

    body = assert_problem(post(cron="every day"), 422, "invalid-schedule")
    assert body["errors"][0]["location"] == "cron" and "field" in body["errors"][0]["message"]
    assert_problem(post(cron="0 0 31 2 *"), 422, "invalid-schedule")  # never fires
    body = assert_problem(post(timezone="Mars/Olympus"), 422, "invalid-schedule")
    assert body["errors"][0]["location"] == "timezone"
    body = assert_problem(post(overrides={"nope.alpha": "1"}), 422, "invalid-dag")
    assert "no node 'nope'" in body["detail"]
    assert_problem(post(overrides={"upper.nope": "1"}), 422, "invalid-dag")
    assert_problem(post(overlap="sometimes"), 422, "invalid-request")
    assert_problem(post(extra="field"), 422, "invalid-request")
    assert_problem(post(dag="no-such-dag"), 404, "not-found")
    assert_problem(api.get("/schedules/0"), 422, "invalid-request")
    assert_problem(api.get("/schedules/987654"), 404, "not-found")
    assert_problem(api.patch("/schedules/987654", json={"enabled": False}), 404, "not-found")
    assert api.get("/schedules", params={"dag": "picky"}).json()["total"] == 0  # nothing was stored

    created = post(enabled=False).json()
    before = api.get(f"/schedules/{created['id']}").json()
    assert_problem(api.patch(f"/schedules/{created['id']}", json={"cron": "* *"}), 422, "invalid-schedule")
    assert_problem(
        api.patch(f"/schedules/{created['id']}", json={"timezone": "Nowhere"}), 422, "invalid-schedule"
    )
    bad = api.patch(f"/schedules/{created['id']}", json={"overrides": {"upper.nope": "1"}})
    assert_problem(bad, 422, "invalid-dag")
    assert api.get(f"/schedules/{created['id']}").json() == before  # a refused change changes nothing
    api.delete(f"/schedules/{created['id']}").raise_for_status()


def test_editors_manage_schedules_and_readers_only_see_them(
    mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("api-schedules-auth")
    roots = ["--allow-local-root", str(root), "--allow-local-root", str(TOOLBOX)]
    plane = ControlPlane.under(root, mlflow_server.url, "--auth", *roots, "--allow-local-execution")
    try:
        plane.start()
        store = open_store(plane.store_url)
        tokens = {
            user: access.create_token(store, user, "test")
            for user in ("alice", "bob", "carol", "dave", "erin")
        }
        store.close()
        with plane.client(tokens["alice"]) as alice:
            create_dag(alice, "team")
            for user, role in (("carol", "reader"), ("dave", "runner"), ("erin", "editor")):
                alice.put(f"/dags/team/grants/{user}", json={"role": role}).raise_for_status()
            owned = alice.post("/schedules", json={"dag": "team", "cron": "0 3 * * *", "enabled": False})
            assert owned.status_code == 201, owned.text
            sid = owned.json()["id"]
            assert owned.json()["created_by"] == "alice"

        new = {"dag": "team", "cron": "0 4 * * *", "enabled": False}
        with plane.client(tokens["carol"]) as carol, plane.client(tokens["dave"]) as dave:
            assert carol.get(f"/schedules/{sid}").json()["dag"] == "team"
            assert [s["id"] for s in carol.get("/schedules").json()["items"]] == [sid]
            for client, user, role in ((carol, "carol", "reader"), (dave, "dave", "runner")):
                for response in (
                    client.post("/schedules", json=new),
                    client.patch(f"/schedules/{sid}", json={"enabled": True}),
                    client.delete(f"/schedules/{sid}"),
                ):
                    body = assert_problem(response, 403, "forbidden")
                    assert f"{user} is {role}" in body["detail"] and "needs editor" in body["detail"]

        with plane.client(tokens["bob"]) as bob:  # no role: the schedule is as unknown as a missing one
            assert bob.get("/schedules").json()["total"] == 0
            hidden = assert_problem(bob.get(f"/schedules/{sid}"), 404, "not-found")
            missing = assert_problem(bob.get("/schedules/987654"), 404, "not-found")
            hidden_text = hidden["detail"].replace(f"schedule {sid};", "schedule #;")
            assert hidden_text == missing["detail"].replace("schedule 987654;", "schedule #;")
            assert_problem(bob.delete(f"/schedules/{sid}"), 404, "not-found")
            assert_problem(bob.post("/schedules", json=new), 404, "not-found")

        with plane.client(tokens["erin"]) as erin:
            made = erin.post("/schedules", json=new)
            assert made.status_code == 201 and made.json()["created_by"] == "erin"
            assert erin.patch(f"/schedules/{sid}", json={"overlap": "queue"}).json()["overlap"] == "queue"
            assert erin.delete(f"/schedules/{sid}").status_code == 204
            assert erin.delete(f"/schedules/{made.json()['id']}").status_code == 204
        with plane.client() as anonymous:
            assert_problem(anonymous.get("/schedules"), 401, "unauthenticated")
    finally:
        plane.stop()
