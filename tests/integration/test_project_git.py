"""Resolving git projects against a real repository, over file:// and over smart HTTP (git http-backend)."""

from __future__ import annotations

import multiprocessing
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from concurrent_mlflow.errors import ProjectError
from concurrent_mlflow.project import ResolvedProject, is_branch, resolve_project
from tests.fixtures.git_server import HELLO_MAIN, GitHttpServer, GitRepo, build_repo, git, serve_git_http

pytestmark = pytest.mark.integration

HELLO = "#projects/hello"


def resolve(uri: str, version: str | None, cache: Path) -> ResolvedProject:
    return resolve_project(uri, version, base_dir=cache, cache_dir=cache)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=["file", "http"])
def repo_url(request: pytest.FixtureRequest, git_repo: GitRepo, git_http_server: GitHttpServer) -> str:
    return git_repo.file_url if request.param == "file" else git_http_server.url


@pytest.mark.parametrize(
    ("version", "expected", "greeting", "has_beta"),
    [
        ("main", "main", "hello", False),
        ("dev", "dev", "hello", True),
        ("v1", "v1", "hi", False),  # an annotated tag, peeled to its commit
        (None, "main", "hello", False),  # the remote's HEAD
        ("full:v1", "v1", "hi", False),
        ("short:dev", "dev", "hello", True),
    ],
)
def test_resolve_pinned_version(
    repo_url: str,
    git_repo: GitRepo,
    tmp_path: Path,
    version: str | None,
    expected: str,
    greeting: str,
    has_beta: bool,
) -> None:
    if version and ":" in version:
        kind, name = version.split(":")
        version = git_repo.commits[name] if kind == "full" else git_repo.commits[name][:8]
    sha = git_repo.commits[expected]

    project = resolve(repo_url + HELLO, version, tmp_path)

    assert project.commit == sha
    assert project.work_dir == tmp_path / "checkouts" / sha / "projects" / "hello"
    assert (project.uri, project.version) == (repo_url + HELLO, version)
    assert (project.name, project.env_type) == ("hello", "python_env")
    assert sorted(project.entry_points) == ["main", "shout"]
    main = project.entry_points["main"]
    assert main.parameters["greeting"].default == greeting
    assert ("beta" in main.parameters) is has_beta
    assert (project.work_dir / "hello.py").is_file()
    assert is_branch(project, tmp_path) is (version in ("main", "dev"))  # not a tag or a commit


def test_projects_of_one_repository_share_its_mirror_and_checkout(git_repo: GitRepo, tmp_path: Path) -> None:
    hello = resolve(git_repo.file_url + HELLO, "main", tmp_path)
    counter = resolve(git_repo.file_url + "#projects/counter/", "main", tmp_path)
    assert counter.commit == hello.commit
    assert counter.work_dir == hello.work_dir.parent / "counter"
    assert counter.entry_points["count"].parameters["data"].type == "path"
    assert counter.env_type == "none"
    assert len([p for p in (tmp_path / "git").iterdir() if p.is_dir()]) == 1
    assert [p.name for p in (tmp_path / "checkouts").iterdir()] == [hello.commit]  # no scratch dirs left


def test_a_checked_out_commit_resolves_without_the_network(git_repo: GitRepo, tmp_path: Path) -> None:
    main, v1 = git_repo.commits["main"], git_repo.commits["v1"]
    with serve_git_http(git_repo) as server:
        url = server.url + HELLO
        first = resolve(url, "main", tmp_path)
        assert first.commit == main
        assert server.requests, "resolving a branch fetches"
        seen = len(server.requests)
        again = resolve(url, main, tmp_path)
        assert server.requests[seen:] == [], "a checked-out sha must not fetch"
        assert again.work_dir == first.work_dir
    # The server is gone now: a branch cannot be resolved, but pinned commits still can.
    with pytest.raises(ProjectError, match="cannot fetch git repository"):
        resolve(url, "main", tmp_path)
    assert resolve(url, main, tmp_path).work_dir == first.work_dir
    # v1 was fetched into the mirror but never checked out: a full sha is checked out from the mirror alone.
    assert resolve(url, v1.upper(), tmp_path).work_dir == tmp_path / "checkouts" / v1 / "projects" / "hello"


def test_a_branch_follows_new_commits(tmp_path: Path) -> None:
    repo = build_repo(tmp_path / "repo")
    cache = tmp_path / "cache"
    before = resolve(repo.file_url + HELLO, "main", cache)
    work = tmp_path / "repo" / "work"
    (work / "projects" / "hello" / "MLproject").write_text(HELLO_MAIN.replace("shout:", "whisper:"))
    git("commit", "--quiet", "--all", "-m", "rename shout", cwd=work)
    git("push", "--quiet", str(repo.path), "main", cwd=work)

    after = resolve(repo.file_url + HELLO, "main", cache)

    assert after.commit == git("rev-parse", "HEAD", cwd=work) != before.commit
    assert sorted(after.entry_points) == ["main", "whisper"]
    assert sorted(resolve(repo.file_url + HELLO, before.commit, cache).entry_points) == ["main", "shout"]


