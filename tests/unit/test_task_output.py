"""Following a task's log for the terminal: whole lines only, prefixed when asked, a flood read in chunks."""

from __future__ import annotations

from pathlib import Path

import pytest

from concurrent_mlflow.store.queries import AttemptLog
from concurrent_mlflow.task_output import READ_BYTES, LogTail, OutputFollower, parse_output_mode


def tail_of(path: Path, *, prefix: bool = False) -> LogTail:
    return LogTail(AttemptLog("train", 7, 1, str(path), 20), prefix=prefix)


def test_a_line_is_shown_once_its_newline_is_written(tmp_path: Path) -> None:
    log = tmp_path / "task.log"
    tail = tail_of(log)
    assert tail.read(final=False) == []  # the worker has not created it yet

    log.write_bytes(b"epoch 1 loss 0.5\nepoch 2 lo")
    assert tail.read(final=False) == ["epoch 1 loss 0.5\n"]
    with log.open("ab") as out:
        out.write(b"ss 0.25\nno newline at the end")
    assert tail.read(final=False) == ["epoch 2 loss 0.25\n"]
    assert tail.read(final=True) == ["no newline at the end\n"]  # the task ended: nothing is held back
    assert tail.read(final=True) == []


def test_lines_are_prefixed_by_partition_and_the_workers_bookkeeping_is_left_out(tmp_path: Path) -> None:
    log = tmp_path / "task.log"
    log.write_text(
        "2026-12-04 10:00:00,123 INFO concurrent.worker: train[7/20]: 3 input file(s), 12 bytes\n"
        "2026/12/04 10:00:00 INFO mlflow.projects.backend.local: === Running command 'python t.py' ===\n"
        "2026-12-04 10:00:01,000 ERROR concurrent.worker: task train[7] failed\n"
        "r\u00e9sultat\n"
    )
    shown = tail_of(log, prefix=True).read(final=True)
    assert shown == [
        "train[7] 2026/12/04 10:00:00 INFO mlflow.projects.backend.local: === Running command 'python t.py' ===\n",
        "train[7] 2026-12-04 10:00:01,000 ERROR concurrent.worker: task train[7] failed\n",
        "train[7] r\u00e9sultat\n",
    ]


def test_bytes_that_are_not_utf8_do_not_stop_the_output(tmp_path: Path) -> None:
    log = tmp_path / "task.log"
    log.write_bytes(b"caf\xe9 au lait\nok\n")
    assert tail_of(log).read(final=False) == ["caf\ufffd au lait\n", "ok\n"]


def test_a_flood_is_read_a_chunk_per_look_and_all_of_it_at_the_end(tmp_path: Path) -> None:
    log = tmp_path / "task.log"
    line = b"x" * 99 + b"\n"
    count = 3 * READ_BYTES // len(line)
    log.write_bytes(line * count)
    tail = tail_of(log)

    first = tail.read(final=False)
    rest = tail.read(final=True)

    assert len(first) == READ_BYTES // len(line)  # one look holds at most READ_BYTES in memory
    assert len(first) + len(rest) == count
    assert set(first + rest) == {line.decode()}


@pytest.mark.parametrize("mode", ["everything", "first:0", "first:-3", "first:x", "all:5", ""])
def test_an_unknown_mode_is_refused(mode: str) -> None:
    with pytest.raises(ValueError, match="output"):
        OutputFollower(None, "r", mode)  # type: ignore[arg-type]


def test_modes_and_their_line_limits() -> None:
    assert [parse_output_mode(m) for m in ("auto", "all", "none", "first", "first:3")] == [
        ("auto", None),
        ("all", None),
        ("none", None),
        ("first", 10),
        ("first", 3),
    ]


def test_first_n_shows_n_lines_then_where_the_rest_is_and_stops_reading(tmp_path: Path) -> None:
    log = tmp_path / "task.log"
    log.write_text("".join(f"line {i}\n" for i in range(3)))
    tail = LogTail(AttemptLog("train", 2, 1, str(log), 4), prefix=True, limit=4)

    assert tail.read(final=False) == ["train[2] line 0\n", "train[2] line 1\n", "train[2] line 2\n"]
    with log.open("a") as out:
        out.write("line 3\nline 4\nline 5\n")
    assert tail.read(final=False) == ["train[2] line 3\n", f"train[2] ... (the rest is in {log})\n"]
    with log.open("a") as out:
        out.write("line 6\n")
    assert tail.read(final=True) == []
