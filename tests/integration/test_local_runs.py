"""Real DAG runs on the local executor, asserted on what MLflow holds afterwards."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.integration.conftest import RunDag, make_files

pytestmark = pytest.mark.integration

FAN_OUT_FAN_IN = """
name: fan
nodes:
  - {id: raw, kind: source, uri: data}
  - id: upper
    kind: project
    project: "{toolbox}"
    entry_point: transform
    partitions: 4
    parallelism: 2
  - {id: total, kind: project, project: "{toolbox}", entry_point: count}
edges:
  - {from: raw, to: upper, input: text, partitioner: file}
  - {from: upper, to: total, input: upper, partitioner: gather}
"""


def test_fan_out_then_fan_in_is_tracked_as_parent_and_child_runs(run_dag: RunDag, tmp_path: Path) -> None:
    names = [f"d{i % 3}/file-{i:02d}.txt" for i in range(12)]
    make_files(tmp_path / "data", {name: f"word{i % 2} body {i}\n" for i, name in enumerate(names)})

    done = run_dag(FAN_OUT_FAN_IN)

    assert done.state == "succeeded", done.view
    parent = done.parent
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["concurrent.dag"] == "fan"
    assert parent.data.tags["concurrent.run_id"] == done.run_id
    assert "dag.yaml" in {a.path for a in done.client.list_artifacts(parent.info.run_id)}

    upper = done.children("upper")
    assert [r.data.tags["concurrent.partition"] for r in upper] == ["0", "1", "2", "3"]
    assert {r.info.status for r in upper} == {"FINISHED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in upper} == {parent.info.run_id}
    assert {r.data.metrics["files"] for r in upper} == {3.0}  # 12 equal-size files over 4 partitions
    log = done.artifact_text(upper[0].info.run_id, "logs/task.log", tmp_path / "dl0")
    assert "partition 0 of 4: 3 file(s)" in log

    (total,) = done.children("total")
    summary = json.loads(done.artifact_text(total.info.run_id, "outputs/summary.json", tmp_path / "dl1"))
    received = sorted(path.split("/", 1)[1] for path in summary["inputs"]["upper"])
    assert received == sorted(f"text/{name}.out" for name in names)  # every output of every partition, once
    assert summary["keys"] == ["word0", "word1"]  # metadata recorded by the upstream tasks


def test_broadcast_and_file_partitioning_together(run_dag: RunDag, tmp_path: Path) -> None:
    make_files(tmp_path / "data", {f"rows-{i}.txt": "x" * (10 + i) for i in range(9)})
    make_files(tmp_path / "config", {"settings.txt": "a", "labels/names.txt": "b"})
    done = run_dag("""
name: bcast
nodes:
  - {id: data, kind: source, uri: data}
  - {id: config, kind: source, uri: config}
  - {id: look, kind: project, project: "{toolbox}", entry_point: count, partitions: 3}
edges:
  - {from: data, to: look, input: rows, partitioner: file}
  - {from: config, to: look, input: config, partitioner: broadcast}
""")
    assert done.state == "succeeded", done.view
    seen_rows: list[str] = []
    for child in done.children("look"):
        summary = json.loads(
            done.artifact_text(child.info.run_id, "outputs/summary.json", tmp_path / child.info.run_id)
        )
        assert summary["inputs"]["config"] == ["labels/names.txt", "settings.txt"]
        assert summary["inputs"]["rows"], "no partition is left idle"
        seen_rows += summary["inputs"]["rows"]
    assert sorted(seen_rows) == sorted(f"rows-{i}.txt" for i in range(9))


def test_sweep_runs_one_partition_per_parameter_combination(run_dag: RunDag, tmp_path: Path) -> None:
    done = run_dag("""
name: sweep
nodes:
  - id: search
    kind: project
    project: "{toolbox}"
    entry_point: echo_params
    sweep: {alpha: [0.1, 0.5, 2], beta: [x, y]}
