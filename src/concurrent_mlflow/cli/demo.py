"""`concurrent demo`: generate data, register a model and run the bundled 4-stage DAG."""

from __future__ import annotations

from pathlib import Path

import click

from concurrent_mlflow.cli.base import CliContext, console
from concurrent_mlflow.cli.runs import start_run


@click.command()
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
    run_id = start_run(obj, dag_file, [], None, progress=True)
    report = read_report(obj.tracking_uri(), run_id)
    if report:
        console.print(report)
    console.print(
        f"The DAG and its projects are in {dag_file.parent}; change them and run "
        f"`concurrent run {dag_file}`. The report is the `report` node's outputs/report.md in MLflow."
    )
