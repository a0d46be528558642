"""The execution policy on its own: which local paths, schemes and local tasks a server allows.

Real directories and symbolic links under tmp_path; the integration tests (test_api_policy.py) try the same
attacks through a real server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from concurrent_mlflow.dag import parse_dag
from concurrent_mlflow.errors import PolicyError
from concurrent_mlflow.policy import ExecutionPolicy
from concurrent_mlflow.settings import Paths, make_private, private_file


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """root/ (allowed) with data/, a home/ (private) inside it, and outside/ next to it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    for directory in (root / "data", root / "home", outside):
        directory.mkdir(parents=True)
    (root / "home" / "secret.key").write_text("k")
    (root / "escape").symlink_to(outside)
    (root / "data" / "link").symlink_to(outside)
    return {"root": root, "home": root / "home", "outside": outside}


def server_policy(layout: dict[str, Path], *, local_execution: bool = False) -> ExecutionPolicy:
    return ExecutionPolicy.for_server(
        auth=True, roots=[layout["root"]], local_execution=local_execution, private=[layout["home"]]
    )


def source_dag(uri: str) -> str:
    return f"name: d\nnodes:\n  - {{id: raw, kind: source, uri: '{uri}'}}\n"


@pytest.mark.parametrize(
    "uri",
    [
        "/etc",
        "file:///etc/passwd",
        "file://localhost/etc",
        "../outside",
        "data/../../outside",
        "escape",
        "escape/x",
        "home",
        "home/secret.key",
        "file://{root}/home/secret.key",
        ".",  # contains the data dir
        "{root}/home/../home",
        "zip://x::file:///etc/a.zip",
        "simplecache::file:///etc",
        "memory://x",
        "http://169.254.169.254/latest",
        "~/x",
        "/proc/self/environ",
    ],
)
def test_a_restricted_policy_refuses_paths_outside_the_roots(layout: dict[str, Path], uri: str) -> None:
    uri = uri.format(root=layout["root"])
    with pytest.raises(PolicyError) as refused:
        server_policy(layout).check_dag(parse_dag(source_dag(uri)), layout["root"])
    message = str(refused.value)
    assert "nodes.raw.uri" in message and "execution policy" in message
    assert "--allow-local-root" in message or "does not allow" in message


@pytest.mark.parametrize(
    "uri", ["data", "data/x.csv", "{root}/data", "s3://bucket/k", "gs://b/p", "runs:/abc/out"]
)
def test_a_restricted_policy_allows_roots_object_stores_and_mlflow(layout: dict[str, Path], uri: str) -> None:
    server_policy(layout).check_dag(parse_dag(source_dag(uri.format(root=layout["root"]))), layout["root"])


def test_refusals_do_not_depend_on_whether_the_path_exists(layout: dict[str, Path]) -> None:
    messages = []
    for uri in ("/etc", "/no/such/dir"):
        with pytest.raises(PolicyError) as refused:
            server_policy(layout).check_project_uri(uri, layout["root"])
        messages.append(str(refused.value).replace(uri, "<uri>"))
    assert messages[0] == messages[1]


def test_project_paths_git_file_uris_and_inference_models(layout: dict[str, Path]) -> None:
    policy = server_policy(layout)
    for uri in ("/etc", f"file://{layout['outside']}/repo.git", "escape"):
        with pytest.raises(PolicyError, match=r"nodes\.p\.project"):
            policy.check_dag(
                parse_dag(f"name: d\nnodes:\n  - {{id: p, kind: project, project: '{uri}'}}\n"),
                layout["root"],
            )
    policy.check_project_uri("https://git.example.com/r.git#sub", layout["root"])
    policy.check_project_uri("git@git.example.com:org/r.git", layout["root"])
    with pytest.raises(PolicyError, match=r"nodes\.m\.model"):
        policy.check_dag(
            parse_dag(
                "name: d\nnodes:\n  - {id: s, kind: source, uri: s3://b/k}\n"
                "  - {id: m, kind: inference, model: /etc}\nedges:\n  - {from: s, to: m, input: rows}\n"
            ),
            layout["root"],
        )


def test_base_dir_must_lie_under_a_root(layout: dict[str, Path]) -> None:
    policy = server_policy(layout)
    policy.check_base_dir(layout["root"] / "data")
    policy.check_base_dir(layout["root"])  # holds the data dir, but is never listed itself
    for base_dir in (layout["outside"], layout["root"] / "escape", layout["home"], Path("/")):
        with pytest.raises(PolicyError, match="base_dir"):
            policy.check_base_dir(base_dir)


def test_local_execution_needs_the_operators_flag_or_a_cluster(layout: dict[str, Path]) -> None:
    text = "name: d\nnodes:\n  - {id: work, kind: project, project: data}\n"
    with pytest.raises(PolicyError, match=r"nodes\.work\.cluster") as refused:
        server_policy(layout).check_run(parse_dag(text), layout["root"])
    assert "--allow-local-execution" in str(refused.value) and "set `cluster`" in str(refused.value)
    server_policy(layout, local_execution=True).check_run(parse_dag(text), layout["root"])
    server_policy(layout).check_run(parse_dag(text.replace("data}", "data, cluster: east}")), layout["root"])


def test_a_link_inside_a_listed_source_is_checked(layout: dict[str, Path]) -> None:
    check = server_policy(layout).link_check("nodes.raw.uri")
    assert check is not None
    with pytest.raises(PolicyError, match="symbolic link"):
        check(layout["root"] / "data" / "link")


def test_without_auth_and_roots_everything_is_allowed_as_before(layout: dict[str, Path]) -> None:
    policy = ExecutionPolicy.for_server(auth=False, roots=[], local_execution=False, private=[layout["home"]])
    assert not policy.restricted and policy.local_execution and policy.link_check("x") is None
    policy.check_run(parse_dag(source_dag("/etc")), layout["root"])
    with_roots = ExecutionPolicy.for_server(
        auth=False, roots=[layout["root"]], local_execution=False, private=[]
    )
    assert with_roots.restricted and with_roots.local_execution


def test_the_data_dir_key_and_sqlite_store_are_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    key = home / "secret.key"
    key.write_text("k")
    key.chmod(0o644)
    monkeypatch.setenv("CONCURRENT_HOME", str(home))
    monkeypatch.delenv("CONCURRENT_STORE", raising=False)
    monkeypatch.delenv("CONCURRENT_CACHE", raising=False)
    paths = Paths.from_env()
    make_private(paths)
    for directory in (home, paths.logs, paths.scratch, paths.cache, paths.mlflow):
        assert directory.stat().st_mode & 0o777 == 0o700, directory
    assert key.stat().st_mode & 0o777 == 0o600
    assert private_file(paths.store).stat().st_mode & 0o777 == 0o600
