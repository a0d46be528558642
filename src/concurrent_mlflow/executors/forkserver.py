"""A warm parent for local workers: imports MLflow once, then forks one child per task.

A fresh `python -m concurrent_mlflow.worker` spends seconds importing MLflow before its task does anything;
a fork of a process that already imported it starts in milliseconds. Forking is only safe from a process
with one thread: a child of a multi-threaded parent inherits locks held by threads that do not exist in it
(OpenBLAS's pool and pyarrow's jemalloc background thread made workers die with SIGSEGV). So the fork
server starts with the variables in `forksafety.FORK_SAFE_ENV`, checks after its imports and before every fork
that it has exactly one thread, and refuses to start or to fork otherwise (the executor then spawns).
It listens on an abstract Unix socket, and for each request forks a child that:
  - becomes the leader of its own session (a cancel kills its whole tree, as with a spawned worker);
  - writes `<log>.pid` (pid and kernel start time) first, so a restarted engine can find it;
  - redirects stdout/stderr to the attempt's log, turns on faulthandler there (a native crash leaves its
    Python stack in the log), gives the libraries loaded before the fork the thread counts the task's own
    environment asks for;
  - with a task user (task_user.py), drops to it for good (groups, gid, uid, checked) and moves to its home;
  - and runs the requested module as `__main__`.
The fork server reaps a child as soon as it ends (SIGCHLD wakes its loop through `signal.set_wakeup_fd`, no
poll), writes `<log>.exit` with the exit code (negative: killed by that signal), the record a restarted engine
reads, and then tells the engine at once with a line `exit PID CODE` on its stdout, which a thread of
`ForkServer` reads and passes to `on_exit`: the engine wakes on a task's end instead of polling for it.
When its own parent (the engine) dies it takes no new work but keeps reaping until its last child has ended,
so a task outlives an engine crash and its exit code is still recorded for the next engine.
The engine starts it in the background as it opens (`ForkServer.start`), so its imports (seconds) overlap
the run's planning instead of delaying the first task.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import importlib
import json
import logging
import os
import random
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from concurrent_mlflow.errors import ExecutorError
from concurrent_mlflow.executors import forksafety
from concurrent_mlflow.executors.task_user import TaskUser

log = logging.getLogger("concurrent.executor")

# What a worker imports anyway, and what task code mostly imports (pandas, pyarrow, pyfunc models): importing
# it here once is the whole point. Each is checked to start no thread (test_forksafety.py).
WARM_MODULES = (
    "mlflow",
    "mlflow.projects",
    "mlflow.pyfunc",
    "pandas",
    "pyarrow",
    "concurrent_mlflow.worker.main",
    "concurrent_mlflow.worker.project_run",
    "threadpoolctl",
    # What every task imported on its own before (25 ms for fsspec alone): local inputs' URIs are read with
    # fsspec, and the first MLflow call loads the request-header providers and `netrc`.
    "fsspec",
    "mlflow.tracking.request_header.registry",
    "netrc",
)
READY = b"ready\n"
UNSAFE = b"unsafe: "  # then why, on the same line
EXIT = b"exit "  # then the pid and its exit code: one line per reaped child, to the engine
START_TIMEOUT_SECONDS = 120.0
WARM_TIMEOUT_SECONDS = 600.0  # a warm server's hook may download a large model
# Only a safety net: children are reaped on SIGCHLD. This is how often the loop also checks that its parent
# (the engine) is still there.
PARENT_CHECK_SECONDS = 1.0
# Where the fork server's lines to the engine go: its stdout, a pipe the engine reads. A warm server (forked
# from it, its own stdout the log) keeps a copy, so its children's exits reach the engine the same way.
_engine_fd = 1


# -- the engine's side --------------------------------------------------------------------------------------
class ForkUnsafeError(ExecutorError):
    """The fork server has (or would have) more than one thread: the caller must spawn instead."""


ExitCallback = Callable[[int, int], None]


class ForkServer:
    """Starts the fork server (in the background with `start`, else on first use) and asks it for children;
    `on_exit(pid, code)` is called, from a reader thread, as each child is reaped."""

    def __init__(
        self,
        extra_modules: tuple[str, ...] = (),
        environ: Mapping[str, str] | None = None,
        on_exit: ExitCallback | None = None,
    ) -> None:
        self.name = f"concurrent-forkserver-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.extra_modules = extra_modules  # imported after WARM_MODULES (tests use it to start a thread)
        self.environ = dict(os.environ if environ is None else environ)  # every child's memory holds it
        self.on_exit = on_exit
        self._process: subprocess.Popen[bytes] | None = None
        self._forked: tuple[int, int] | None = None  # a warm server forked by another: pid, start time
        self._starting = threading.Lock()  # the engine launches from several threads
        self._start_error: BaseException | None = None  # from a background start: raised by the next spawn

    @property
    def pid(self) -> int | None:
        if self._forked:
            return self._forked[0]
        return self._process.pid if self._process else None

    def spawn(
        self,
        module: str,
        args: list[str],
        env: dict[str, str],
        log_path: Path,
        user: TaskUser | None = None,
        stdin: Path | None = None,
    ) -> int:
        """Fork a child running `python -m module args` with exactly `env` (as `user`, if given) and the
        file `stdin` (opened before it becomes `user`) as its standard input; its pid."""
        self._ensure_started()
        request: dict[str, Any] = {
            "module": module,
            "args": args,
            "env": env,
            "log": str(log_path),
            "cwd": str(user.home if user else Path.cwd()),
        }
        if stdin is not None:
            request["stdin"] = str(stdin)
        if user:
            request["user"] = {"name": user.name, "uid": user.uid, "gid": user.gid, "root": str(user.root)}
        return int(self._ask(request)["pid"])

    def warm(self, hook: str, argument: str, env: dict[str, str], log_path: Path) -> ForkServer:
        """A fork server forked from this one (so it starts without importing anything) that, with `env`,
        calls `hook` ("module:function") with `argument` before it serves, e.g. to load a model that its
        tasks then share. Returns once it is ready; raises ForkUnsafeError if the hook left a thread
        behind, ExecutorError if the hook failed (the reason is in `log_path`)."""
        self._ensure_started()
        warm = ForkServer(environ=env)
        request = {"serve": warm.name, "hook": hook, "argument": argument, "env": env, "log": str(log_path)}
        pid = int(self._ask({**request, "cwd": str(Path.cwd())})["pid"])
        recorded = read_pid_file(log_path)
        warm._forked = (pid, recorded[1] if recorded and recorded[0] == pid else start_time(pid) or 0)
        try:
            warm._ask({"ping": True}, timeout=WARM_TIMEOUT_SECONDS)  # answered once the hook has run
        except BaseException:
            warm.close()
            raise
        return warm

    def _ask(self, request: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(_abstract(self.name))
            conn.sendall(json.dumps(request).encode() + b"\n")
            line = _read_line(conn)
        if not line:
            raise ExecutorError(f"The fork server {self.name} closed the connection without answering.")
        reply: dict[str, Any] = json.loads(line)
        if "unsafe" in reply:
            raise ForkUnsafeError(f"The fork server will not fork: {reply['unsafe']}")
        if "error" in reply:
            raise ExecutorError(f"The fork server could not start the task: {reply['error']}")
        return reply

    def start(self) -> None:
        """Start the fork server in a background thread now, so its imports are done by the first task
        (`spawn` waits for it if not). Does nothing if it runs or is starting."""
        if self._process is None and not self._starting.locked():
            # A daemon: a command that fails before its first task exits at once (the fork server follows).
            starter = threading.Thread(target=self._start_in_background, name="concurrent-forkserver-start")
            starter.daemon = True
            starter.start()

    def close(self) -> None:
        if self._forked is not None:
            if running(*self._forked):  # the same process, not a reused pid
                os.kill(self._forked[0], signal.SIGTERM)
            self._forked = None
        with self._starting:  # a start under way finishes first, so no fork server outlives the engine
            if self._process is not None and self._process.poll() is None:
                self._process.terminate()  # stops accepting; children carry on and are still reaped
            self._process = None

    def _start_in_background(self) -> None:
        try:
            self._ensure_started()
        except BaseException as exc:  # handed to the next spawn, which reports it
            self._start_error = exc

    def _ensure_started(self) -> None:
        if self._forked is not None:
            return  # started by the server it was forked from
        with self._starting:
            if self._start_error is not None:
                error, self._start_error = self._start_error, None
                raise error
            if self._process is None or self._process.poll() is not None:
                self._start()

    def _start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "concurrent_mlflow.executors.forkserver", self.name, *self.extra_modules],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,  # READY, then one line per reaped child
            env={**self.environ, **forksafety.FORK_SAFE_ENV},
            start_new_session=True,  # Ctrl-C at the engine's terminal is the engine's to handle
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()  # blocks until the imports are done
        if line != READY:
            code = self._process.wait()
            self._process = None
            if line.startswith(UNSAFE):
                raise ForkUnsafeError(
                    f"The local fork server refused to start: {line[len(UNSAFE) :].decode().strip()}"
                )
            raise ExecutorError(f"The local fork server failed to start (exit code {code}).")
        reader = threading.Thread(
            target=self._read_exits, args=(self._process,), name="concurrent-forkserver-exits", daemon=True
        )
        reader.start()

    def _read_exits(self, process: subprocess.Popen[bytes]) -> None:
        """Pass each `exit PID CODE` line to `on_exit` until the fork server's stdout closes."""
        assert process.stdout is not None
        for line in process.stdout:
            if not line.startswith(EXIT) or self.on_exit is None:
                continue
            try:
                pid, code = map(int, line[len(EXIT) :].split())
                self.on_exit(pid, code)
            except Exception:  # a bad line or callback must not stop the exits that follow
                log.exception("fork server: could not pass on %r", line)


