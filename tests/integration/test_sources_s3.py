"""Listing and fetching from a real S3 endpoint (moto's server process) and a real MLflow server."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from concurrent_mlflow.errors import SourceError, UnsafePathError
from concurrent_mlflow.manifest import InputItem
from concurrent_mlflow.sources import fetch, list_source
from tests.fixtures.mlflow_server import MlflowServer
from tests.fixtures.s3_server import S3Server

pytestmark = pytest.mark.integration

FILES = {
    "data/a.csv": "alpha",
    "data/sub/b.csv": "bravo!",
    "data/sub/deeper/c.txt": "charlie",
    "data/ü x/-rf#1?.csv": "delta",
    "data/folder/": "",  # a console-made "folder" marker, not a file
    "data2/not-me.csv": "no",
    "other/x.csv": "no",
}


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.create_bucket(FILES)


def test_lists_a_prefix_recursively_with_full_urls(bucket: str, tmp_path: Path) -> None:
    items = list_source(f"s3://{bucket}/data", base_dir=tmp_path)
    assert [(i.uri, i.relpath, i.size) for i in items] == [
        (f"s3://{bucket}/data/a.csv", "a.csv", 5),
        (f"s3://{bucket}/data/sub/b.csv", "sub/b.csv", 6),
        (f"s3://{bucket}/data/sub/deeper/c.txt", "sub/deeper/c.txt", 7),
        (f"s3://{bucket}/data/ü x/-rf#1?.csv", "ü x/-rf#1?.csv", 5),
    ]
    assert list_source(f"s3://{bucket}/data/", base_dir=tmp_path) == items


def test_pattern_and_single_key(bucket: str, tmp_path: Path) -> None:
    csvs = list_source(f"s3://{bucket}/data", base_dir=tmp_path, pattern="*.csv")
    assert [i.relpath for i in csvs] == ["a.csv", "sub/b.csv", "ü x/-rf#1?.csv"]
    nested = list_source(f"s3://{bucket}/data", base_dir=tmp_path, pattern="sub/**/*")
    assert [i.relpath for i in nested] == ["sub/b.csv", "sub/deeper/c.txt"]
    single = list_source(f"s3://{bucket}/data/sub/b.csv", base_dir=tmp_path)
    assert single == [InputItem(uri=f"s3://{bucket}/data/sub/b.csv", relpath="b.csv", size=6)]


def test_modification_window_uses_last_modified(bucket: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    within = list_source(
        f"s3://{bucket}/data", base_dir=tmp_path, modified_after=now - hour, modified_before=now + hour
    )
    assert len(within) == 4
    assert list_source(f"s3://{bucket}/data", base_dir=tmp_path, modified_after=now + hour) == []


def test_fetch_downloads_every_item_into_place(bucket: str, tmp_path: Path) -> None:
    items = list_source(f"s3://{bucket}/data", base_dir=tmp_path)
    paths = fetch(items, tmp_path / "in" / "images", max_workers=3)
    assert paths == [tmp_path / "in" / "images" / i.relpath for i in items]
    assert [p.read_text(encoding="utf-8") for p in paths] == ["alpha", "bravo!", "charlie", "delta"]


def test_missing_bucket_or_empty_prefix_is_named(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=rf"^Source 's3://{bucket}/nothing' does not exist or is empty"):
        list_source(f"s3://{bucket}/nothing", base_dir=tmp_path)
    with pytest.raises(SourceError, match=r"^Source 's3://no-such-bucket-here/x' does not exist or is empty"):
        list_source("s3://no-such-bucket-here/x", base_dir=tmp_path)


def test_a_hostile_key_fails_the_listing_and_nothing_is_written(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.create_bucket({"data/ok.txt": "ok", "data/../../evil.txt": "evil"})
    with pytest.raises(UnsafePathError) as caught:
        list_source(f"s3://{bucket}/data", base_dir=tmp_path)
    assert str(caught.value).startswith(
        f"Source 's3://{bucket}/data' holds 's3://{bucket}/data/../../evil.txt', whose name cannot be used: "
        "Refusing file name '../../evil.txt': it has a '..' component"
    )
    dest = tmp_path / "task" / "in"
    crafted = [
        InputItem(f"s3://{bucket}/data/ok.txt", "ok.txt", 2),
        InputItem(f"s3://{bucket}/data/../../evil.txt", "../../evil.txt", 4),
    ]
    with pytest.raises(UnsafePathError, match=r"Refusing file name '\.\./\.\./evil\.txt'"):
        fetch(crafted, dest)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_failed_download_names_the_url(bucket: str, tmp_path: Path) -> None:
    uri = f"s3://{bucket}/data/vanished.csv"
    with pytest.raises(
        SourceError, match="^" + re.escape(f"Could not fetch '{uri}' to 'vanished.csv': ")
    ) as caught:
        fetch([InputItem(uri, "vanished.csv", 1)], tmp_path / "dest")
    assert isinstance(caught.value.__cause__, FileNotFoundError)
    assert str(caught.value).endswith("The specified key does not exist.")


@pytest.fixture
def run_with_artifacts(mlflow_server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    client = MlflowClient(mlflow_server.url)
    run = client.create_run(client.create_experiment(f"sources-{tmp_path.name}"))
    outputs = tmp_path / "outputs"
    (outputs / "deep").mkdir(parents=True)
    (outputs / "deep" / "part 1.csv").write_text("one")
    (outputs / "top.txt").write_text("top")
    client.log_artifacts(run.info.run_id, str(outputs), "outputs")
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def test_list_a_runs_artifacts_as_a_source_and_fetch_them(run_with_artifacts: str, tmp_path: Path) -> None:
    items = list_source(f"runs:/{run_with_artifacts}/outputs", base_dir=tmp_path)
    assert [(i.uri, i.relpath, i.size) for i in items] == [
        (f"runs:/{run_with_artifacts}/outputs/deep/part 1.csv", "deep/part 1.csv", 3),
        (f"runs:/{run_with_artifacts}/outputs/top.txt", "top.txt", 3),
    ]
    paths = fetch(items, tmp_path / "in")
    assert [p.read_text() for p in paths] == ["one", "top"]
    with pytest.raises(SourceError, match="Cannot list source 'runs:/0123456789abcdef/outputs'"):
        list_source("runs:/0123456789abcdef/outputs", base_dir=tmp_path)


def test_fetch_mlflow_artifacts_by_run_and_by_artifact_uri(
    run_with_artifacts: str, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    run_id = run_with_artifacts
    artifact_root = MlflowClient(mlflow_server.url).get_run(run_id).info.artifact_uri
    assert artifact_root.startswith("mlflow-artifacts:/")
    items = [
        InputItem(f"runs:/{run_id}/outputs/deep/part 1.csv", "a/part 1.csv", 3),
        InputItem(f"{artifact_root}/outputs/top.txt", "top.txt", 3),
    ]
    dest = tmp_path / "task" / "in" / "upstream"
    paths = fetch(items, dest)
    assert [p.read_text() for p in paths] == ["one", "top"]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["upstream"]  # the staging directory is gone


def test_a_missing_mlflow_artifact_names_the_uri(run_with_artifacts: str, tmp_path: Path) -> None:
    uri = f"runs:/{run_with_artifacts}/outputs/absent.txt"
    with pytest.raises(
        SourceError, match="^" + re.escape(f"Could not fetch '{uri}' to 'absent.txt': ")
    ) as caught:
        fetch([InputItem(uri, "absent.txt", 1)], tmp_path / "task" / "in")
    assert str(caught.value).endswith(
        "Failed to download artifacts from path 'absent.txt', please ensure that the path is correct."
    )