def test_unknown_version_lists_branches_and_tags(repo_url: str, tmp_path: Path) -> None:
    with pytest.raises(ProjectError) as caught:
        resolve(repo_url + HELLO, "v9", tmp_path)
    assert str(caught.value) == (
        f"branch, tag or commit 'v9' not found in {repo_url}; known branches: dev, main; tags: v1"
    )


def test_unknown_abbreviated_sha(git_repo: GitRepo, tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="branch, tag or commit 'deadbeef' not found"):
        resolve(git_repo.file_url, "deadbeef", tmp_path)


@pytest.mark.timeout(60)
def test_unreachable_repository_fails_fast_with_gits_reason(tmp_path: Path) -> None:
    port = closed_port()
    with pytest.raises(ProjectError) as caught:
        resolve(f"http://user:s3cret@127.0.0.1:{port}/x.git{HELLO}", "main", tmp_path)
    message = str(caught.value)
    assert message.startswith(f"cannot fetch git repository http://user:***@127.0.0.1:{port}/x.git: ")
    assert "connect" in message.lower()
    assert "check the URL, the network and your git credentials" in message
    assert "s3cret" not in message
    assert not [p for p in (tmp_path / "git").iterdir() if p.is_dir()], "no half-cloned mirror is kept"


@pytest.mark.timeout(60)
def test_repository_missing_on_the_server(git_http_server: GitHttpServer, tmp_path: Path) -> None:
    url = git_http_server.url.replace("repo.git", "nope.git")
    with pytest.raises(ProjectError, match=f"cannot fetch git repository {url}: .*not found"):
        resolve(url, None, tmp_path)


def test_missing_subdir(repo_url: str, tmp_path: Path) -> None:
    with pytest.raises(ProjectError) as caught:
        resolve(repo_url + "#projects/nope", "main", tmp_path)
    assert str(caught.value).startswith(f"no directory 'projects/nope' in {repo_url} at main (commit ")
    assert "fix the '#projects/nope' part of the project URI (top-level directories: projects)" in str(
        caught.value
    )


def test_a_subdir_symlinked_out_of_the_checkout_is_refused(tmp_path: Path) -> None:
    repo = build_repo(tmp_path / "repo")
    work = tmp_path / "repo" / "work"
    (work / "escape").symlink_to(tmp_path)
    git("add", "escape", cwd=work)
    git("commit", "--quiet", "-m", "hostile link", cwd=work)
    git("push", "--quiet", str(repo.path), "main", cwd=work)
    (tmp_path / "MLproject").write_text("name: outside\n")
    with pytest.raises(ProjectError, match="no directory 'escape'"):
        resolve(repo.file_url + "#escape", "main", tmp_path / "cache")


def test_a_directory_without_mlproject(git_repo: GitRepo, tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match=r"no MLproject file in .*/checkouts/[0-9a-f]{40}/projects;"):
        resolve(git_repo.file_url + "#projects", "main", tmp_path)


def _resolve_in_child(url: str, version: str, cache: str, barrier: Any, results: Any) -> None:
    barrier.wait(timeout=120)
    try:
        project = resolve(url, version, Path(cache))
        results.put((project.commit, str(project.work_dir)))
    except Exception as exc:  # report it to the parent instead of dying silently
        results.put(("error", repr(exc)))


@pytest.mark.timeout(300)  # four fresh interpreters each import MLflow: slow on a busy machine
@pytest.mark.parametrize("pin", ["branch", "sha"])
def test_concurrent_resolves_from_four_processes(
    git_http_server: GitHttpServer, git_repo: GitRepo, tmp_path: Path, pin: str
) -> None:
    sha = git_repo.commits["dev"]
    version = "dev" if pin == "branch" else sha
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    args = (git_http_server.url + HELLO, version, str(tmp_path), barrier, results)
    children = [ctx.Process(target=_resolve_in_child, args=args) for _ in range(4)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=240) for _ in children]
    for child in children:
        child.join(timeout=30)

    assert outcomes == [(sha, str(tmp_path / "checkouts" / sha / "projects" / "hello"))] * 4
    assert [c.exitcode for c in children] == [0] * 4
    assert [p.name for p in (tmp_path / "checkouts").iterdir()] == [sha]
    git_dir = next(p for p in (tmp_path / "git").iterdir() if p.is_dir())
    fsck = subprocess.run(
        ["git", "--git-dir", str(git_dir), "fsck", "--strict"], capture_output=True, check=False
    )
    assert fsck.returncode == 0, fsck.stderr
