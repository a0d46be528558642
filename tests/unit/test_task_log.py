"""Why a task failed, read from the end of its log: the last exception line Python printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from concurrent_mlflow.task_log import failure_reason, last_exception_line, read_tail

WORKER = "2024-05-01 10:00:00,000 INFO concurrent.worker: entry point failed with exit code 1\n"

PLAIN = (
    """\
2024-05-01 10:00:00,000 INFO concurrent.worker: running /p entry point 'main'
reading rows
Traceback (most recent call last):
  File "/p/train.py", line 12, in <module>
    main()
  File "/p/train.py", line 9, in main
    raise ValueError(f"bad row {i}")
ValueError: bad row 17
"""
    + WORKER
)

CHAINED = (
    """\
Traceback (most recent call last):
  File "/p/load.py", line 3, in <module>
    rows["x"]
KeyError: 'x'

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/p/load.py", line 5, in <module>
    raise RuntimeError("lookup failed") from e
RuntimeError: lookup failed
"""
    + WORKER
)

SEGFAULT = """\
Traceback (most recent call last):
  File "/p/old.py", line 1, in <module>
OSError: handled earlier and logged
loading the extension
Fatal Python error: Segmentation fault

Current thread 0x00007fd9d3277b80 (most recent call first):
  File "/usr/lib/python3.11/ctypes/__init__.py", line 519 in string_at
  File "/p/native.py", line 1 in <module>
"""

SYNTAX = """\
Traceback (most recent call last):
  File "/p/bad.py", line 1
    def f(:
          ^
SyntaxError: invalid syntax
"""


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (PLAIN, "ValueError: bad row 17"),
        (CHAINED, "RuntimeError: lookup failed"),
        (SEGFAULT, "Fatal Python error: Segmentation fault"),
        (SYNTAX, "SyntaxError: invalid syntax"),
        (
            'Traceback (most recent call last):\n  File "x", line 1, in <module>\nKeyboardInterrupt\n',
            "KeyboardInterrupt",
        ),
    ],
    ids=["traceback", "chained", "segfault", "syntax-error", "no-message"],
)
def test_the_last_exception_line_is_found(text: str, line: str) -> None:
    assert last_exception_line(text) == line


@pytest.mark.parametrize(
    "text",
    [
        "",
        "all good\n" + WORKER,
        'Traceback (most recent call last):\n  File "x", line 1\n',
        "ValueError: no header",
    ],
    ids=["empty", "no-traceback", "cut-short", "no-traceback-header"],
)
def test_no_traceback_is_none(text: str) -> None:
    assert last_exception_line(text) is None


def test_a_huge_message_is_capped() -> None:
    line = last_exception_line(f"Traceback (most recent call last):\nValueError: {'x' * 5000}\n")
    assert line is not None and len(line) == 300 and line.endswith("...")


def test_only_the_end_of_a_big_log_is_read(tmp_path: Path) -> None:
    log = tmp_path / "task.log"
    log.write_text("noise\n" * 100_000 + PLAIN)
    tail = read_tail(log)
    assert len(tail.encode()) == 64 * 1024 and tail.endswith(WORKER)
    assert read_tail(tmp_path / "absent.log") == ""


def test_the_reason_puts_the_exception_before_the_exit_code(tmp_path: Path) -> None:
    log = tmp_path / "task.log"
    log.write_text(PLAIN)
    assert failure_reason("exit code 1", str(log)) == "ValueError: bad row 17 (exit code 1)"
    log.write_text("no traceback here\n")
    assert failure_reason("exit code 3", str(log)) == "exit code 3"
    assert failure_reason("exit code 3", None) == "exit code 3"
    assert failure_reason(None, str(tmp_path / "on-another-machine.log")) == ""
