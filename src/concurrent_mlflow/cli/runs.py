"""`concurrent run`, `runs` and `logs`: start and follow DAG runs, on this machine or on a server."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from concurrent_mlflow.advice import next_step
from concurrent_mlflow.cli.backends import RunBackend, backend, load_with_overrides
from concurrent_mlflow.cli.base import CliContext, console, err, run_url
from concurrent_mlflow.dag import parse_overrides
from concurrent_mlflow.errors import ConcurrentError, NotFoundError
from concurrent_mlflow.task_log import failure_reason
from concurrent_mlflow.task_output import parse_output_mode

if TYPE_CHECKING:  # the store is imported by the commands that use it
    from concurrent_mlflow.store.db import Store
    from concurrent_mlflow.store.queries import FailedAttempt, RunView

MAX_FAILURES_SHOWN = 20


class _RunGroup(click.Group):
    """`concurrent run DAG.yaml` starts a run; `concurrent run retry RUN_ID` is a subcommand."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["start", *args]
        return super().resolve_command(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage("concurrent run", "DAG.yaml [-P NODE.PARAM=VALUE]... | retry RUN_ID")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        start = self.commands["start"]
        options = [p for p in start.get_params(ctx) if isinstance(p, click.Option) and p.name != "help"]
        records = [r for p in options if (r := p.get_help_record(ctx)) is not None]
        with formatter.section("Options of `concurrent run DAG.yaml`"):
            formatter.write_dl(records)
        super().format_options(ctx, formatter)


@click.group(cls=_RunGroup)
def run() -> None:
    """Run a DAG (`concurrent run DAG.yaml`) or retry a failed run (`concurrent run retry RUN_ID`).

    Shows a live progress bar per node, prints the MLflow URL of the parent run, and exits non-zero
    naming the failing node, partition and log when the run fails. Ctrl-C cancels the run. With
    --server the run executes on that server (the DAG is stored there as a new version first).

    This process drives the run and holds a lease on it. If it dies (kill -9, a closed terminal), the
    next `concurrent` command on this home settles the run at once: partitions that finished keep their
    outputs, workers still running are stopped, and the run ends failed; `concurrent run retry RUN_ID`
    then redoes only the unfinished partitions.
    """


def _output_mode(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_output_mode(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    return value


@run.command("start", hidden=True)
@click.argument("dag_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-P",
    "--param",
    "params",
    multiple=True,
    metavar="NODE.PARAM=VALUE",
    help="Override a project node's parameter (repeatable).",
)
@click.option(
    "--max-parallel",
    type=click.IntRange(1),
    default=None,
    help="Tasks running at once on this machine [default: CPU count; the server's own with --server].",
)
@click.option("--progress/--no-progress", default=True, help="Show the live progress display.")
@click.option(
    "--output",
    default="auto",
    show_default=True,
    callback=_output_mode,
    help="Tasks' output on the terminal as they run: a single-partition stage's (auto), every task's "
    "prefixed with node[partition] (all), the first N lines of each (first, first:N; N=10), or none. "
    "Runs on this machine only.",
)
@click.pass_obj
def run_start(
    obj: CliContext,
    dag_file: Path,
    params: Sequence[str],
    max_parallel: int | None,
    progress: bool,
    output: str,
) -> None:
    start_run(obj, dag_file, params, max_parallel, progress, output)


def start_run(
    obj: CliContext,
    dag_file: Path,
    params: Sequence[str],
    max_parallel: int | None,
    progress: bool,
    output: str = "none",
) -> str:
    overrides = parse_overrides(params)
    dag = load_with_overrides(dag_file, overrides)
    runs = backend(obj, max_parallel, driving=True)
    run_id = runs.start(dag_file, dag, overrides)
    _follow(runs, run_id, progress, f"Run {run_id} of DAG {dag.name!r}", output)
    return run_id


@run.command("retry")
@click.argument("run_id")
@click.option("--max-parallel", type=click.IntRange(1), default=None)
@click.option("--progress/--no-progress", default=True)
@click.pass_obj
def run_retry(obj: CliContext, run_id: str, max_parallel: int | None, progress: bool) -> None:
    """Re-run only what failed in RUN_ID; succeeded partitions keep their outputs. A run whose driver
    died is settled first (its running workers stopped), then retried."""
    runs = backend(obj, max_parallel, driving=True)
    reset = runs.retry(run_id)
    _follow(runs, run_id, progress, f"Retrying run {run_id} ({reset} partition(s) to redo)")


def _follow(runs: RunBackend, run_id: str, progress: bool, title: str, output: str = "none") -> None:
    from concurrent_mlflow.progress import RunProgress

    console.print(f"[bold]{title}[/]")
    started = time.monotonic()
    announced = _announce_link(runs, run_id, announced=False)
    try:
        if progress:
            with RunProgress(lambda: runs.view(run_id), console) as display:

                def update() -> None:
                    nonlocal announced
                    announced = _announce_link(runs, run_id, announced)
                    display.update()

                state = runs.wait(run_id, update, output)
        else:
            state = runs.wait(run_id, lambda: None, output)
    except KeyboardInterrupt:
        err.print(
            f"[yellow]Run {run_id} cancelled: running tasks were stopped and marked KILLED in MLflow.[/]"
        )
        sys.exit(130)
    elapsed = time.monotonic() - started
    view = runs.view(run_id)
    if state == "succeeded":
        console.print(f"[green]Run {run_id} succeeded[/] in {elapsed:.1f}s. MLflow: {runs.link(view)}")
        return
    err.print(f"[red]Run {run_id} {state}[/] after {elapsed:.1f}s: {view.error or ''}")
    _print_failures(err, run_id, runs.failures(run_id), lambda child: runs.link(view, child))
    _print_next_step(err, view)
    sys.exit(1)


def _print_next_step(out: Console, view: RunView) -> None:
    """Retry where a retry can help; where the cause is in the run's DAG, a new run."""
    step = next_step(view.id, view.state, [s.error for s in view.stages])
    if step:
        out.print(step, markup=False)


def _announce_link(runs: RunBackend, run_id: str, announced: bool) -> bool:
    """Print the parent run's MLflow link once it exists (a server opens it on its next pass)."""
    if announced:
        return True
    view = runs.view(run_id)
    if view.mlflow_run_id is None:
        return False
    console.print(f"MLflow: {runs.link(view)}")
    return True


def _print_failures(
    out: Console, run_id: str, failures: Sequence[FailedAttempt], link: Callable[[str | None], str]
) -> None:
    """The failed partitions, each with why (the last exception in its log), where its log is and its
    MLflow run: what a person needs to fix the cause before `concurrent run retry`."""
    if not failures:
        return
    table = Table(title="Failed partitions", show_lines=False)
    for column in ("node", "partition", "attempt", "error", "log", "MLflow run"):
        table.add_column(column, overflow="fold")
    for f in failures[:MAX_FAILURES_SHOWN]:
        log = f.log_path or f"concurrent logs {run_id} {f.node_id} {f.partition}"
        error = failure_reason(f.error, f.log_path)
        table.add_row(f.node_id, str(f.partition), str(f.attempt), error, log, link(f.mlflow_run_id))
    out.print(table)
    if len(failures) > MAX_FAILURES_SHOWN:
        out.print(f"... and {len(failures) - MAX_FAILURES_SHOWN} more failed partition(s)")


@click.command("logs")
@click.argument("run_id")
@click.argument("node")
@click.argument("partition", type=click.IntRange(0))
@click.option("--attempt", type=click.IntRange(1), default=None, help="Attempt number [default: the latest].")
@click.option("-f", "--follow", is_flag=True, help="Keep printing while the task runs.")
@click.pass_obj
def logs(obj: CliContext, run_id: str, node: str, partition: int, attempt: int | None, follow: bool) -> None:
    """Print the log of task NODE[PARTITION] of RUN_ID (stdout and stderr of its worker)."""
    runs = backend(obj)
    check_task(runs.view(run_id), node, partition)
    out = sys.stdout.buffer
    for chunk in runs.log(run_id, node, partition, attempt, follow):
        out.write(chunk)
        out.flush()


def check_task(view: RunView, node: str, partition: int) -> None:
    """Refuse a node or partition the run does not have, saying which it has: a typo in `concurrent logs`
    should not read as "no log yet"."""
    stage = next((s for s in view.stages if s.node_id == node), None)
    if stage is None:
        nodes = ", ".join(s.node_id for s in view.stages) or "none yet"
        raise NotFoundError(f"Run {view.id} has no node {node!r}; its nodes are {nodes}.")
    if not stage.partitions:  # None: not planned (pending, skipped, planning failed); 0: a source
        raise NotFoundError(
            f"Node {node!r} of run {view.id} has no partitions ({stage.state}"
            f"{': ' + stage.error if stage.error else ''}), so it has no logs."
        )
    if partition >= stage.partitions:
        raise NotFoundError(
            f"Node {node!r} of run {view.id} has partitions 0 to {stage.partitions - 1}; "
            f"there is no partition {partition}."
        )


@click.group()
def runs() -> None:
    """List, inspect and cancel DAG runs."""


@runs.command("cancel")
@click.argument("run_id")
@click.pass_obj
def runs_cancel(obj: CliContext, run_id: str) -> None:
    """Cancel RUN_ID: its driver stops the running tasks and marks their MLflow runs KILLED. A run whose
    driver died is cancelled here and now (its workers stopped)."""
    runs = backend(obj)
    asked = runs.cancel(run_id, "cancelled with `concurrent runs cancel`")
    if not asked:
        click.echo(f"Run {run_id} had already ended.")
    elif runs.view(run_id).state == "cancelled":
        click.echo(f"Run {run_id} is cancelled.")
    else:
        click.echo(f"Cancelling run {run_id}: its driver is stopping its tasks.")


@runs.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.pass_obj
def runs_list(obj: CliContext, limit: int) -> None:
    """The latest DAG runs: from the server with --server, else from MLflow (parent runs we tagged).
    Runs on this home whose driver died are settled first."""
    if not obj.server:
        _settle_orphans(obj)
    table = Table()
    for column in ("run", "DAG", "status", "started", "MLflow run id"):
        table.add_column(column)
    if obj.server:
        for item in obj.api().runs(limit):
            started = str(item["created_at"])[:19].replace("T", " ")
            table.add_row(item["id"], item["dag"], item["state"], started, item["mlflow_run_id"] or "")
    else:
        _mlflow_rows(obj, table, limit)
    console.print(table)


def _mlflow_rows(obj: CliContext, table: Table, limit: int) -> None:
    from concurrent_mlflow.tracking import TAG_PREFIX, Tracking

    for parent in Tracking(obj.tracking_uri()).find_parents(limit):
        tags = parent.data.tags
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(parent.info.start_time / 1000))
        table.add_row(
            tags.get(f"{TAG_PREFIX}run_id", "?"),
            tags.get(f"{TAG_PREFIX}dag", "?"),
            parent.info.status,
            started,
            parent.info.run_id,
        )


@runs.command("show")
@click.argument("run_id")
@click.pass_obj
def runs_show(obj: CliContext, run_id: str) -> None:
    """Per-node partition counts of RUN_ID: the server's view with --server, else what MLflow records
    (latest attempt per partition)."""
    if obj.server:
        _show_remote(obj, run_id)
        return
    _settle_orphans(obj)
    from concurrent_mlflow.tracking import TAG_PREFIX, Tracking

    tracking = Tracking(obj.tracking_uri())
    found = tracking.find_parents(1, run_id=run_id)
    parent = found[0] if found else None
    if parent is None:
        raise ConcurrentError(
            f"No DAG run {run_id!r} in MLflow at {tracking.tracking_uri}; "
            "`concurrent runs list` shows the known runs."
        )
    latest = _latest_children(tracking.children(parent))
    counts: dict[str, dict[str, int]] = {}
    for (node, _), child in latest.items():
        counts.setdefault(node, {}).setdefault(child.info.status, 0)
        counts[node][child.info.status] += 1
    console.print(f"[bold]{parent.data.tags.get(f'{TAG_PREFIX}dag')}[/] run {run_id}: {parent.info.status}")
    console.print(f"MLflow: {run_url(tracking.tracking_uri, parent.info.experiment_id, parent.info.run_id)}")
    table = Table()
    for column in ("node", "partitions", "FINISHED", "RUNNING", "FAILED", "KILLED"):
        table.add_column(column)
    for node, by_status in counts.items():
        table.add_row(
            node,
            str(sum(by_status.values())),
            *(str(by_status.get(s, 0)) for s in ("FINISHED", "RUNNING", "FAILED", "KILLED")),
        )
    console.print(table)
    from concurrent_mlflow.store.queries import failed_attempts, run_view

    with _local_store(obj) as store:
        view = run_view(store, run_id) if store else None
        failures = failed_attempts(store, run_id) if store else []
    _print_failures(
        console,
        run_id,
        failures or _mlflow_failures(latest),
        partial(run_url, tracking.tracking_uri, parent.info.experiment_id),
    )
    if view is not None:
        _print_next_step(console, view)


def _latest_children(children: list[Any]) -> dict[tuple[str, int], Any]:
    """The child run of each (node, partition)'s latest attempt."""
    from concurrent_mlflow.tracking import TAG_PREFIX

    latest: dict[tuple[str, int], Any] = {}
    for child in sorted(children, key=lambda c: int(c.data.tags.get(f"{TAG_PREFIX}attempt", "1"))):
        tags = child.data.tags
        latest[(tags.get(f"{TAG_PREFIX}node", "?"), int(tags.get(f"{TAG_PREFIX}partition", "0")))] = child
    return latest


def _mlflow_failures(latest: dict[tuple[str, int], Any]) -> list[FailedAttempt]:
    """Failed partitions as MLflow records them, for a run this machine's store does not hold (no error
    text or log path there: `concurrent logs` or the child run's artifacts have the log)."""
    from concurrent_mlflow.store.queries import FailedAttempt
    from concurrent_mlflow.tracking import TAG_PREFIX

    return [
        FailedAttempt(
            node, partition, int(c.data.tags.get(f"{TAG_PREFIX}attempt", "1")), None, None, c.info.run_id
        )
        for (node, partition), c in sorted(latest.items())
        if c.info.status == "FAILED"
    ]


def _settle_orphans(obj: CliContext) -> None:
    """Runs on this home whose driver died are settled by the next command, a look at the runs included."""
    from concurrent_mlflow.cli.backends import LocalRuns

    url = obj.paths.store_url
    if "://" not in url and not Path(url).exists():
        return  # never create a store just to read it
    local = LocalRuns(obj, None)
    try:
        local.settle_orphans()
    finally:
        local.close()


@contextmanager
def _local_store(obj: CliContext) -> Iterator[Store | None]:
    """This machine's store, where runs that ran here keep their failures and advice (MLflow has neither)."""
    from concurrent_mlflow.store import open_store

    url = obj.paths.store_url
    if "://" not in url and not Path(url).exists():
        yield None  # never create a store just to read it
        return
    store = open_store(url)
    try:
        yield store
    finally:
        store.close()


def _show_remote(obj: CliContext, run_id: str) -> None:
    runs = backend(obj)
    view = runs.view(run_id)
    console.print(
        f"[bold]{view.dag_name}[/] run {run_id}: {view.state}" + (f" ({view.error})" if view.error else "")
    )
    console.print(f"MLflow: {runs.link(view)}")
    table = Table()
    for column in ("node", "state", "partitions", "succeeded", "running", "failed", "pending"):
        table.add_column(column)
    for stage in view.stages:
        running = stage.counts.get("running", 0) + stage.counts.get("queued", 0)
        counts = (
            stage.counts.get("succeeded", 0),
            running,
            stage.counts.get("failed", 0),
            stage.counts.get("pending", 0),
        )
        table.add_row(stage.node_id, stage.state, str(stage.partitions or 0), *map(str, counts))
    console.print(table)
    _print_failures(console, run_id, runs.failures(run_id), lambda child: runs.link(view, child))
    _print_next_step(console, view)
