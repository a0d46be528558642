"""`concurrent dag`: validate DAG documents, print their JSON Schema, import the original product's DAGs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from concurrent_mlflow.cli.base import CliContext, err
from concurrent_mlflow.dag import json_schema, load_dag


@click.group()
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
    valid = click.style(f"{dag_file}: DAG {loaded.name!r} is valid", fg="green")  # rich not needed here
    click.echo(f"{valid} ({len(loaded.nodes)} nodes, {len(loaded.edges)} edges)")


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

    Everything that does not carry over (Python lambda partitioners, unknown input types...) is listed in
    a report naming the legacy field; nothing is dropped silently. Kubernetes settings become a cluster
    name, resources and a node selector; the report ends with the `concurrent cluster add` command that
    registers each cluster. Exits 1 without
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
    for line in conversion.summary():
        err.print(line, markup=False, highlight=False, soft_wrap=True)  # a command stays one line
