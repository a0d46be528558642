"""The `concurrent` command line: run DAGs, validate them, read runs back, and the demo."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from concurrent_mlflow import local_mlflow
from concurrent_mlflow.dag import apply_overrides, json_schema, load_dag, parse_overrides
from concurrent_mlflow.errors import ConcurrentError
from concurrent_mlflow.server_cli import server, token
from concurrent_mlflow.settings import Paths

console = Console(stderr=False, highlight=False)
err = Console(stderr=True, highlight=False)


class CliContext:
    def __init__(self, paths: Paths) -> None:
        self.paths = paths

    def tracking_uri(self) -> str:
        return local_mlflow.tracking_uri(self.paths.mlflow)


def run_url(tracking_uri: str, experiment_id: str | None, mlflow_run_id: str | None) -> str:
    """A browser link for an MLflow run, or how to open one for non-HTTP tracking URIs."""
    from concurrent_mlflow.tracking import ui_url

    url = ui_url(tracking_uri, experiment_id, mlflow_run_id)
    if url:
        return url
    return f"run {mlflow_run_id} in {tracking_uri} (open with: mlflow ui --backend-store-uri {tracking_uri})"


class _MainGroup(click.Group):
    """Turns our errors into a clean message and exit code 2 instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConcurrentError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(
    cls=_MainGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    envvar="CONCURRENT_HOME",
    help="Data dir for the run store, caches, logs and the local MLflow server "
    "[env CONCURRENT_HOME; default ~/.concurrent-mlflow].",
)
@click.version_option(package_name="concurrent-mlflow")
@click.pass_context
def main(ctx: click.Context, home: Path | None) -> None:
    """Run DAGs of MLflow Projects with data-parallel fan-out, tracked in MLflow.

    Without MLFLOW_TRACKING_URI, runs are tracked by a local MLflow server under the data dir, started on
    first use and left running (see `concurrent mlflow`).
    """
    ctx.obj = CliContext(Paths(home.expanduser()) if home else Paths.from_env())
    # We print one MLflow link per DAG run ourselves; MLflow would print one per task.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


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


@main.group(cls=_RunGroup)
def run() -> None:
    """Run a DAG (`concurrent run DAG.yaml`) or retry a failed run (`concurrent run retry RUN_ID`).

    Shows a live progress bar per node, prints the MLflow URL of the parent run, and exits non-zero
    naming the failing node, partition and log when the run fails. Ctrl-C cancels the run.
    """


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
    help="Tasks running at once on this machine [default: CPU count].",
)
@click.option("--progress/--no-progress", default=True, help="Show the live progress display.")
@click.pass_obj
def run_start(
    obj: CliContext, dag_file: Path, params: Sequence[str], max_parallel: int | None, progress: bool
) -> None:
    _start_run(obj, dag_file, params, max_parallel, progress)


def _start_run(
    obj: CliContext, dag_file: Path, params: Sequence[str], max_parallel: int | None, progress: bool
) -> str:
    from concurrent_mlflow.plan import check_projects
    from concurrent_mlflow.runner import open_engine

    overrides = parse_overrides(params)
    dag = apply_overrides(load_dag(dag_file), overrides)
    base_dir = dag_file.resolve().parent
    check_projects(dag, base_dir=base_dir, cache_dir=obj.paths.cache)
    engine, store = open_engine(obj.paths, obj.tracking_uri(), max_parallel)
    run_id = engine.start(dag, base_dir=base_dir, overrides=overrides)
    _drive(engine, store, run_id, progress, f"Run {run_id} of DAG {dag.name!r}")
    return run_id


@run.command("retry")
@click.argument("run_id")
@click.option("--max-parallel", type=click.IntRange(1), default=None)
@click.option("--progress/--no-progress", default=True)
@click.pass_obj
def run_retry(obj: CliContext, run_id: str, max_parallel: int | None, progress: bool) -> None:
    """Re-run only what failed in RUN_ID; succeeded partitions keep their outputs."""
    from concurrent_mlflow.runner import open_engine

    engine, store = open_engine(obj.paths, obj.tracking_uri(), max_parallel)
    reset = engine.retry(run_id)
    _drive(engine, store, run_id, progress, f"Retrying run {run_id} ({reset} partition(s) to redo)")


