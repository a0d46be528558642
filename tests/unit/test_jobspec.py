"""The Indexed Job a stage becomes on a cluster, and how partitions are spread over clusters."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from concurrent_mlflow import git_credentials
from concurrent_mlflow.executors.jobspec import (
    JobRequest,
    PodSettings,
    build_job,
    build_secret,
    parse_indexes,
)
from concurrent_mlflow.executors.kubernetes import StageTask, split_by_weight


def request(**changes: object) -> JobRequest:
    fields: dict[str, object] = {
        "run_id": "r" * 32,
        "node_id": "a-forty-character-node-id-xxxxxxxxxxxxxx",
        "cluster": "east",
        "attempt": 1,
        "partitions": list(range(10_000)),
        "parallelism": 50,
        "retries": 2,
        "timeout": 90.5,
        "tracking_uri": "http://mlflow:5000",
        "parent_run_id": "p" * 32,
        "env": {"CONCURRENT_WINDOW_START": "2026-01-01T00:00:00+00:00"},
        "pod": PodSettings(
            image="registry.example/worker:1",
            namespace="tasks",
            node_selector={"pool": "cpu"},
            tolerations=[{"key": "spot", "operator": "Exists"}],
            labels={"team": "ml"},
            cpu="2",
            memory="4Gi",
            gpu=1,
        ),
    }
    fields.update(changes)
    return JobRequest(**fields)  # type: ignore[arg-type]


def test_one_indexed_job_carries_a_whole_stage_in_a_small_object() -> None:
    job = build_job(request())
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 10_000, 50)
    assert spec["backoffLimitPerIndex"] == 2 and spec["ttlSecondsAfterFinished"] == 3600
    assert spec["podFailurePolicy"]["rules"][0]["action"] == "Ignore"  # evictions use no retry
    assert "activeDeadlineSeconds" not in spec and pod["activeDeadlineSeconds"] == 91  # per pod, rounded up
    container = pod["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}
    assert pod["nodeSelector"] == {"pool": "cpu"} and pod["tolerations"] == [
        {"key": "spot", "operator": "Exists"}
    ]
    labels = spec["template"]["metadata"]["labels"]
    assert labels["team"] == "ml" and labels["concurrent-mlflow.io/run-id"] == "r" * 32
    assert pod["securityContext"]["runAsNonRoot"] and not pod["automountServiceAccountToken"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CONCURRENT_JOB_TABLE"] == f"plan/{request().node_id}/jobs/{job['metadata']['name']}"
    assert len(json.dumps(job)) < 6000  # the partition table lives in MLflow, not in etcd


def test_job_names_are_stable_short_and_distinct_per_attempt_and_partitions() -> None:
    first = request().name
    assert first == request().name and len(first) <= 53  # room for "-<index>" in pod hostnames
    assert first != request(attempt=2).name
    assert first != request(partitions=[1, 2, 3]).name
    assert first != request(cluster="west").name
    assert build_job(request(partitions=[4], parallelism=50))["spec"]["parallelism"] == 1


def test_no_resources_and_no_timeout_leave_the_fields_out() -> None:
    job = build_job(request(timeout=None, pod=PodSettings(namespace="tasks", cache_claim="uv-cache")))
    pod = job["spec"]["template"]["spec"]
    assert "resources" not in pod["containers"][0] and "activeDeadlineSeconds" not in pod
    assert pod["volumes"] == [{"name": "cache", "persistentVolumeClaim": {"claimName": "uv-cache"}}]


@pytest.mark.parametrize(
    ("text", "indexes"), [(None, set()), ("", set()), ("3", {3}), ("0-2,5,7-8", {0, 1, 2, 5, 7, 8})]
)
def test_index_lists_as_the_job_status_writes_them(text: str | None, indexes: set[int]) -> None:
    assert parse_indexes(text) == indexes


@given(
    count=st.integers(0, 500),
    weights=st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(1, 9), min_size=1),
)
def test_partitions_are_split_by_weight_into_contiguous_slices(count: int, weights: dict[str, int]) -> None:
    tasks = [StageTask(p, 1, f"child-{p}") for p in range(count)]
    slices = split_by_weight(tasks, weights)
    assert [t for name in sorted(slices) for t in slices[name]] == tasks  # every task once, in order
    total = sum(weights.values())
    for name, part in slices.items():
        assert abs(len(part) - count * weights[name] / total) < 1  # largest remainder: within one
    assert split_by_weight(tasks, weights) == slices


def test_secret_values_live_in_a_secret_the_job_owns_never_in_the_job() -> None:
    git = git_credentials.git_env(["https://bot:s3cret@git.example/ml/repo.git"], {})
    job_request = request(secret_env=git)
    job = build_job(job_request)
    assert "s3cret" not in json.dumps(job)
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    for name in git:
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": job_request.name, "key": name}
    secret = build_secret(job_request, "uid-1")
    assert secret is not None and secret["stringData"] == git
    assert secret["metadata"]["name"] == job_request.name and secret["metadata"]["namespace"] == "tasks"
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": job_request.name, "uid": "uid-1"}
    ]
    assert build_secret(request(), "uid-1") is None
