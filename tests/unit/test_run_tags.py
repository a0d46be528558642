"""MLflow's standard tags for a project run, worked out as `mlflow run -b local` works them out."""

from __future__ import annotations

import getpass
import subprocess
from pathlib import Path

import pytest

from concurrent_mlflow.project import ResolvedProject
from concurrent_mlflow.run_tags import project_tags, run_tags, user, without_credentials
from concurrent_mlflow.tracking import without_url_credentials


def resolved(
    uri: str, work_dir: Path, *, version: str | None = None, commit: str | None = None
) -> ResolvedProject:
    return ResolvedProject(uri, version, commit, work_dir, "p", {}, "none")


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("https://alice:ghp_secret@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://ghp_secret@github.com/org/repo.git#sub", "https://github.com/org/repo.git#sub"),
        ("http://127.0.0.1:8080/repo.git", "http://127.0.0.1:8080/repo.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),  # ssh's user is not a secret
        ("file:///srv/repo.git", "file:///srv/repo.git"),
    ],
)
def test_a_git_uri_loses_its_credentials(uri: str, expected: str) -> None:
    assert without_credentials(uri) == expected


def test_a_git_project_is_tagged_with_its_repository_commit_and_branch(tmp_path: Path) -> None:
    uri = "https://bob:tok3n@git.example.com/team/models.git#projects/churn"
    project = resolved(uri, tmp_path, version="release", commit="a" * 40)

    tags = project_tags(project, "train", "uv", branch=True)

    assert tags == {
        "mlflow.source.type": "PROJECT",
        "mlflow.source.name": "https://git.example.com/team/models.git#projects/churn",
        "mlflow.source.git.repoURL": "https://git.example.com/team/models.git",
        "mlflow.source.git.commit": "a" * 40,
        "mlflow.source.git.branch": "release",
        "mlflow.project.entryPoint": "train",
        "mlflow.project.env": "uv",
    }
    assert "tok3n" not in repr(tags)
    assert "mlflow.source.git.branch" not in project_tags(project, "train", "uv", branch=False)


def test_a_local_project_in_a_clone_is_named_by_its_remote_and_commit(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    (clone / "projects" / "p").mkdir(parents=True)
    (clone / "projects" / "p" / "MLproject").write_text("name: p\n")
    git(clone, "init", "-q")
    git(clone, "remote", "add", "origin", "https://carol:hunter2@git.example.com/x/y.git")
    git(clone, "add", ".")
    git(clone, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = git(clone, "rev-parse", "HEAD")

    tags = project_tags(
        resolved(str(clone / "projects" / "p"), clone / "projects" / "p"), "main", "local", branch=False
    )

    assert tags["mlflow.source.git.commit"] == head
    assert tags["mlflow.source.git.repoURL"] == "https://git.example.com/x/y.git"
    assert tags["mlflow.source.name"].endswith("#projects/p")
    assert "hunter2" not in repr(tags)


def test_a_plain_local_directory_is_named_by_its_path(tmp_path: Path) -> None:
    tags = project_tags(resolved(str(tmp_path), tmp_path), "main", "local", branch=False)

    assert tags["mlflow.source.name"] == str(tmp_path)
    assert "mlflow.source.git.commit" not in tags


def test_the_user_is_the_authenticated_caller_else_the_machines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    assert user("dana") == "dana"
    assert user(None) == user("local") == getpass.getuser()  # a CLI, or a control plane with auth off
    assert run_tags("dana") == {"mlflow.user": "dana", "mlflow.project.backend": "concurrent"}


def test_the_dag_logged_on_the_parent_run_carries_no_url_credentials() -> None:
    dag = (
        "nodes:\n"
        "  - {id: a, kind: project, project: 'https://ci:ghp_s3cret@github.com/org/repo.git#p', version: v1}\n"
        "  - {id: b, kind: source, uri: s3://bucket/raw}\n"
        '  - {id: c, kind: project, project: "git@github.com:org/other.git"}\n'
    )
    logged = without_url_credentials(dag)

    assert "s3cret" not in logged and "ci:" not in logged
    assert "'https://github.com/org/repo.git#p'" in logged
    assert "s3://bucket/raw" in logged and "git@github.com:org/other.git" in logged  # nothing else changes