def _drive(engine: Any, store: Any, run_id: str, progress: bool, title: str) -> None:
    from concurrent_mlflow.progress import RunProgress
    from concurrent_mlflow.store.queries import failed_attempts, run_view

    view = run_view(store, run_id)
    assert view is not None
    url = run_url(engine.tracking.tracking_uri, view.experiment_id, view.mlflow_run_id)
    console.print(f"[bold]{title}[/]\nMLflow: {url}")
    started = time.monotonic()
    try:
        if progress:
            with RunProgress(store, run_id, console) as display:
                state = engine.run_until_done(run_id, on_tick=display.update)
        else:
            state = engine.run_until_done(run_id)
    except KeyboardInterrupt:
        err.print(
            f"[yellow]Run {run_id} cancelled: running tasks were stopped and marked KILLED in MLflow.[/]"
        )
        sys.exit(130)
    elapsed = time.monotonic() - started
    if state == "succeeded":
        console.print(f"[green]Run {run_id} succeeded[/] in {elapsed:.1f}s. MLflow: {url}")
        return
    view = run_view(store, run_id)
    err.print(f"[red]Run {run_id} {state}[/] after {elapsed:.1f}s: {view.error if view else ''}")
    _print_failures(failed_attempts(store, run_id), engine.tracking.tracking_uri, view)
    err.print(f"Fix the cause, then: concurrent run retry {run_id}")
    sys.exit(1)


def _print_failures(failures: Sequence[Any], tracking_uri: str, view: Any) -> None:
    if not failures:
        return
    table = Table(title="Failed partitions", show_lines=False)
    for column in ("node", "partition", "attempt", "error", "log", "MLflow run"):
        table.add_column(column, overflow="fold")
    for f in failures[:20]:
        table.add_row(
            f.node_id,
            str(f.partition),
            str(f.attempt),
            f.error or "",
            f.log_path or "",
            run_url(tracking_uri, view.experiment_id, f.mlflow_run_id),
        )
    err.print(table)
    if len(failures) > 20:
        err.print(f"... and {len(failures) - 20} more failed partition(s)")


@main.group()
def runs() -> None:
    """Read DAG runs back from MLflow."""


@runs.command("list")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.pass_obj
def runs_list(obj: CliContext, limit: int) -> None:
    """The latest DAG runs (MLflow parent runs tagged by Concurrent)."""
    from concurrent_mlflow.tracking import TAG_PREFIX, Tracking

    tracking = Tracking(obj.tracking_uri())
    table = Table()
    for column in ("run", "DAG", "status", "started", "MLflow run id"):
        table.add_column(column)
    for parent in tracking.find_parents(limit):
        tags = parent.data.tags
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(parent.info.start_time / 1000))
        table.add_row(
            tags.get(f"{TAG_PREFIX}run_id", "?"),
            tags.get(f"{TAG_PREFIX}dag", "?"),
            parent.info.status,
            started,
            parent.info.run_id,
        )
    console.print(table)


@runs.command("show")
@click.argument("run_id")
@click.pass_obj
def runs_show(obj: CliContext, run_id: str) -> None:
    """Per-node partition counts of RUN_ID as MLflow records them (latest attempt per partition)."""
    from concurrent_mlflow.tracking import TAG_PREFIX, Tracking

    tracking = Tracking(obj.tracking_uri())
    found = tracking.find_parents(1, run_id=run_id)
    parent = found[0] if found else None
    if parent is None:
        raise ConcurrentError(
            f"No DAG run {run_id!r} in MLflow at {tracking.tracking_uri}; "
            "`concurrent runs list` shows the known runs."
        )
    latest: dict[tuple[str, int], Any] = {}
    for child in tracking.children(parent):
        tags = child.data.tags
        key = (tags.get(f"{TAG_PREFIX}node", "?"), int(tags.get(f"{TAG_PREFIX}partition", "0")))
        if key not in latest or int(tags.get(f"{TAG_PREFIX}attempt", "1")) > int(
            latest[key].data.tags.get(f"{TAG_PREFIX}attempt", "1")
        ):
            latest[key] = child
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


@main.group()
def dag() -> None:
    """Validate DAG documents, print their JSON Schema, import the original product's DAGs."""


