"""Local tasks as a separate unprivileged OS user (`concurrent server --task-user USER`).

A project's own code may open any path it likes, so the only way to keep it from the server's data dir
(`secret.key`, which decrypts every registered kubeconfig, the SQLite store, every task's log) is to run it
as a user that cannot read them. With a task user, the local executor starts every worker as that user: its
uid, its primary gid, no supplementary groups, and an environment without the server's own settings
(`CONCURRENT_*` such as `CONCURRENT_SECRET_KEY` and `CONCURRENT_STORE`). A spawned worker is switched by
`subprocess.Popen(user=, group=, extra_groups=[])`; a forked one drops privileges itself (`drop`) after
the fork server has opened its log and before any task code runs. The server opens each log and writes
each pid and exit file; the worker only writes to the log it is handed.

The task user's writable places live in `<task home>/<user>` (`CONCURRENT_TASK_HOME`, default
/var/lib/concurrent-mlflow/tasks): `home` (HOME), `cache` (fetched projects, MLflow's environments, uv's
cache and Pythons) and `scratch` (each task's inputs and outputs). Only `<user>` itself is made by the
server (in a directory only root may write); what is inside is made by the task user, so the server never
follows a link the task user planted. Every task of the server shares these: tasks trust each other (one
may change the environment another reuses, or signal it), not the server.

At start-up `prepare` checks the user (exists, is not root, and this server can switch to it) and runs a
probe as that user which must be able to run this Python and must be refused the data dir; any failure
stops the server with a message that says what to fix.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from concurrent_mlflow.errors import ExecutorError

TASK_USER_ENV = "CONCURRENT_TASK_USER"
TASK_HOME_ENV = "CONCURRENT_TASK_HOME"
DEFAULT_TASK_HOME = Path("/var/lib/concurrent-mlflow/tasks")
PROBE_TIMEOUT_SECONDS = 60.0
PR_SET_DUMPABLE = 4  # <linux/prctl.h>
# Run by `probe` as the task user: make its dirs, be refused every private path, say who it is.
_PROBE = """
import os, sys
for d in sys.argv[2].split(os.pathsep):
    os.makedirs(d, mode=0o700, exist_ok=True)
for p in sys.argv[1].split(os.pathsep):
    try:
        os.listdir(p) if os.path.isdir(p) else open(p, "rb").close()
    except (PermissionError, FileNotFoundError):
        continue
    sys.exit("it can read " + p)
import concurrent_mlflow
print(os.getuid(), os.getgid(), os.getgroups())
"""


@dataclass(frozen=True)
class TaskUser:
    name: str
    uid: int
    gid: int
    root: Path
    """`<task home>/<name>`: owned by the task user, the only place the server gives it to write."""

    @classmethod
    def lookup(cls, name: str, task_home: Path | None = None) -> TaskUser:
        """The user named `name`, checked: it exists, it is not root, and this server may switch to it."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ExecutorError(
                f"Task user {name!r} does not exist; create it (useradd --system --no-create-home {name}) "
                "or name another with --task-user."
            ) from None
        if entry.pw_uid == 0 or entry.pw_gid == 0:
            raise ExecutorError(f"Task user {name!r} is root (uid or gid 0); name an unprivileged user.")
        if os.geteuid() != 0:
            raise ExecutorError(
                f"--task-user {name} needs a server running as root (it runs as uid {os.geteuid()}, which "
                "cannot switch users); start it as root, or leave out --task-user and local execution."
            )
        home = task_home or Path(os.environ.get(TASK_HOME_ENV) or DEFAULT_TASK_HOME)
        return cls(name, entry.pw_uid, entry.pw_gid, home / name)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def scratch(self) -> Path:
        return self.root / "scratch"

    def env(self, inherited: Mapping[str, str]) -> dict[str, str]:
        """A task's environment: the server's without its own settings, with HOME and caches of its own."""
        return {**without_server_settings(inherited), **self.places()}

    def places(self) -> dict[str, str]:
        """The variables that point a task at this user's own home, caches and scratch."""
        return {
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "CONCURRENT_CACHE": str(self.cache / "concurrent"),
            "CONCURRENT_SCRATCH": str(self.scratch),
            "MLFLOW_ENV_ROOT": str(self.cache / "envs"),
            "UV_CACHE_DIR": str(self.cache / "uv"),
            "UV_PYTHON_INSTALL_DIR": str(self.cache / "python"),
            "XDG_CACHE_HOME": str(self.cache / "xdg"),
        }

    def prepare(self, private: Sequence[Path]) -> None:
        """Make `root` for the task user; prove, as that user, that it works and `private` is out of reach."""
        _own_dir(self.root.parent, 0, 0o755)
        _own_dir(self.root, self.uid, 0o700, gid=self.gid)
        self.probe(private)

    def probe(self, private: Sequence[Path]) -> None:
        dirs = os.pathsep.join(str(d) for d in (self.home, self.cache, self.scratch))
        hidden = os.pathsep.join(str(p) for p in private)
        try:
            done = subprocess.run(
                [sys.executable, "-c", _PROBE, hidden, dirs],
                user=self.uid,
                group=self.gid,
                extra_groups=[],
                cwd=self.root,
                env=self.env(os.environ),
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise self._unusable(str(exc)) from exc
        if done.returncode != 0:
            raise self._unusable((done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1])
        if done.stdout.split() != [str(self.uid), str(self.gid), "[]"]:
            raise self._unusable(f"it ran as uid, gid, groups {done.stdout.strip()}")

    def drop(self) -> None:
        """In a forked child of a root process: become this user for good, or raise (never run as root)."""
        os.setgroups([])
        os.setgid(self.gid)
        os.setuid(self.uid)
        ids = (os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups())
        if ids != (self.uid, self.uid, self.gid, self.gid, []):
            raise PermissionError(f"could not become task user {self.name!r}: uid/euid/gid/egid/groups {ids}")
        # Changing uid made the process non-dumpable: its /proc/self files became root's, so it could not
        # read its own /proc/self/environ, as a spawned task can. Same uid, same trust: undo that.
        if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")

    def _unusable(self, why: str) -> ExecutorError:
        return ExecutorError(
            f"Task user {self.name!r} cannot run local tasks safely: {why}. Its Python ({sys.executable}) "
            "and this package must be readable by it (not under a private home such as /root), it must be "
            f"refused the data dir, and {self.root} must be writable by it; see 'Security model' in the "
            "README."
        )


def without_server_settings(inherited: Mapping[str, str]) -> dict[str, str]:
    """`inherited` without the server's `CONCURRENT_*` settings (the secret key, the store's URL, ...)."""
    return {k: v for k, v in inherited.items() if not k.startswith("CONCURRENT_")}


def _own_dir(path: Path, uid: int, mode: int, *, gid: int = 0) -> None:
    """Make `path` (if missing) owned by uid:gid with `mode`; refuse one that is a link or someone else's."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        if (parent := path.parent.stat()).st_uid != 0 or parent.st_mode & 0o022:
            raise ExecutorError(f"{path.parent} must be owned by root and writable by no one else.")
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
