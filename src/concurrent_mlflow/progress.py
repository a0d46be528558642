"""The live terminal view of a run: one rich progress bar per node, refreshed from the store."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Task as BarTask
from rich.text import Text

from concurrent_mlflow.store import TaskState
from concurrent_mlflow.store.queries import RunView

S = TaskState


class RunProgress:
    """Call `update()` as often as you like; it reads one snapshot of the run and redraws.

    `snapshot` reads the run: from the local store, or from a server's API.
    """

    def __init__(self, snapshot: Callable[[], RunView | None], console: Console) -> None:
        self.snapshot = snapshot
        self.progress = Progress(
            TextColumn("[bold]{task.description:<16}"),
            BarColumn(bar_width=32),
            _CountColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._bars: dict[str, TaskID] = {}

    def __enter__(self) -> RunProgress:
        self.progress.start()
        self.update()
        return self

    def __exit__(self, *exc: object) -> None:
        self.update()
        self.progress.stop()

    def update(self) -> None:
        view = self.snapshot()
        if view is None:
            return
        for stage in view.stages:
            total, done = _bar(stage.state, stage.partitions, stage.count(S.SUCCEEDED))
            running = stage.count(S.RUNNING) + stage.count(S.QUEUED)
            detail = _detail(stage.state, running, stage.count(S.FAILED), stage.count(S.PENDING))
            if stage.node_id not in self._bars:
                self._bars[stage.node_id] = self.progress.add_task(stage.node_id, total=total, detail=detail)
            self.progress.update(self._bars[stage.node_id], total=total, completed=done, detail=detail)


def _bar(state: str, partitions: int | None, succeeded: int) -> tuple[int | None, int]:
    """(total, completed) of a stage's bar: unknown until planned; a source stage counts as one unit."""
    if partitions is None:
        return None, 0
    if partitions == 0:
        return 1, int(state == S.SUCCEEDED)
    return partitions, succeeded


class _CountColumn(ProgressColumn):
    """`done/total` partitions; `-` while a stage is not planned yet (its total is unknown)."""

    def render(self, task: BarTask) -> Text:
        if task.total is None:
            return Text("    -      ")
        return Text(f"{task.completed:>5.0f}/{task.total:<5.0f}")


def _detail(state: str, running: int, failed: int, pending: int) -> str:
    colour = {"succeeded": "green", "failed": "red", "skipped": "yellow", "cancelled": "yellow"}.get(
        state, "cyan"
    )
    parts = [f"[{colour}]{state}[/]"]
    if running:
        parts.append(f"{running} running")
    if pending and state == "running":
        parts.append(f"{pending} pending")
    if failed:
        parts.append(f"[red]{failed} failed[/]")
    return "  ".join(parts)