@dag.command("validate")
@click.argument("dag_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--projects/--no-projects",
    default=True,
    help="Also fetch each project and check entry points and parameters against its MLproject.",
)
@click.pass_obj
def dag_validate(obj: CliContext, dag_file: Path, projects: bool) -> None:
    """Report every problem in DAG_FILE, naming the node and field; exit 1 if there is any."""
    from concurrent_mlflow.plan import check_projects

    loaded = load_dag(dag_file)
    if projects:
        check_projects(loaded, base_dir=dag_file.resolve().parent, cache_dir=obj.paths.cache)
    console.print(
        f"[green]{dag_file}: DAG {loaded.name!r} is valid[/] ({len(loaded.nodes)} nodes, "
        f"{len(loaded.edges)} edges)"
    )


@dag.command("schema")
def dag_schema() -> None:
    """Print the JSON Schema of DAG documents (for editors and CI checks)."""
    click.echo(json.dumps(json_schema(), indent=2))


@dag.command("import-legacy")
@click.argument("legacy_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="Name of the new DAG [default: the file name].")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the YAML here [default: stdout]. The report always goes to stderr.",
)
def dag_import_legacy(legacy_file: Path, name: str | None, output: Path | None) -> None:
    """Convert an original Concurrent for MLflow DAG (JSON: {"node": [...], "edge": [...]}) to our YAML.

    Everything that does not carry over (Kubernetes settings, Python lambda partitioners, unknown input
    types...) is listed in a report naming the legacy field; nothing is dropped silently. Exits 1 without
    writing anything if the document cannot become a valid DAG.
    """
    from concurrent_mlflow.legacy import load_legacy

    conversion = load_legacy(legacy_file, name=name)
    text = conversion.dag.to_yaml()
    if output:
        output.write_text(text, encoding="utf-8")
        err.print(f"[green]Wrote DAG {conversion.dag.name!r} to {output}[/]")
    else:
        click.echo(text, nl=False)
    colours = {"info": "dim", "warning": "yellow", "error": "red"}
    for note in conversion.report:
        err.print(f"[{colours[note.severity]}]{note}[/]", markup=True, highlight=False)
    errors = sum(1 for n in conversion.report if n.severity == "error")
    err.print(f"{len(conversion.report)} note(s), {errors} of them about things that could not be mapped.")


@main.group("mlflow")
def mlflow_group() -> None:
    """The local MLflow server used when MLFLOW_TRACKING_URI is not set."""


@mlflow_group.command("url")
@click.pass_obj
def mlflow_url(obj: CliContext) -> None:
    """Print the tracking URI in use, starting the local server if needed."""
    click.echo(obj.tracking_uri())


@mlflow_group.command("stop")
@click.pass_obj
def mlflow_stop(obj: CliContext) -> None:
    """Stop the local MLflow server (its data stays under the data dir)."""
    click.echo(
        "stopped" if local_mlflow.stop_server(obj.paths.mlflow) else "no local MLflow server is running"
    )


@main.command()
@click.option(
    "--files",
    type=click.IntRange(10, 1_000_000),
    default=3000,
    show_default=True,
    help="How many input files to generate.",
)
@click.option("--partitions", type=click.IntRange(1, 256), default=8, show_default=True)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write the demo data and DAG [default: <data dir>/demo].",
)
@click.pass_obj
def demo(obj: CliContext, files: int, partitions: int, workdir: Path | None) -> None:
    """Generate data, train and register a model, and run the bundled 4-stage DAG.

    ingest (by day directory) -> preprocess (fanned out) -> batch inference (one-to-one) -> report (fan-in).
    """
    from concurrent_mlflow.demo.runner import prepare_demo, read_report

    dag_file = prepare_demo(
        workdir or obj.paths.home / "demo", obj.tracking_uri(), files, partitions, console
    )
    run_id = _start_run(obj, dag_file, [], None, progress=True)
    report = read_report(obj.tracking_uri(), run_id)
    if report:
        console.print(report)
    console.print(
        f"The DAG and its projects are in {dag_file.parent}; change them and run "
        f"`concurrent run {dag_file}`. The report is the `report` node's outputs/report.md in MLflow."
    )


main.add_command(server)
main.add_command(token)

if __name__ == "__main__":  # pragma: no cover
    main()