""")
    assert done.state == "succeeded", done.view
    children = done.children("search")
    assert len(children) == 6
    combos = set()
    for child in children:
        params = json.loads(
            done.artifact_text(child.info.run_id, "outputs/params.json", tmp_path / child.info.run_id)
        )
        combos.add((params["alpha"], params["beta"]))
        assert child.data.metrics["score"] == pytest.approx(params["alpha"] * 10)
        assert float(child.data.params["alpha"]) == params["alpha"]  # the combination is logged as params
    assert combos == {(a, b) for a in (0.1, 0.5, 2.0) for b in ("x", "y")}
    # The parent, the run users open, sums the sweep up: each metric's range and which combination won.
    parent = done.parent
    assert parent.data.metrics == pytest.approx(
        {"score/min": 1.0, "score/max": 20.0, "score/mean": 8.0 + 2 / 3}
    )
    by_run = {child.info.run_id: child for child in children}
    for way, alpha in (("min", "0.1"), ("max", "2")):
        best = parent.data.tags[f"best/score/{way}"]
        assert best.startswith(f"alpha={alpha} beta="), best
        winner = by_run[best.rsplit("run ", 1)[1].rstrip(")")]
        assert winner.data.params["alpha"] == alpha and f"beta={winner.data.params['beta']}" in best


def test_each_task_gets_its_share_of_the_cores_and_the_users_own_thread_setting_wins(
    run_dag: RunDag, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tasks running at once on this machine split its cores (BLAS, OpenMP and Arrow would each start a
    thread per core in every one of them); a lone task gets them all; a variable the user set reaches the
    task as they set it."""
    monkeypatch.setenv("MKL_NUM_THREADS", "5")
    done = run_dag("""
name: threads
nodes:
  - {id: shared, kind: project, project: "{toolbox}", entry_point: echo_params, sweep: {alpha: [1, 2, 3]}}
  - {id: alone, kind: project, project: "{toolbox}", entry_point: echo_params, parameters: {alpha: 1}}
""")  # run_dag's engine runs two tasks at once
    assert done.state == "succeeded", done.view
    cores = len(os.sched_getaffinity(0))
    for node, expected in (("shared", str(max(1, cores // 2))), ("alone", str(cores))):
        for child in done.children(node):
            seen = json.loads(
                done.artifact_text(child.info.run_id, "outputs/params.json", tmp_path / child.info.run_id)
            )
            assert seen["threads"] == {
                "OMP_NUM_THREADS": expected,
                "OPENBLAS_NUM_THREADS": expected,
                "MKL_NUM_THREADS": "5",
            }, node


def test_key_partitioner_groups_files_by_upstream_metadata(run_dag: RunDag, tmp_path: Path) -> None:
    fruit = ["apple", "banana", "cherry"]
    make_files(tmp_path / "data", {f"f{i:02d}.txt": f"{fruit[i % 3]} {i}" for i in range(15)})
    done = run_dag("""
name: keyed
nodes:
  - {id: raw, kind: source, uri: data}
  - {id: tag, kind: project, project: "{toolbox}", entry_point: transform, partitions: 2}
  - {id: by-fruit, kind: project, project: "{toolbox}", entry_point: count, partitions: 3}
edges:
  - {from: raw, to: tag, input: text}
  - {from: tag, to: by-fruit, input: tagged, partitioner: {kind: key, key: key}}
""")
    assert done.state == "succeeded", done.view
    keys = []
    for child in done.children("by-fruit"):
        summary = json.loads(
            done.artifact_text(child.info.run_id, "outputs/summary.json", tmp_path / child.info.run_id)
        )
        assert len(summary["keys"]) == 1, "one fruit per partition"
        assert len(summary["inputs"]["tagged"]) == 5
        keys += summary["keys"]
    assert sorted(keys) == ["apple", "banana", "cherry"]


def test_failing_partition_fails_its_node_skips_downstream_and_spares_other_branches(
    run_dag: RunDag, tmp_path: Path
) -> None:
    make_files(tmp_path / "data", {f"f{i}.txt": f"w {i}" for i in range(6)})
    done = run_dag("""
name: failing
defaults: {retries: 1}
nodes:
  - {id: raw, kind: source, uri: data}
  - id: bad
    kind: project
    project: "{toolbox}"
    entry_point: transform
    partitions: 3
    parameters: {fail_on_partition: 1}
  - {id: after-bad, kind: project, project: "{toolbox}", entry_point: count}
  - {id: good, kind: project, project: "{toolbox}", entry_point: count}
edges:
  - {from: raw, to: bad, input: text}
  - {from: bad, to: after-bad, input: x, partitioner: gather}
  - {from: raw, to: good, input: text, partitioner: gather}
""")
    assert done.state == "failed"
    assert done.stage("bad").state == "failed"
    assert "partition 1" in (done.stage("bad").error or "")
    assert done.stage("after-bad").state == "skipped"
    assert done.stage("good").state == "succeeded"
    assert done.parent.info.status == "FAILED"
    attempts = [
        (r.data.tags["concurrent.partition"], r.data.tags["concurrent.attempt"], r.info.status)
        for r in done.children("bad")
    ]
    assert attempts == [
        ("0", "1", "FINISHED"),
        ("1", "1", "FAILED"),
        ("1", "2", "FAILED"),
        ("2", "1", "FINISHED"),
    ]
    failed_log = done.artifact_text(done.children("bad")[2].info.run_id, "logs/task.log", tmp_path / "log")
    assert "failing on purpose" in failed_log
    assert done.children("after-bad") == []


def test_flaky_partition_succeeds_on_retry(run_dag: RunDag, tmp_path: Path) -> None:
    make_files(tmp_path / "data", {f"f{i}.txt": f"w {i}" for i in range(4)})
    markers = tmp_path / "markers"
    markers.mkdir()
    (markers / "partition-0").write_text("already failed once")
    done = run_dag(f"""
name: flaky
nodes:
  - {{id: raw, kind: source, uri: data}}
  - id: flaky
    kind: project
    project: "{{toolbox}}"
    entry_point: transform
    partitions: 2
    retries: 2
    parameters: {{flaky_marker_dir: "{markers}"}}
edges:
  - {{from: raw, to: flaky, input: text}}
""")
    assert done.state == "succeeded", done.view
    attempts = [
        (r.data.tags["concurrent.partition"], r.data.tags["concurrent.attempt"], r.info.status)
        for r in done.children("flaky")
    ]
    assert attempts == [("0", "1", "FINISHED"), ("1", "1", "FAILED"), ("1", "2", "FINISHED")]


def test_retry_of_a_failed_run_reruns_only_what_failed(run_dag: RunDag, tmp_path: Path) -> None:
    make_files(tmp_path / "data", {f"f{i}.txt": f"w {i}" for i in range(8)})
    markers = tmp_path / "markers"
    markers.mkdir()
    for partition in (0, 2):
        (markers / f"partition-{partition}").write_text("pretend these already failed once")
    yaml_text = f"""
name: retry-me
nodes:
  - {{id: raw, kind: source, uri: data}}
  - id: step
    kind: project
    project: "{{toolbox}}"
    entry_point: transform
    partitions: 4
    parameters: {{flaky_marker_dir: "{markers}"}}
  - {{id: total, kind: project, project: "{{toolbox}}", entry_point: count}}
edges:
  - {{from: raw, to: step, input: text}}
  - {{from: step, to: total, input: step, partitioner: gather}}
"""
    first = run_dag(yaml_text)
    assert first.state == "failed"
    assert first.stage("total").state == "skipped"

    again = run_dag("", retry_of=first.run_id)

    assert again.state == "succeeded", again.view
    assert again.parent.info.status == "FINISHED"
    runs_per_partition = {}
    for child in again.children("step"):
        runs_per_partition.setdefault(child.data.tags["concurrent.partition"], []).append(child.info.status)
    assert runs_per_partition == {
        "0": ["FINISHED"],
        "1": ["FAILED", "FINISHED"],
        "2": ["FINISHED"],
        "3": ["FAILED", "FINISHED"],
    }
    (total,) = again.children("total")
    summary = json.loads(again.artifact_text(total.info.run_id, "outputs/summary.json", tmp_path / "s"))
    assert len(summary["inputs"]["step"]) == 8


def test_timeout_kills_the_attempt_and_says_so(run_dag: RunDag, tmp_path: Path) -> None:
    make_files(tmp_path / "data", {"a.txt": "a"})
    done = run_dag("""
name: slow
nodes:
  - {id: raw, kind: source, uri: data}
  - id: sleepy
    kind: project
    project: "{toolbox}"
    entry_point: transform
    timeout: 8
    parameters: {sleep: 120}
edges:
  - {from: raw, to: sleepy, input: text}
""")
    assert done.state == "failed"
    assert "timed out after 8s" in (done.stage("sleepy").error or "")
    (child,) = done.children("sleepy")
    assert child.info.status == "KILLED"


def test_hostile_but_legal_file_names_flow_through(run_dag: RunDag, tmp_path: Path) -> None:
    names = ["-rf", "a b#?.txt", "ü/é %20.txt", ".hidden", "$(touch pwned);.txt"]
    make_files(tmp_path / "data", {name: f"n {i}" for i, name in enumerate(names)})
    done = run_dag(HOSTILE)
    assert done.state == "succeeded", done.view
    (total,) = done.children("total")
    summary = json.loads(done.artifact_text(total.info.run_id, "outputs/summary.json", tmp_path / "s"))
    assert sorted(p.split("/", 1)[1] for p in summary["inputs"]["copies"]) == sorted(
        f"text/{n}.out" for n in names
    )
    assert not list(tmp_path.rglob("pwned")), "a file name is never run as a command"


def test_an_output_name_mlflow_cannot_store_fails_the_task_with_the_name(
    run_dag: RunDag, tmp_path: Path
) -> None:
    make_files(tmp_path / "data", {"line\nbreak.txt": "n"})
    done = run_dag(HOSTILE)
    assert done.state == "failed"
    (child,) = done.children("copy")
    assert child.info.status == "FAILED"  # although the entry point itself ended its MLflow run FINISHED
    log = done.artifact_text(child.info.run_id, "logs/task.log", tmp_path / "log")
    assert "Output file 'text/line\\nbreak.txt.out' has a control character in its name" in log


HOSTILE = """
name: hostile
nodes:
  - {id: raw, kind: source, uri: data}
  - {id: copy, kind: project, project: "{toolbox}", entry_point: transform, partitions: 2}
  - {id: total, kind: project, project: "{toolbox}", entry_point: count}
edges:
  - {from: raw, to: copy, input: text}
  - {from: copy, to: total, input: copies, partitioner: gather}
"""
