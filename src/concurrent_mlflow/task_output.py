"""Tasks' output on the terminal while a run goes, as `mlflow run -b local` shows its entry point's.

A local task writes everything it prints (the entry point's output, MLflow's and the worker's messages) to
its attempt's log file. `OutputFollower` reads what each log file gained since it last looked, in a thread,
and writes whole lines to the terminal:

- `auto` (the default): the output of a stage that has a single partition, as it is (what `-b local` shows);
  a stage with several shows only its progress;
- `all`: every task's output, each line prefixed with `node[partition]`;
- `first` (or `first:N`): the first N lines (10 by default) of every task, prefixed, then where the rest is;
- `none`: nothing.

The worker's own INFO lines are left out. A task's log is its record (kept and uploaded to its child run);
this only reads it.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # `concurrent --help` reads OUTPUT_MODES without importing the store
    from concurrent_mlflow.store import Store
    from concurrent_mlflow.store.queries import AttemptLog

OUTPUT_MODES = ("auto", "all", "first", "none")
FIRST_LINES = 10
# The worker's own bookkeeping (inputs fetched, outputs logged): in the log, not on the terminal. Its
# warnings and errors are shown, as are MLflow's messages (which `-b local` shows too).
WORKER_INFO = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO concurrent\.worker: ")
POLL_S = 0.2
READ_BYTES = 1 << 20  # at most this much of one log per look: a flood is shown, not loaded into memory


class OutputFollower:
    """Use as a context manager around driving the run; on exit it shows what is left in the logs."""

    def __init__(
        self, store: Store, run_id: str, mode: str, out: Callable[[], TextIO] = lambda: sys.stdout
    ) -> None:
        self.mode, self.limit = parse_output_mode(mode)
        self.store, self.run_id, self.out = store, run_id, out
        self._logs: dict[int, LogTail] = {}
        self._last_attempt = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="task-output", daemon=True)

    def __enter__(self) -> OutputFollower:
        if self.mode != "none":
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.mode == "none":
            return
        self._stop.set()
        self._thread.join()
        self.poll(final=True)

    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.poll()
            except Exception as exc:  # the run goes on without its output shown; say so once
                self.out().write(f"(task output no longer shown: {exc})\n")
                return

    def poll(self, final: bool = False) -> None:
        """Show what the run's logs gained; with `final`, also a last line that has no newline yet."""
        from concurrent_mlflow.store.queries import attempt_logs

        for attempt_id, found in attempt_logs(self.store, self.run_id, self._last_attempt):
            self._last_attempt = attempt_id
            if self.mode != "auto" or found.partitions == 1:
                self._logs[attempt_id] = LogTail(found, prefix=self.mode != "auto", limit=self.limit)
        for followed in self._logs.values():
            lines = followed.read(final)
            if lines:
                stream = self.out()
                stream.write("".join(lines))
                stream.flush()


def parse_output_mode(text: str) -> tuple[str, int | None]:
    """`auto`, `all`, `none`, `first` or `first:N` -> (mode, most lines shown per task or None)."""
    mode, _, count = text.partition(":")
    if mode not in OUTPUT_MODES or (count and mode != "first"):
        raise ValueError(f"output {text!r} is not one of auto, all, first, first:N or none")
    if mode != "first":
        return mode, None
    if count and not (count.isdigit() and int(count) > 0):
        raise ValueError(f"output {text!r}: N in first:N must be a positive whole number")
    return mode, int(count) if count else FIRST_LINES


class LogTail:
    def __init__(self, found: AttemptLog, *, prefix: bool, limit: int | None = None) -> None:
        self.path = Path(found.log_path)
        self.prefix = f"{found.node_id}[{found.partition}] " if prefix else ""
        self.offset = 0
        self.partial = b""
        self.limit, self.shown, self.done = limit, 0, False

    def read(self, final: bool) -> list[str]:
        """The whole lines the log gained (the rest waits for its newline)."""
        if self.done:  # its first lines were shown and where the rest is: the log is not read again
            return []
        try:
            with self.path.open("rb") as log:
                log.seek(self.offset)
                data = log.read(READ_BYTES)
                while final and (more := log.read(READ_BYTES)):  # the run ended: all of it, in chunks
                    data += more
        except OSError:  # not created yet, or removed with its run
            return []
        self.offset += len(data)
        text = self.partial + data
        *lines, self.partial = text.split(b"\n")
        if final and self.partial:
            lines, self.partial = [*lines, self.partial], b""
        decoded = (line.decode("utf-8", "replace") for line in lines)
        shown = [f"{self.prefix}{line}\n" for line in decoded if not WORKER_INFO.match(line)]
        if self.limit is not None and self.shown + len(shown) > self.limit:
            shown = shown[: self.limit - self.shown]
            shown.append(f"{self.prefix}... (the rest is in {self.path})\n")
            self.done = True
        self.shown += len(shown)
        return shown
