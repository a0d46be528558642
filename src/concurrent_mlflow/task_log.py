"""What a task's log says about why it failed, for people reading a failure table.

An executor knows only a task's exit code (`exit code 1`), which says nothing; the cause is almost always the
last exception Python printed to the log. We read only the end of the log (a task may log gigabytes) and
never change what is stored: this is a reading aid where failures are shown.
"""

from __future__ import annotations

import re
from pathlib import Path

TAIL_BYTES = 64 * 1024
MAX_LINE = 300
_TRACEBACK = "Traceback (most recent call last):"
_FATAL = re.compile(r"^Fatal Python error: .+", re.MULTILINE)
_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(:|$)")


def last_exception_line(text: str) -> str | None:
    """The line that names the last error Python printed (`ValueError: bad row 17`, or faulthandler's
    `Fatal Python error: Segmentation fault`); None when the text holds no traceback.

    Of a chained traceback this is the final exception: Python prints the causes first.
    """
    fatal = list(_FATAL.finditer(text))
    header = text.rfind(_TRACEBACK)
    if fatal and fatal[-1].start() > header:
        return _cap(fatal[-1].group(0).strip())
    if header < 0:
        return None
    return _exception_after(text[header + len(_TRACEBACK) :].splitlines())


def _exception_after(lines: list[str]) -> str | None:
    """The first unindented line after a traceback's frames (the frames are indented), if it reads as one."""
    for line in lines:
        if line.strip() and not line[0].isspace():
            return _cap(line.rstrip()) if _EXCEPTION.match(line) else None
    return None


def _cap(line: str) -> str:
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 3] + "..."


def read_tail(path: str | Path, limit: int = TAIL_BYTES) -> str:
    """The last `limit` bytes of a log as text ("" if it cannot be read: a log on another machine)."""
    try:
        with Path(path).open("rb") as log:
            size = log.seek(0, 2)
            log.seek(max(0, size - limit))
            return log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def failure_reason(error: str | None, log_path: str | None) -> str:
    """`ValueError: bad row 17 (exit code 1)` when the log ends in a traceback; else the stored error."""
    cause = last_exception_line(read_tail(log_path)) if log_path else None
    if cause is None or (error and cause in error):  # the executor may have put it there already
        return error or ""
    return f"{cause} ({error})" if error else cause
