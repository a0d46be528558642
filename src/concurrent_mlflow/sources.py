"""Listing and fetching task inputs: local directories, fsspec URLs (s3://, gs://, ...) and MLflow artifacts.

The control plane lists a source once (`list_source`) to build partition manifests; each task then fetches
only its own items (`fetch`) into its input directory. File names come from places we do not control (a
bucket anyone may write to, an upstream task's outputs), so every relative path passes `safe_relpath` /
`safe_join` before anything is written: a name that could escape the input directory is an error that names
the file, never a silent skip.

Symbolic links inside a local source are followed: a link to a file is listed as that file (the target's
size, mtime and, when fetched, content); a link to a directory is walked like a directory unless it loops
back to its own ancestor. The DAG author already chooses which path to list, so following links grants
nothing new; what keeps a task safe is that names are checked and fetched files are hard links or copies,
never symlinks. Broken links, sockets, FIFOs and devices are skipped. Remote endpoints and credentials come
from the environment (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...), read by fsspec's backends, not here.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from concurrent_mlflow.errors import SourceError, UnsafePathError
from concurrent_mlflow.globs import compile_glob
from concurrent_mlflow.manifest import InputItem

if TYPE_CHECKING:  # imported where used: validating a DAG (which imports the planner) need not pay for it
    import fsspec

log = logging.getLogger(__name__)

MLFLOW_SCHEMES = ("runs:/", "models:/", "mlflow-artifacts:/")
_TIME_KEYS = ("mtime", "LastModified", "last_modified", "updated", "created")
_DRIVE = re.compile(r"[A-Za-z]:")
_SEPARATORS = re.compile(r"[/\\]")


class _Found(NamedTuple):
    """A file seen while listing, before its name is checked and filters apply."""

    uri: str
    relpath: str
    size: int
    mtime: float | None


# -- names -------------------------------------------------------------------------------------------------


def safe_relpath(relpath: str) -> str:
    """`relpath` in POSIX form without '.' or empty parts; UnsafePathError if it could leave its directory.

    Backslashes stay part of the name (legal on POSIX), but a '..' between backslashes is refused too, so a
    name that is harmless here cannot become an escape on a host that treats '\\' as a separator.
    """
    reason = _unsafe_reason(relpath)
    parts = [part for part in relpath.split("/") if part not in ("", ".")]
    if reason is None and not parts:
        reason = "is empty (nothing but '/' and '.')"
    if reason is not None:
        raise UnsafePathError(
            f"Refusing file name {relpath!r}: it {reason}. Input file names must be relative paths that stay "
            "inside the task's input directory; rename the file."
        )
    return "/".join(parts)


def _unsafe_reason(relpath: str) -> str | None:
    if "\x00" in relpath:
        return "contains a NUL byte"
    if relpath.startswith(("/", "\\")):
        return "is an absolute path"
    if _DRIVE.match(relpath):
        return "starts with a drive letter"
    if ".." in _SEPARATORS.split(relpath):
        return "has a '..' component, which climbs out of the directory"
    return None


def safe_join(root: Path, relpath: str) -> Path:
    """`root / safe_relpath(relpath)`, refused if symbolic links already on disk lead it outside `root`."""
    path = root / safe_relpath(relpath)
    _check_inside(relpath, path, root.resolve())
    return path


def _check_inside(relpath: str, path: Path, real_root: Path) -> None:
    resolved = path.resolve()
    if not resolved.is_relative_to(real_root):
        raise UnsafePathError(
            f"Refusing file name {relpath!r}: {path} resolves to {resolved}, outside {real_root}, because a "
            "symbolic link on the way points elsewhere. Remove the link from that directory."
        )


# -- listing -----------------------------------------------------------------------------------------------


def list_source(
    uri: str,
    *,
    base_dir: Path,
    pattern: str | None = None,
    modified_after: datetime | None = None,
    modified_before: datetime | None = None,
    check_link: Callable[[Path], None] | None = None,
) -> list[InputItem]:
    """Every file under `uri` (or `uri` itself if it is a file), sorted by relpath.

    `pattern` is an fnmatch glob tried against the relpath and the file name ('**/' may also match nothing);
    the time window keeps files with `modified_after <= mtime < modified_before` (naive datetimes are UTC).
    A location with no files at all is an error; filters that leave nothing return an empty list.
    `check_link` is called on every symbolic link met inside a local directory before it is followed (a
    server's execution policy raises there when a link leads out of the directories it allows).
    """
    window = _window(uri, modified_after, modified_before)
    if uri.startswith(MLFLOW_SCHEMES):
        found = _list_mlflow(uri)
    else:
        found = _list_local(uri, base_dir, check_link) if _is_local(uri) else _list_fsspec(uri)
    if not found:
        raise SourceError(f"Source {uri!r} does not exist or is empty: no files found under it.")
    matches = _matcher(pattern)
    items: list[InputItem] = []
    for entry in found:
        relpath = _checked_relpath(uri, entry)
        if matches(relpath) and window(entry):
            items.append(InputItem(uri=entry.uri, relpath=relpath, size=entry.size))
    items.sort(key=lambda item: item.relpath)
    _check_layout(f"Source {uri!r}", [item.relpath for item in items])
    return items


def open_filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem for `uri` and the path within it; SourceError if the scheme is unknown."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except ImportError as exc:
        raise SourceError(
            f"Cannot open {uri!r}: {exc} (install the package that provides this scheme)."
        ) from exc
    except ValueError as exc:
        raise SourceError(f"Cannot open {uri!r}: {exc}.") from exc
    return fs, str(path)


def local_path(uri: str, base_dir: Path) -> Path | None:
    """The path a local source `uri` names (relative to `base_dir`, `~` expanded, links not yet resolved);
    None for an MLflow or remote URI. The one place that decides which source URIs are local files."""
    if uri.startswith(MLFLOW_SCHEMES) or not _is_local(uri):
        return None
    return base_dir / _local_file(uri).expanduser()


def _is_local(uri: str) -> bool:
    import fsspec

    protocol, _ = fsspec.core.split_protocol(uri)
    return protocol in (None, "file", "local")


def _local_file(uri: str) -> Path:
    import fsspec

    protocol, path = fsspec.core.split_protocol(uri)
    if protocol is not None and path.startswith("localhost/"):
        path = path.removeprefix("localhost")
    return Path(path)


def _list_local(uri: str, base_dir: Path, check_link: Callable[[Path], None] | None) -> list[_Found]:
    named = local_path(uri, base_dir)
    assert named is not None
    root = named.resolve()
    try:
        info = root.stat()
    except FileNotFoundError:
        raise SourceError(
            f"Source {uri!r} does not exist: nothing at {root} (relative paths start at the DAG file's "
            f"directory, {base_dir})."
        ) from None
    except OSError as exc:
        raise SourceError(f"Cannot read source {uri!r} at {root}: {exc.strerror}.") from exc
    if stat.S_ISDIR(info.st_mode):
        return _scan(uri, root, check_link)
    if not stat.S_ISREG(info.st_mode):
        raise SourceError(f"Source {uri!r} ({root}) is neither a regular file nor a directory.")
    return [_Found(str(root), root.name, info.st_size, info.st_mtime)]


def _scan(uri: str, root: Path, check_link: Callable[[Path], None] | None) -> list[_Found]:
    """Walk `root` with os.scandir (one stat per file), following links except those that loop."""
    found: list[_Found] = []
    root_stat = root.stat()
    stack = [(str(root), "", frozenset({(root_stat.st_dev, root_stat.st_ino)}))]
    while stack:
        directory, prefix, ancestors = stack.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if check_link is not None and entry.is_symlink():
                        check_link(Path(entry.path))
                    _visit(entry, prefix, ancestors, found, stack)
        except OSError as exc:
            raise SourceError(
                f"Cannot list {exc.filename or directory} in source {uri!r}: {exc.strerror}."
            ) from exc
    return found


_Pending = list[tuple[str, str, frozenset[tuple[int, int]]]]


def _visit(
    entry: os.DirEntry[str],
    prefix: str,
    ancestors: frozenset[tuple[int, int]],
    found: list[_Found],
    stack: _Pending,
) -> None:
    relpath = prefix + entry.name
    try:
        if entry.is_dir():
            info = entry.stat()
            key = (info.st_dev, info.st_ino)
            if key in ancestors:
                log.warning("skipping %s: a symbolic link that loops back to its own parent", entry.path)
                return
            stack.append((entry.path, relpath + "/", ancestors | {key}))
        elif entry.is_file():
            info = entry.stat()
            found.append(_Found(entry.path, relpath, info.st_size, info.st_mtime))
    except FileNotFoundError:
        return  # deleted while we listed: it is not there


def _list_fsspec(uri: str) -> list[_Found]:
    fs, root = open_filesystem(uri)
    try:
        infos: dict[str, dict[str, Any]] = fs.find(root, detail=True, withdirs=False)
    except FileNotFoundError:
        return []
    except Exception as exc:  # every backend raises its own kinds; all of them mean "cannot list"
        raise SourceError(f"Cannot list source {uri!r}: {type(exc).__name__}: {exc}") from exc
    root = root.rstrip("/")
    return [
        _remote_entry(fs, uri, root, name, info)
        for name, info in infos.items()
        if info.get("type", "file") == "file" and not name.endswith("/")  # "dir/" keys are folder markers
    ]


def _list_mlflow(uri: str) -> list[_Found]:
    """Every file under an MLflow artifact URI (`runs:/<id>/path`, `models:/name/1`), walked breadth-first."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    found: list[_Found] = []
    pending = [""]
    root = uri.rstrip("/")
    while pending:
        prefix = pending.pop()
        try:
            entries = mlflow.artifacts.list_artifacts(artifact_uri=f"{root}/{prefix}" if prefix else root)
        except MlflowException as exc:
            raise SourceError(f"Cannot list source {uri!r}: {exc.message}") from exc
        for entry in entries:
            relpath = (
                f"{prefix}/{posixpath.basename(entry.path)}" if prefix else posixpath.basename(entry.path)
            )
            if entry.is_dir:
                pending.append(relpath)
            else:
                found.append(_Found(f"{root}/{relpath}", relpath, int(entry.file_size or 0), None))
    return found


def _remote_entry(fs: Any, uri: str, root: str, name: str, info: dict[str, Any]) -> _Found:
    if name == root:
        relpath = posixpath.basename(name)
    elif name.startswith(root + "/"):
        relpath = name[len(root) + 1 :]
    else:
        raise SourceError(f"Listing source {uri!r} returned {name!r}, which is not below {root!r}.")
    file_uri = str(fs.unstrip_protocol(name))
    if "::" in name:
        raise SourceError(f"Source {uri!r} holds {file_uri!r}; fsspec cannot open names containing '::'.")
    size = info.get("size")
    if size is None:
        size = fs.info(name).get("size") or 0
    return _Found(file_uri, relpath, int(size), _info_mtime(info))


def _info_mtime(info: dict[str, Any]) -> float | None:
    for key in _TIME_KEYS:
        value = info.get(key)
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                continue
        if isinstance(value, datetime):
            return _utc(value).timestamp()
        if isinstance(value, int | float):
            return float(value)
    return None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _checked_relpath(uri: str, entry: _Found) -> str:
    try:
        return safe_relpath(entry.relpath)
    except UnsafePathError as exc:
        raise UnsafePathError(
            f"Source {uri!r} holds {entry.uri!r}, whose name cannot be used: {exc}"
        ) from exc


# -- filters -----------------------------------------------------------------------------------------------


def _matcher(pattern: str | None) -> Callable[[str], bool]:
    if not pattern:
        return lambda _relpath: True
    glob = compile_glob(pattern)

    def matches(relpath: str) -> bool:
        return glob(relpath) or glob(relpath.rpartition("/")[2])

    return matches


def _window(uri: str, after: datetime | None, before: datetime | None) -> Callable[[_Found], bool]:
    low = None if after is None else _utc(after).timestamp()
    high = None if before is None else _utc(before).timestamp()
    if low is not None and high is not None and low >= high:
        raise SourceError(
            f"Source {uri!r}: modified_after ({after}) must be earlier than modified_before ({before})."
        )

    def inside(entry: _Found) -> bool:
        if low is None and high is None:
            return True
        if entry.mtime is None:
            raise SourceError(
                f"Cannot filter source {uri!r} by modification time: no time is reported for {entry.uri!r}."
            )
        return (low is None or entry.mtime >= low) and (high is None or entry.mtime < high)

    return inside


def _check_layout(what: str, relpaths: Iterable[str]) -> None:
    """Refuse two files at one path, and a path that would have to be both a file and a directory."""
    files: set[str] = set()
    for relpath in relpaths:
        if relpath in files:
            raise SourceError(
                f"{what}: two items would both be written to {relpath!r}; refusing to overwrite."
            )
        files.add(relpath)
    dirs: set[str] = set()
    for relpath in files:
        parent = posixpath.dirname(relpath)
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = posixpath.dirname(parent)
    clash = sorted(files & dirs)
    if clash:
        raise SourceError(f"{what}: {clash[0]!r} would have to be both a file and a directory.")


# -- fetching ----------------------------------------------------------------------------------------------


def fetch(
    items: Sequence[InputItem], dest_root: Path, *, max_workers: int = 8, link: bool = True
) -> list[Path]:
    """Put each item at `safe_join(dest_root, item.relpath)`; returns those paths in item order.

    All names are checked, and existing files refused, before anything is fetched. Local files are hard
    linked when `link` is set and the file system allows it, else copied: a hard link shares the source's
    bytes, so task code must not modify inputs in place. Remote and MLflow files download on a thread pool.
    """
    dest_root.mkdir(parents=True, exist_ok=True)
    targets = _targets(items, dest_root)
    pairs = zip(items, targets, strict=True)
    pending = [(item, target) for item, target in pairs if not (link and _hard_link(item.uri, target))]
    if pending:
        _download(pending, dest_root.parent, max_workers)
    return targets


def _hard_link(uri: str, target: Path) -> bool:
    """Link a local file into place; False if it is not local or cannot be linked (it is then copied)."""
    if not _is_local(uri):
        return False
    source = _local_file(uri)
    try:
        # os.link() links a symlink itself on Linux; link its target, so the task never holds a symlink
        os.link(source.resolve() if source.is_symlink() else source, target)
    except OSError:
        return False  # another file system, links not allowed, or missing: the copy reports why
    return True


def _download(pending: list[tuple[InputItem, Path]], staging_parent: Path, max_workers: int) -> None:
    staging: Path | None = None
    if any(item.uri.startswith(MLFLOW_SCHEMES) for item, _ in pending):
        staging = Path(tempfile.mkdtemp(prefix=".concurrent-fetch-", dir=staging_parent))
    try:
        with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="fetch") as pool:
            futures = [pool.submit(_fetch_one, item, target, staging) for item, target in pending]
            _wait_all(pool, futures)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _targets(items: Sequence[InputItem], dest_root: Path) -> list[Path]:
    """Where each item goes; checks names, links and existing files (each directory resolved once)."""
    relpaths = [safe_relpath(item.relpath) for item in items]
    _check_layout(f"Fetching {len(items)} item(s) into {dest_root}", relpaths)
    targets = [dest_root / relpath for relpath in relpaths]
    real_root = dest_root.resolve()
    parents = {target.parent: item.relpath for item, target in zip(items, targets, strict=True)}
    for parent, relpath in parents.items():
        _check_inside(relpath, parent, real_root)
    for item, target in zip(items, targets, strict=True):
        if os.path.lexists(target):
            raise SourceError(
                f"Cannot fetch {item.uri!r}: {target} already exists; refusing to overwrite it."
            )
    for parent in sorted(parents):
        parent.mkdir(parents=True, exist_ok=True)
    return targets


