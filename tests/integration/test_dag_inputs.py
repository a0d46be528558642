"""DAG runs whose code comes from git and whose data comes from S3, and the built-in inference node."""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path
from typing import Any

import pytest

from concurrent_mlflow.tracking import Tracking
from tests.fixtures.git_server import serve_git_http
from tests.integration.conftest import RunDag

pytestmark = pytest.mark.integration


def test_git_project_over_http_runs_the_pinned_tag(
    run_dag: RunDag, git_repo: Any, git_http_server: Any, tmp_path: Path
) -> None:
    done = run_dag(f"""
name: from-git
nodes:
  - id: hello
    kind: project
    project: "{git_http_server.url}#projects/hello"
    version: v1
    parameters: {{alpha: 0.5}}
    partitions: 2
""")
    assert done.state == "succeeded", done.view
    spec = json.loads(
        done.artifact_text(done.view.mlflow_run_id or "", "plan/hello/spec.json", tmp_path / "spec")
    )
    assert spec["commit"] == git_repo.commits["v1"]
    children = done.children("hello")
    for child in children:
        log = done.artifact_text(child.info.run_id, "logs/task.log", tmp_path / child.info.run_id)
        assert "hi alpha=0.5" in log  # v1's default greeting; main says "hello"
    # Tagged as `mlflow run` tags a run of this project, on the parent (the DAG's one project) and each child.
    standard = {
        "mlflow.user": getpass.getuser(),
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": f"{git_http_server.url}#projects/hello",
        "mlflow.source.git.repoURL": git_http_server.url,
        "mlflow.source.git.commit": git_repo.commits["v1"],
        "mlflow.project.entryPoint": "main",
        "mlflow.project.backend": "concurrent",
    }
    for run in (done.parent, *children):
        assert standard.items() <= run.data.tags.items(), run.data.tags
        assert "mlflow.source.git.branch" not in run.data.tags  # v1 is a tag, not a branch
    assert [c.data.params["greeting"] for c in children] == ["hi", "hi"]  # the default is logged too


def test_a_git_token_is_used_and_written_nowhere(
    run_dag: RunDag, git_repo: Any, tracking_env: Path, tmp_path: Path
) -> None:
    """A private repository: the token in the project URL reaches git in the engine and in every worker,
    and appears in no MLflow run (tags, params, spec, logs, the logged DAG) and no file of the cache."""
    token = "tok-" + os.urandom(8).hex()
    with serve_git_http(git_repo, credentials=f"ci-bot:{token}") as server:
        private = server.url.replace("http://", f"http://ci-bot:{token}@")
        done = run_dag(f"""
name: private-git
nodes:
  - {{id: hello, kind: project, project: "{private}#projects/hello", version: v1, parameters: {{alpha: 1}},
     partitions: 2}}
""")
        assert done.state == "succeeded", done.view
        assert any(r.startswith("401 ") for r in server.requests)  # the server really asked for them
        assert any(not r.startswith("401 ") for r in server.requests)
    runs = [done.parent, *done.children("hello")]
    assert len(runs) == 3
    for run in runs:
        shown = json.dumps([run.data.tags, run.data.params, run.info.run_name])
        assert token not in shown
        local = Path(done.client.download_artifacts(run.info.run_id, "", str(tmp_path / run.info.run_id)))
        files = [p for p in local.rglob("*") if p.is_file()]
        assert files
        for path in files:
            assert token.encode() not in path.read_bytes(), path
    assert done.parent.data.tags["mlflow.source.git.repoURL"] == server.url
    cache = Path(os.environ["CONCURRENT_CACHE"])
    for path in [*tracking_env.rglob("*"), *cache.rglob("*")]:  # plans, logs; mirrors, checkouts, envs
        assert token not in str(path)
    for path in [*tracking_env.rglob("*"), *(cache / "git").rglob("*")]:
        if path.is_file() and not path.name.startswith("concurrent.db"):  # the store keeps the DAG
            assert token.encode() not in path.read_bytes(), path


def test_uv_environment_is_built_once_and_reused(
    run_dag: RunDag, git_repo: Any, tracking_env: Path, tmp_path: Path
) -> None:
    dag = f"""
name: uv-env
nodes:
  - id: hello
    kind: project
    project: "{git_repo.file_url}#projects/hello"
    env_manager: uv
    parameters: {{alpha: 0.5}}
"""
    logs = []
    for attempt in range(2):
        done = run_dag(dag)
        assert done.state == "succeeded", done.view
        (child,) = done.children("hello")
        logs.append(done.artifact_text(child.info.run_id, "logs/task.log", tmp_path / f"log{attempt}"))
    cache = Path(os.environ["CONCURRENT_CACHE"]) / "envs"
    assert f"Creating a new environment in {cache}" in logs[0] or "already exists" in logs[0]
    assert "already exists" in logs[1] and "Creating a new environment" not in logs[1]
    assert "hello alpha=0.5" in logs[1]


def test_s3_source_is_listed_once_and_each_task_fetches_its_slice(
    run_dag: RunDag, s3_server: Any, tmp_path: Path
) -> None:
    files = {f"incoming/day-{i % 2}/f{i}.txt": f"s3word body {i}" for i in range(6)}
    files["other/ignored.txt"] = "not under the prefix"
    bucket = s3_server.create_bucket(files)
    done = run_dag(f"""
name: from-s3
nodes:
  - {{id: bucket, kind: source, uri: "s3://{bucket}/incoming", pattern: "*.txt"}}
  - {{id: upper, kind: project, project: "{{toolbox}}", entry_point: transform, partitions: 3}}
  - {{id: total, kind: project, project: "{{toolbox}}", entry_point: count}}
edges:
  - {{from: bucket, to: upper, input: text}}
  - {{from: upper, to: total, input: upper, partitioner: gather}}
""")
    assert done.state == "succeeded", done.view
    (total,) = done.children("total")
    summary = json.loads(done.artifact_text(total.info.run_id, "outputs/summary.json", tmp_path / "s"))
    assert sorted(p.split("/", 1)[1] for p in summary["inputs"]["upper"]) == sorted(
        f"text/day-{i % 2}/f{i}.txt.out" for i in range(6)
    )
    tracking, parent = Tracking(os.environ["MLFLOW_TRACKING_URI"]), done.view.mlflow_run_id or ""
    manifest = tracking.read_manifest(parent, "upper", 0, tracking.read_spec(parent, "upper"))
    assert all(item.uri.startswith(f"s3://{bucket}/incoming/") for item in manifest.inputs["text"])


def test_inference_node_scores_each_partition_with_a_registered_model(
    run_dag: RunDag, tmp_path: Path
) -> None:
    import mlflow
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(
        pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [0.0, 0.0, 1.0]}), [0.0, 2.0, 5.0]
    )
    mlflow.set_experiment("inference-test-training")
    with mlflow.start_run():
        mlflow.sklearn.log_model(model, name="model", registered_model_name="inference-test-model")
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        pd.DataFrame({"id": range(i * 10, i * 10 + 10), "x": [float(i)] * 10, "y": [1.0] * 10}).to_csv(
            data / f"part-{i}.csv", index=False
        )
    pd.DataFrame({"id": [99], "x": [3.0], "y": [2.0]}).to_parquet(data / "extra.parquet")

    done = run_dag("""
name: scoring
nodes:
  - {id: rows, kind: source, uri: data}
  - {id: score, kind: inference, model: "models:/inference-test-model/1", partitions: 2, batch_size: 4,
     columns: [x, y], prediction_column: yhat}
edges:
  - {from: rows, to: score, input: rows}
""")
    assert done.state == "succeeded", done.view
    scored = []
    for child in done.children("score"):
        target = tmp_path / child.info.run_id
        local = Path(done.client.download_artifacts(child.info.run_id, "outputs/predictions", str(target)))
        scored += [pd.read_parquet(p) for p in local.rglob("*.parquet")]
    frame = pd.concat(scored).sort_values("id")
    assert len(frame) == 41  # every row of every file, across batches of 4
    expected = model.predict(frame[["x", "y"]])
    assert frame["yhat"].round(6).tolist() == pd.Series(expected).round(6).tolist()
