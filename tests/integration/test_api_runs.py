"""Runs through the REST API of a real `concurrent server`: start, watch per partition, logs, cancel, retry."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

from concurrent_mlflow.dag import parse_dag
from tests.fixtures.control_plane import ControlPlane
from tests.integration.conftest import fan_in_dag as dag_yaml
from tests.integration.conftest import make_files

pytestmark = pytest.mark.integration


def start(api: httpx.Client, plane: ControlPlane, yaml_text: str, **overrides: str) -> dict[str, Any]:
    name = yaml_text.split("name: ", 1)[1].split("\n", 1)[0]
    api.post("/dags", json={"yaml": yaml_text}).raise_for_status()
    response = api.post("/runs", json={"dag": name, "overrides": overrides, "base_dir": str(plane.work_dir)})
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    return run


def children(plane: ControlPlane, run: dict[str, Any], node: str) -> list[Any]:
    client = MlflowClient(plane.tracking_uri)
    query = f"tags.`mlflow.parentRunId` = '{run['mlflow_run_id']}' and tags.`concurrent.node` = '{node}'"
    return list(client.search_runs([run["experiment_id"]], query, max_results=5000))


def test_a_run_started_over_http_reports_every_node_and_partition(control_plane: ControlPlane) -> None:
    make_files(control_plane.work_dir / "data", {f"f{i}.txt": f"word{i} body\n" for i in range(6)})
    with control_plane.client() as api:
        run = start(api, control_plane, dag_yaml("api-fan", 3))
        assert run["state"] in ("pending", "running")
        assert run["dag_version"] == 1 and run["created_by"] == "local"

        done = control_plane.wait_for_run(run["id"])
        assert done["state"] == "succeeded", done
        stages = {s["node"]: s for s in done["stages"]}
        assert stages["upper"]["counts"] == {"succeeded": 3} and stages["upper"]["partitions"] == 3
        assert stages["total"]["counts"] == {"succeeded": 1}
        assert done["mlflow_url"].startswith(control_plane.tracking_uri)

        tasks = api.get(f"/runs/{run['id']}/tasks", params={"node": "upper"}).json()
        assert tasks["total"] == 3 and [t["partition"] for t in tasks["items"]] == [0, 1, 2]
        assert {t["state"] for t in tasks["items"]} == {"succeeded"}
        mlflow_children = {c.info.run_id: c for c in children(control_plane, done, "upper")}
        assert {t["mlflow_run_id"] for t in tasks["items"]} == set(mlflow_children)
        assert {c.info.status for c in mlflow_children.values()} == {"FINISHED"}

        log = api.get(f"/runs/{run['id']}/tasks/upper/1/log")
        assert log.status_code == 200 and "partition 1 of 3: 2 file(s)" in log.text
        local_logs = list((control_plane.home / "logs" / run["id"]).rglob("*.log"))
        for path in local_logs:
            path.unlink()  # cleaned up on this machine: the copy in the child run is read instead
        assert len(local_logs) == 4
        assert api.get(f"/runs/{run['id']}/tasks/upper/1/log").text == log.text

        listed = api.get("/runs", params={"dag": "api-fan"}).json()
        assert [r["id"] for r in listed["items"]] == [run["id"]]
        assert api.get("/dags").json()["items"][0]["last_run_state"] == "succeeded"

        child_urls = {t["mlflow_url"] for t in tasks["items"]}
        assert child_urls == {
            f"{control_plane.tracking_uri}/#/experiments/{done['experiment_id']}/runs/{c}"
            for c in mlflow_children
        }
        executed = api.get(f"/runs/{run['id']}/dag")
        assert parse_dag(executed.text) == parse_dag(dag_yaml("api-fan", 3))


def test_polling_with_the_etag_gets_304_until_the_run_changes(control_plane: ControlPlane) -> None:
    make_files(control_plane.work_dir / "data", {"a.txt": "a\n"})
    with control_plane.client() as api:
        run = start(api, control_plane, dag_yaml("api-etag", 1, sleep=3))
        while_running = {
            p: api.get(p).headers["etag"] for p in (f"/runs/{run['id']}", f"/runs/{run['id']}/tasks")
        }
        done = control_plane.wait_for_run(run["id"])
        assert done["state"] == "succeeded"
        for path, old_tag in while_running.items():
            changed = api.get(path, headers={"If-None-Match": old_tag})
            assert changed.status_code == 200 and changed.headers["etag"] != old_tag, path
            tag = changed.headers["etag"]
            unchanged = api.get(path, headers={"If-None-Match": tag})
            assert (
                unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["etag"] == tag
            )
            assert api.get(path, headers={"If-None-Match": '"stale"'}).json() == changed.json()
        assert api.get(f"/runs/{run['id']}").json()["state"] == "succeeded"
        other_page = api.get(
            f"/runs/{run['id']}/tasks", params={"state": "failed"}, headers={"If-None-Match": tag}
        )
        assert other_page.status_code == 200 and other_page.json()["total"] == 0


def test_following_a_running_task_log_streams_until_it_ends(control_plane: ControlPlane) -> None:
    make_files(control_plane.work_dir / "data", {"only.txt": "hello\n"})
    with control_plane.client(timeout=120) as api:
        run = start(api, control_plane, dag_yaml("api-follow", 1, sleep=4))
        deadline = time.monotonic() + 60
        while api.get(f"/runs/{run['id']}/tasks/upper/0/log").status_code == 404:
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.2)
        with api.stream("GET", f"/runs/{run['id']}/tasks/upper/0/log", params={"follow": "true"}) as stream:
            text = b"".join(stream.iter_bytes()).decode()
        # The stream ended on its own: the attempt has ended, and everything it printed arrived.
        tasks = api.get(f"/runs/{run['id']}/tasks", params={"node": "upper"}).json()["items"]
        assert tasks[0]["state"] == "succeeded"
        assert "partition 0 of 1: 1 file(s)" in text


def test_cancel_over_http_stops_tasks_and_marks_mlflow_runs_killed(control_plane: ControlPlane) -> None:
    make_files(control_plane.work_dir / "data", {f"f{i}.txt": "x\n" for i in range(4)})
    with control_plane.client() as api:
        run = start(api, control_plane, dag_yaml("api-cancel", 4, sleep=300))
        deadline = time.monotonic() + 90
        while not api.get(f"/runs/{run['id']}/tasks", params={"state": "running"}).json()["total"]:
            assert time.monotonic() < deadline, "no task started running"
            time.sleep(0.3)
        accepted = api.post(f"/runs/{run['id']}/cancel")
        assert accepted.status_code == 202
        done = control_plane.wait_for_run(run["id"], timeout=60)
        assert done["state"] == "cancelled" and done["error"] == "cancelled by local"
        assert {s["state"] for s in done["stages"] if s["node"] != "raw"} == {"cancelled"}
        statuses = {c.info.status for c in children(control_plane, done, "upper")}
        assert statuses == {"KILLED"}
        assert MlflowClient(control_plane.tracking_uri).get_run(done["mlflow_run_id"]).info.status == "KILLED"
        again = api.post(f"/runs/{run['id']}/cancel")
        assert again.status_code == 202 and again.json()["detail"] == "the run had already ended"


def test_retry_over_http_reruns_only_the_failed_partitions(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    make_files(control_plane.work_dir / "data", {f"f{i}.txt": f"w{i}\n" for i in range(4)})
    markers = tmp_path / "markers"
    markers.mkdir()
    (markers / "partition-0").write_text("already failed once")
    (markers / "partition-2").write_text("already failed once")
    with control_plane.client() as api:
        run = start(api, control_plane, dag_yaml("api-retry", 4, flaky_marker_dir=str(markers)))
        first = control_plane.wait_for_run(run["id"])
        assert first["state"] == "failed"
        assert "2 of 4 partition(s) failed" in first["error"]
        failed = api.get(f"/runs/{run['id']}/tasks", params={"state": "failed"}).json()["items"]
        assert [t["partition"] for t in failed] == [1, 3]
        log = api.get(f"/runs/{run['id']}/tasks/upper/1/log").text
        assert "flaky failure, first attempt" in log

        retried = api.post(f"/runs/{run['id']}/retry")
        # The two failed tasks; the skipped `total` never planned, so it has no tasks yet and plans again.
        assert retried.status_code == 200 and retried.json()["reset_tasks"] == 2
        second = control_plane.wait_for_run(run["id"])
        assert second["state"] == "succeeded", second
        upper = children(control_plane, second, "upper")
        attempts = sorted((int(c.data.tags["concurrent.partition"]), c.info.status) for c in upper)
        assert attempts == [
            (0, "FINISHED"),
            (1, "FAILED"),
            (1, "FINISHED"),
            (2, "FINISHED"),
            (3, "FAILED"),
            (3, "FINISHED"),
        ]


def test_starting_a_run_with_bad_input_is_refused_and_stores_nothing(control_plane: ControlPlane) -> None:
    with control_plane.client() as api:
        api.post("/dags", json={"yaml": dag_yaml("api-bad", 2)}).raise_for_status()
        unknown = api.post("/runs", json={"dag": "api-bad", "overrides": {"upper.nope": "1"}})
        assert unknown.status_code == 422
        assert unknown.headers["content-type"] == "application/problem+json"
        assert "nope" in unknown.json()["detail"]
        missing = api.post("/runs", json={"dag": "no-such-dag"})
        assert missing.status_code == 404 and "no-such-dag" in missing.json()["detail"]
        wrong_version = api.post("/runs", json={"dag": "api-bad", "version": 7})
        assert wrong_version.status_code == 404
        relative = api.post("/runs", json={"dag": "api-bad", "base_dir": "../../etc"})
        assert relative.status_code == 422 and relative.json()["errors"][0]["location"] == "base_dir"
        assert api.get("/runs").json()["total"] == 0
        assert api.get("/runs/0123456789ab").status_code == 404
