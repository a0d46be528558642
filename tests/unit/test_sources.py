"""Listing and fetching inputs from local directories and fsspec's in-memory file system; hostile names."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fsspec
import pytest

from concurrent_mlflow.errors import SourceError, UnsafePathError
from concurrent_mlflow.manifest import InputItem
from concurrent_mlflow.sources import fetch, list_source, safe_join, safe_relpath

LEGAL = [
    ("a b/ü.csv", "a b/ü.csv"),
    ("-rf", "-rf"),
    ("a#b?.txt", "a#b?.txt"),
    ("line\nbreak.txt", "line\nbreak.txt"),
    ("100%/x%2e%2e.txt", "100%/x%2e%2e.txt"),
    (".hidden/..data/x..", ".hidden/..data/x.."),
    ("...", "..."),
    ("a//b/./c/", "a/b/c"),
    ("./x", "x"),
    ("back\\slash.txt", "back\\slash.txt"),
]

HOSTILE = [
    ("../../etc/passwd", "has a '..' component"),
    ("/etc/passwd", "is an absolute path"),
    ("a/../../b", "has a '..' component"),
    ("..", "has a '..' component"),
    ("a/..", "has a '..' component"),
    ("a\\..\\..\\b", "has a '..' component"),
    ("..\\x", "has a '..' component"),
    ("\\\\server\\share\\x", "is an absolute path"),
    ("C:\\Windows\\x", "starts with a drive letter"),
    ("c:/x", "starts with a drive letter"),
    ("x\x00y", "contains a NUL byte"),
    ("", "is empty"),
    ("./", "is empty"),
]


def write(root: Path, files: dict[str, str]) -> Path:
    for relpath, text in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def relpaths(items: list[InputItem]) -> list[str]:
    return [item.relpath for item in items]


@pytest.mark.parametrize(("name", "expected"), LEGAL)
def test_safe_relpath_keeps_legal_names(name: str, expected: str) -> None:
    assert safe_relpath(name) == expected


@pytest.mark.parametrize(("name", "reason"), HOSTILE)
def test_safe_relpath_refuses_names_that_could_escape(name: str, reason: str) -> None:
    with pytest.raises(UnsafePathError) as caught:
        safe_relpath(name)
    assert str(caught.value).startswith(f"Refusing file name {name!r}: it {reason}")
    assert "stay inside the task's input directory" in str(caught.value)


def test_safe_join_refuses_a_symlinked_directory_that_leaves_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "sub").symlink_to(outside)
    with pytest.raises(UnsafePathError, match=r"Refusing file name 'sub/x.txt': .* outside .*symbolic link"):
        safe_join(root, "sub/x.txt")
    assert safe_join(root, "inner/x.txt") == root / "inner" / "x.txt"


def test_safe_join_refuses_hostile_names(tmp_path: Path) -> None:
    with pytest.raises(UnsafePathError, match=r"Refusing file name '\.\./x'"):
        safe_join(tmp_path, "../x")


def test_lists_nested_files_sorted_with_hidden_ones_and_no_directories(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"b.csv": "bb", "a/x.csv": "x", "a/deep/y.txt": "yyy", ".hidden": "h"})
    (src / "empty-dir").mkdir()
    items = list_source("src", base_dir=tmp_path)
    assert relpaths(items) == [".hidden", "a/deep/y.txt", "a/x.csv", "b.csv"]
    assert items[1] == InputItem(uri=str(src / "a" / "deep" / "y.txt"), relpath="a/deep/y.txt", size=3)


def test_absolute_and_file_url_sources(tmp_path: Path) -> None:
    src = write(tmp_path / "data set", {"ü.csv": "1"})
    elsewhere = tmp_path / "elsewhere"
    assert relpaths(list_source(str(src), base_dir=elsewhere)) == ["ü.csv"]
    assert relpaths(list_source(f"file://{src}", base_dir=elsewhere)) == ["ü.csv"]


def test_legal_odd_names_round_trip_through_list_and_fetch(tmp_path: Path) -> None:
    names = ["a b/ü.csv", "-rf", "a#b?.txt", "line\nbreak.txt", "100%.txt"]
    src = write(tmp_path / "src", {name: name for name in names})
    items = list_source(str(src), base_dir=tmp_path)
    assert relpaths(items) == sorted(names)
    paths = fetch(items, tmp_path / "dest")
    assert [p.read_text(encoding="utf-8") for p in paths] == sorted(names)


def test_a_single_file_lists_itself(tmp_path: Path) -> None:
    write(tmp_path, {"dir/one.csv": "12345"})
    items = list_source("dir/one.csv", base_dir=tmp_path)
    assert items == [InputItem(uri=str(tmp_path / "dir" / "one.csv"), relpath="one.csv", size=5)]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*.csv", ["a.csv", "sub/b.csv", "sub/deeper/c.csv"]),
        ("**/*.png", ["p.png", "sub/q.png"]),
        ("sub/**/*.csv", ["sub/b.csv", "sub/deeper/c.csv"]),
        ("sub/*.png", ["sub/q.png"]),
        ("?.csv", ["a.csv", "sub/b.csv", "sub/deeper/c.csv"]),
        ("*.parquet", []),
    ],
)
def test_pattern_matches_relpath_or_file_name(tmp_path: Path, pattern: str, expected: list[str]) -> None:
    files = ["a.csv", "p.png", "sub/b.csv", "sub/q.png", "sub/deeper/c.csv", "notes.txt"]
    write(tmp_path / "src", dict.fromkeys(files, "x"))
    assert relpaths(list_source("src", base_dir=tmp_path, pattern=pattern)) == expected


@pytest.mark.timeout(10)  # a net only (work is bounded in test_globs): 2^18 regexes took 40 s here
def test_a_pattern_with_many_dirs_wildcards_lists_at_once(tmp_path: Path) -> None:
    pattern = "".join(f"**/d{i}/" for i in range(18)) + "*.csv"
    deep = "/".join(f"d{i}" for i in range(18))
    files = {f"{deep}/x.csv": "x", f"{deep}/y.txt": "y", "d0/x.csv": "x", f"e/{deep}/more/z.csv": "z"}
    write(tmp_path / "src", files)
    found = list_source("src", base_dir=tmp_path, pattern=pattern)
    assert relpaths(found) == [f"{deep}/x.csv", f"e/{deep}/more/z.csv"]


def test_modification_window_is_half_open_and_naive_times_are_utc(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"old.csv": "o", "mid.csv": "m", "new.csv": "n"})
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    for name, days in (("old.csv", 0), ("mid.csv", 1), ("new.csv", 2)):
        stamp = (t0 + timedelta(days=days)).timestamp()
        os.utime(src / name, (stamp, stamp))
    window = list_source(
        "src",
        base_dir=tmp_path,
        modified_after=t0 + timedelta(days=1),
        modified_before=t0 + timedelta(days=2),
    )
    assert relpaths(window) == ["mid.csv"]
    naive = list_source("src", base_dir=tmp_path, modified_after=datetime(2024, 1, 2))
    assert relpaths(naive) == ["mid.csv", "new.csv"]
    assert list_source("src", base_dir=tmp_path, modified_after=t0 + timedelta(days=9)) == []


def test_an_inverted_window_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "src", {"a": "a"})
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(SourceError, match=r"modified_after .* must be earlier than modified_before"):
        list_source("src", base_dir=tmp_path, modified_after=t0, modified_before=t0)


def test_missing_directory_names_the_source_and_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        list_source("data/in", base_dir=tmp_path)
    assert str(caught.value) == (
        f"Source 'data/in' does not exist: nothing at {tmp_path / 'data' / 'in'} "
        f"(relative paths start at the DAG file's directory, {tmp_path})."
    )


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(
        SourceError, match=r"^Source 'empty' does not exist or is empty: no files found under it\."
    ):
        list_source("empty", base_dir=tmp_path)


def test_symlink_to_a_file_outside_is_listed_and_fetched_as_that_file(tmp_path: Path) -> None:
    secret = write(tmp_path / "outside", {"target.txt": "outside content"}) / "target.txt"
    src = write(tmp_path / "src", {"in.txt": "in"})
    (src / "link.txt").symlink_to(secret)
    items = list_source("src", base_dir=tmp_path)
    assert [(i.relpath, i.size) for i in items] == [("in.txt", 2), ("link.txt", len("outside content"))]
    fetched = fetch(items, tmp_path / "dest")[1]
    assert not fetched.is_symlink()
    assert fetched.read_text() == "outside content"


def test_broken_links_are_skipped_and_looping_links_are_not_followed(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"sub/a.txt": "a"})
    (src / "broken").symlink_to(tmp_path / "nowhere")
    (src / "sub" / "loop").symlink_to(src)
    (src / "alias").symlink_to(src / "sub")
    items = list_source("src", base_dir=tmp_path)
    assert relpaths(items) == ["alias/a.txt", "sub/a.txt"]


def test_a_local_file_with_a_hostile_name_fails_the_listing(tmp_path: Path) -> None:
    name = "..\\..\\evil.txt"
    src = write(tmp_path / "src", {"ok.txt": "ok", name: "evil"})
    with pytest.raises(UnsafePathError) as caught:
        list_source("src", base_dir=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"Source 'src' holds {str(src / name)!r}, whose name cannot be used")
    assert "has a '..' component" in message


def test_fetch_hard_links_local_files_into_nested_directories(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"a.txt": "alpha", "x/y/b.txt": "beta"})
    items = list_source("src", base_dir=tmp_path)
    paths = fetch(items, tmp_path / "dest")
    assert paths == [tmp_path / "dest" / "a.txt", tmp_path / "dest" / "x" / "y" / "b.txt"]
    assert [p.read_text() for p in paths] == ["alpha", "beta"]
    assert paths[1].stat().st_ino == (src / "x" / "y" / "b.txt").stat().st_ino


def test_fetch_copies_when_links_are_off(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"a.txt": "alpha"})
    [path] = fetch(list_source("src", base_dir=tmp_path), tmp_path / "dest", link=False)
    assert path.read_text() == "alpha"
    assert path.stat().st_ino != (src / "a.txt").stat().st_ino


def test_fetch_refuses_two_items_at_one_path_before_writing_anything(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"a.txt": "a", "b.txt": "b"})
    items = [
        InputItem(uri=str(src / "a.txt"), relpath="first.txt", size=1),
        InputItem(uri=str(src / "a.txt"), relpath="same.txt", size=1),
        InputItem(uri=str(src / "b.txt"), relpath="./same.txt", size=1),
    ]
    with pytest.raises(
        SourceError, match=r"two items would both be written to 'same.txt'; refusing to overwrite"
    ):
        fetch(items, tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


def test_fetch_refuses_a_path_that_is_both_file_and_directory(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"a": "a"})
    items = [InputItem(str(src / "a"), "x", 1), InputItem(str(src / "a"), "x/y", 1)]
    with pytest.raises(SourceError, match=r"'x' would have to be both a file and a directory"):
        fetch(items, tmp_path / "dest")


def test_fetch_refuses_hostile_names_and_existing_files(tmp_path: Path) -> None:
    src = write(tmp_path / "src", {"a": "a"})
    dest = tmp_path / "dest"
    with pytest.raises(UnsafePathError, match=r"Refusing file name '\.\./\.\./evil'"):
        fetch([InputItem(str(src / "a"), "ok", 1), InputItem(str(src / "a"), "../../evil", 1)], dest)
    assert list(dest.iterdir()) == []
    write(dest, {"there": "old"})
    with pytest.raises(SourceError, match=r"there already exists; refusing to overwrite it"):
        fetch([InputItem(str(src / "a"), "there", 1)], dest)
    assert (dest / "there").read_text() == "old"


def test_fetch_names_the_item_that_failed_and_why(tmp_path: Path) -> None:
    gone = tmp_path / "gone.txt"
    with pytest.raises(SourceError) as caught:
        fetch([InputItem(str(gone), "gone.txt", 1)], tmp_path / "dest")
    assert str(caught.value) == f"Could not fetch {str(gone)!r} to 'gone.txt': No such file or directory"
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_unknown_schemes_are_named(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"Cannot open 'nope://b/x': Protocol not known: nope"):
        list_source("nope://b/x", base_dir=tmp_path)


@pytest.fixture
def memory_root() -> Iterator[str]:
    fs = fsspec.filesystem("memory")
    root = f"/test-{uuid.uuid4().hex}"
    yield root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_memory_filesystem_list_and_fetch(memory_root: str, tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe(
        {
            f"{memory_root}/in/a#b?.txt": b"one",
            f"{memory_root}/in/sub/c.csv": b"three",
            f"{memory_root}/x": b"",
        }
    )
    items = list_source(f"memory://{memory_root}/in", base_dir=tmp_path)
    assert items == [
        InputItem(uri=f"memory://{memory_root}/in/a#b?.txt", relpath="a#b?.txt", size=3),
        InputItem(uri=f"memory://{memory_root}/in/sub/c.csv", relpath="sub/c.csv", size=5),
    ]
    assert list_source(f"memory://{memory_root}/in", base_dir=tmp_path, pattern="*.csv") == items[1:]
    recent = list_source(
        f"memory://{memory_root}/in",
        base_dir=tmp_path,
        modified_after=datetime.now(UTC) + timedelta(seconds=1),
    )
    assert recent == []
    paths = fetch(items, tmp_path / "dest", max_workers=2)
    assert [p.read_bytes() for p in paths] == [b"one", b"three"]


def test_memory_filesystem_missing_location(memory_root: str, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=rf"^Source 'memory://{memory_root}/no' does not exist or is empty"):
        list_source(f"memory://{memory_root}/no", base_dir=tmp_path)


def test_a_remote_fetch_failure_names_the_url(memory_root: str, tmp_path: Path) -> None:
    uri = f"memory://{memory_root}/missing.txt"
    with pytest.raises(SourceError, match="^" + re.escape(f"Could not fetch '{uri}' to 'missing.txt': ")):
        fetch([InputItem(uri, "missing.txt", 1)], tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []
