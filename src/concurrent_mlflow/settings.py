"""Where this machine keeps things: one data dir (`CONCURRENT_HOME`, default ~/.concurrent-mlflow).

The data dir holds the store, the key that decrypts every registered kubeconfig, and every task's log, so
it is private to the user the server runs as: directories 0700, the key and SQLite files 0600, and looser
modes left by an older version are tightened at start-up (and logged).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
log = logging.getLogger("concurrent.settings")


@dataclass(frozen=True)
class Paths:
    home: Path

    @classmethod
    def from_env(cls) -> Paths:
        return cls(Path(os.environ.get("CONCURRENT_HOME", Path.home() / ".concurrent-mlflow")).expanduser())

    @property
    def store(self) -> Path:
        return self.home / "concurrent.db"

    @property
    def store_url(self) -> str:
        """`CONCURRENT_STORE` (a SQLAlchemy URL: postgresql://...) or SQLite under the data dir."""
        return os.environ.get("CONCURRENT_STORE") or str(self.store)

    @property
    def cache(self) -> Path:
        return Path(os.environ.get("CONCURRENT_CACHE", self.home / "cache"))

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def scratch(self) -> Path:
        return self.home / "scratch"

    @property
    def mlflow(self) -> Path:
        return self.home / "mlflow"

    def sqlite_files(self) -> list[Path]:
        """The SQLite store and the files SQLite and our migration lock keep beside it; [] for PostgreSQL."""
        url = self.store_url
        if "://" in url:
            return []
        return [Path(url + suffix) for suffix in ("", "-wal", "-shm", "-journal", ".migrate.lock")]

    def private(self) -> list[Path]:
        """What no DAG may read through the server: the data dir, the cache and the store."""
        return [self.home, self.cache, *self.sqlite_files()]


def is_loopback(host: str) -> bool:
    """True for localhost and 127.0.0.0/8 or ::1: where auth is off by default."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_private(paths: Paths) -> None:
    """The data dir and what the server keeps in it, for the server's user alone (see the module doc)."""
    for directory in (paths.home, paths.logs, paths.scratch, paths.mlflow, paths.cache):
        private_dir(directory)
    for file in (paths.home / "secret.key", *paths.sqlite_files()):
        tighten(file, PRIVATE_FILE)


def private_dir(path: Path) -> Path:
    """Create `path` (mode 0700) if missing, or take group and other bits away from an existing one."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    tighten(path, PRIVATE_DIR)
    return path


def private_file(path: Path) -> Path:
    """Create an empty `path` with mode 0600 if missing (never a moment with a looser mode), else tighten."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        tighten(path, PRIVATE_FILE)
    return path


def tighten(path: Path, mode: int) -> None:
    """Drop the bits of `path`'s mode that `mode` does not grant; log what changed. Missing: nothing to do."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if not current & ~mode:
        return
    try:
        path.chmod(current & mode)
    except OSError as exc:
        log.warning("%s has mode %o (others may read it) and cannot be tightened: %s", path, current, exc)
        return
    log.warning("tightened %s from mode %o to %o: only this user may read it", path, current, current & mode)