def _abstract(name: str) -> str:
    """Linux's abstract socket namespace: no file to clean up, no 108-byte path limit."""
    return "\0" + name


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


# -- files shared by the fork server, its children and any later engine ---------------------------------
def pid_file(log_path: Path) -> Path:
    return log_path.with_name(log_path.name + ".pid")


def exit_file(log_path: Path) -> Path:
    return log_path.with_name(log_path.name + ".exit")


def start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot): with the pid, names one process forever."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def running(pid: int, started: int, *, zombie: bool = False) -> bool:
    """True while that very process runs (not a reused pid); with `zombie`, also once it has ended but
    its parent has not reaped it yet (and so not yet recorded its exit code)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    return (zombie or fields[0] != "Z") and int(fields[19]) == started


def read_pid_file(log_path: Path) -> tuple[int, int] | None:
    try:
        pid, started = pid_file(log_path).read_text().split()
    except (OSError, ValueError):
        return None
    return int(pid), int(started)


def read_exit_file(log_path: Path) -> int | None:
    try:
        return int(exit_file(log_path).read_text())
    except (OSError, ValueError):
        return None


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text)
    partial.replace(path)


# -- the fork server process --------------------------------------------------------------------------------
def serve(name: str, extra_modules: list[str]) -> None:
    for module in (*WARM_MODULES, *extra_modules):
        importlib.import_module(module)
    if problem := forksafety.fork_problem():
        _tell_engine(UNSAFE + problem.encode() + b"\n")
        sys.exit(3)
    listener = _listen(name)
    parent = os.getppid()
    signals = _wake_on_signals()
    _freeze_heap()
    if not _tell_engine(READY):
        return  # the engine exited while we imported
    os.set_blocking(_engine_fd, False)  # an engine that stopped reading never blocks the reaping
    _loop(listener, signals, (parent, start_time(parent) or 0), lambda: os.getppid() == parent)


def _freeze_heap() -> None:
    """Move what the imports (and a warm server's model) made out of the collector's reach: a forked task's
    collections then never walk, and so never copy, the pages it shares with this process."""
    gc.collect()
    gc.freeze()


def _listen(name: str) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(_abstract(name))
    listener.listen(64)
    return listener


def _loop(
    listener: socket.socket,
    signals: int,
    engine: tuple[int, int],
    engine_alive: Callable[[], bool],
    refusal: str | None = None,
) -> None:
    """Serve requests until asked to stop or the engine is gone, then reap the last children."""
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    children: dict[int, Path] = {}
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(signals, selectors.EVENT_READ)
    while not stopping and engine_alive():
        for key, _ in selector.select(timeout=PARENT_CHECK_SECONDS):
            if key.fileobj is listener:
                with contextlib.suppress(OSError):
                    conn, _ = listener.accept()
                    with conn:
                        _handle(conn, listener, signals, children, engine, refusal)
        _reap(signals, children)
    # The engine is gone (or asked us to stop): finish what runs, start nothing new.
    selector.unregister(listener)
    listener.close()
    while children:
        selector.select(timeout=PARENT_CHECK_SECONDS)
        _reap(signals, children)


def _tell_engine(line: bytes) -> bool:
    """One line to the engine on the fork server's stdout (a pipe); False if it is gone or not reading."""
    try:
        return os.write(_engine_fd, line) == len(line)
    except OSError:
        return False


def _wake_on_signals() -> int:
    """A pipe that receives a byte on each signal (SIGCHLD above all): the loop's select wakes on it."""
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the signal is delivered to the pipe
    return read


def _handle(
    conn: socket.socket,
    listener: socket.socket,
    signals: int,
    children: dict[int, Path],
    engine: tuple[int, int],
    refusal: str | None = None,
) -> None:
    request: dict[str, Any] = json.loads(_read_line(conn))
    if refusal:  # a warm server whose hook failed: its tasks go to the ordinary fork server
        conn.sendall(json.dumps({"error": refusal}).encode() + b"\n")
        return
    if problem := forksafety.fork_problem():  # a thread that appeared since start-up: never fork beside it
        conn.sendall(json.dumps({"unsafe": problem}).encode() + b"\n")
        return
    if request.get("ping"):
        conn.sendall(b'{"ready": true}\n')
        return
    log_path = Path(request["log"])
    ready_read, ready_write = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(ready_read)
        os.close(ready_write)
        conn.sendall(json.dumps({"error": str(exc)}).encode() + b"\n")
        return
    if pid == 0:
        conn.close()
        listener.close()
        os.close(ready_read)
        _no_signal_wakeups(signals)
        if "serve" in request:
            os._exit(_warm_server(request, log_path, ready_write, engine))
        if _engine_fd != 1:  # a warm server's copy of the engine's pipe: never a task's to write to
            os.close(_engine_fd)
        os._exit(_child(request, log_path, ready_write))
    os.close(ready_write)
    children[pid] = log_path
    # Reply once the child leads its own session and has written its pid file: from then on a cancel
    # reaches its whole group and a restarted engine can find it.
    with os.fdopen(ready_read, "rb") as ready:
        ready.read(1)
    conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def _no_signal_wakeups(signals: int) -> None:
    """In a forked child: signals as a fresh process has them (its own subprocesses' SIGCHLD is its own)."""
    os.close(signal.set_wakeup_fd(-1))
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.close(signals)


def _reap(signals: int, children: dict[int, Path]) -> None:
    """Reap every child that ended: its exit file first (the lasting record), then a line to the engine."""
    with contextlib.suppress(BlockingIOError):
        while os.read(signals, 4096):  # drained before waitpid: a SIGCHLD after it wakes the next select
            pass
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        log_path = children.pop(pid, None)
        if log_path is not None:
            code = os.waitstatus_to_exitcode(status)
            _write_atomically(exit_file(log_path), str(code))
            _tell_engine(EXIT + f"{pid} {code}\n".encode())  # if it is gone, the exit file is enough


def _warm_server(request: dict[str, Any], log_path: Path, ready: int, engine: tuple[int, int]) -> int:
    """In a forked child: become a fork server of its own that runs `request["hook"]` first.

    It listens before it says it started, so requests wait in its backlog while the hook runs. It keeps the
    fork server's one-thread environment (its tasks get theirs back), and serves while the engine lives.
    What the hook returns, if callable, is called once the last task has ended (e.g. to remove files)."""
    global _engine_fd
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # closed while the hook runs: nothing to finish yet
    _write_atomically(pid_file(log_path), f"{os.getpid()} {start_time(os.getpid())}")
    listener = _listen(request["serve"])
    os.write(ready, b"1")
    os.close(ready)
    _engine_fd = os.dup(_engine_fd)  # before stdout becomes the log: exit lines share the fork server's pipe
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.environ.clear()
    os.environ.update({**request["env"], **forksafety.FORK_SAFE_ENV})
    os.chdir(request["cwd"])
    refusal, finish = None, None
    try:
        module, function = request["hook"].split(":")
        finish = getattr(importlib.import_module(module), function)(request["argument"])
    except Exception as exc:
        import traceback

        traceback.print_exc()
        refusal = f"{request['hook']}({request['argument']!r}) failed: {exc}"
    sys.stderr.flush()
    _freeze_heap()
    _loop(listener, _wake_on_signals(), engine, lambda: running(*engine), refusal)
    if callable(finish):
        finish()
    return 0


def _child(request: dict[str, Any], log_path: Path, ready: int) -> int:
    """In the forked child: become a task process, run the module, return its exit code."""
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _write_atomically(pid_file(log_path), f"{os.getpid()} {start_time(os.getpid())}")
        os.write(ready, b"1")
        os.close(ready)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        stdin_fd = os.open(request.get("stdin") or os.devnull, os.O_RDONLY)
        os.dup2(stdin_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        faulthandler.enable(all_threads=True)  # to fd 2: the attempt's log
        os.environ.clear()
        os.environ.update(request["env"])
        forksafety.restore_limits(os.environ)
        if "user" in request:  # before any task code, and for good; raises rather than run as root
            user = request["user"]
            TaskUser(user["name"], user["uid"], user["gid"], Path(user["root"])).drop()
        os.chdir(request["cwd"])
        random.seed()  # every child would otherwise draw the same "random" numbers
        sys.argv = [request["module"], *request["args"]]
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
    return code


if __name__ == "__main__":  # pragma: no cover - started by ForkServer
    serve(sys.argv[1], sys.argv[2:])
