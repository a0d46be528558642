"""The live terminal view of a run: one rich progress bar per node, refreshed from the store."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from concurrent_mlflow.store import Store, TaskState
from concurrent_mlflow.store.queries import run_view

S = TaskState


class RunProgress:
    """Call `update()` as often as you like; it reads one snapshot of the run and redraws."""

    def __init__(self, store: Store, run_id: str, console: Console) -> None:
        self.store, self.run_id = store, run_id
        self.progress = Progress(
            TextColumn("[bold]{task.description:<16}"),
            BarColumn(bar_width=32),
            TextColumn("{task.completed:>5.0f}/{task.total:<5.0f}"),
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
        view = run_view(self.store, self.run_id)
        if view is None:
            return
        for stage in view.stages:
            total = stage.partitions if stage.partitions is not None else 0
            done = stage.count(S.SUCCEEDED)
            detail = _detail(
                stage.state,
                stage.count(S.RUNNING) + stage.count(S.QUEUED),
                stage.count(S.FAILED),
                stage.count(S.PENDING),
            )
            if stage.node_id not in self._bars:
                self._bars[stage.node_id] = self.progress.add_task(
                    stage.node_id, total=total or None, detail=detail
                )
            self.progress.update(
                self._bars[stage.node_id],
                total=total or 1 if stage.partitions is not None else None,
                completed=done if total else (1 if stage.state == S.SUCCEEDED else 0),
                detail=detail,
            )


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