def _wait_all(pool: ThreadPoolExecutor, futures: list[Future[None]]) -> None:
    try:
        for future in futures:
            future.result()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise


def _fetch_one(item: InputItem, target: Path, staging: Path | None) -> None:
    try:
        if item.uri.startswith(MLFLOW_SCHEMES):
            assert staging is not None
            _fetch_mlflow(item.uri, target, staging)
        elif _is_local(item.uri):
            shutil.copyfile(_local_file(item.uri), target)
        else:
            _fetch_remote(item.uri, target)
    except Exception as exc:
        target.unlink(missing_ok=True)
        cause = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise SourceError(f"Could not fetch {item.uri!r} to {item.relpath!r}: {cause}") from exc


def _fetch_remote(uri: str, target: Path) -> None:
    fs, path = open_filesystem(uri)
    fs.get_file(path, str(target))


def _fetch_mlflow(uri: str, target: Path, staging: Path) -> None:
    from mlflow import artifacts  # imported here: listing and local fetches should not pay for MLflow

    scratch = tempfile.mkdtemp(dir=staging)
    local = Path(artifacts.download_artifacts(artifact_uri=uri, dst_path=scratch))
    if not local.is_file():
        raise SourceError("it is a directory of artifacts, not one file")
    shutil.move(local, target)
