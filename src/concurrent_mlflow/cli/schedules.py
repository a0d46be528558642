"""`concurrent schedule`: cron schedules of stored DAGs, managed on a `concurrent server`.

Schedules live on a server because its engine loop is what fires them; there is no embedded mode, so
every command needs --server (or CONCURRENT_SERVER) and says so plainly when it is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from concurrent_mlflow.cli.base import CliContext, console
from concurrent_mlflow.dag import parse_overrides
from concurrent_mlflow.errors import ConcurrentError

if TYPE_CHECKING:
    from concurrent_mlflow.client import ApiClient


@click.group()
def schedule() -> None:
    """Cron schedules of stored DAGs: micro-batch runs over the data that arrived since the last one.

    Each tick runs the DAG's newest version over the window [end of the last successful run's window,
    tick): sources marked `incremental: true` list only files modified inside it, so a failed run's data is
    picked up again by the next run. The first run's window starts at 1970, i.e. it takes all existing data.
    Ticks missed while no server was running coalesce into ONE run. --overlap says what a tick does while
    the previous run is still going: `skip` drops it, `queue` fires it once that run ends.

    Schedules are fired by a `concurrent server`, so these commands need --server URL (or
    CONCURRENT_SERVER); the DAG must be stored there (`concurrent run --server ... DAG.yaml` stores it).
    Scheduled runs resolve relative paths in the DAG against the server's work dir.
    """


@schedule.command("create")
@click.argument("dag")
@click.option(
    "--cron",
    required=True,
    metavar="EXPR",
    help="5 fields (minute hour day-of-month month day-of-week), e.g. '*/15 * * * *'; or 6 with seconds "
    "last, for tests and sub-minute micro-batches: '* * * * * */5' is every 5 seconds.",
)
@click.option("--tz", "timezone", default="UTC", show_default=True, help="IANA time zone of the cron.")
@click.option(
    "--overlap",
    type=click.Choice(["skip", "queue"]),
    default="skip",
    show_default=True,
    help="While a run of this schedule is going: drop the tick (skip) or fire it when the run ends (queue).",
)
@click.option(
    "-P",
    "--param",
    "params",
    multiple=True,
    metavar="NODE.PARAM=VALUE",
    help="Override a project node's parameter in every run (repeatable).",
)
@click.option("--paused", is_flag=True, help="Create it paused; `concurrent schedule resume ID` starts it.")
@click.pass_obj
def schedule_create(
    obj: CliContext, dag: str, cron: str, timezone: str, overlap: str, params: Sequence[str], paused: bool
) -> None:
    """Schedule the stored DAG named DAG."""
    body = {
        "dag": dag,
        "cron": cron,
        "timezone": timezone,
        "overlap": overlap,
        "overrides": parse_overrides(params),
        "enabled": not paused,
    }
    created = _api(obj).create_schedule(body)
    console.print(f"[green]Schedule {created['id']} of DAG {dag!r} created.[/] {_summary(created)}")


@schedule.command("list")
@click.option("--dag", default=None, help="Only this DAG's schedules.")
@click.option("--limit", type=click.IntRange(1, 500), default=100, show_default=True)
@click.pass_obj
def schedule_list(obj: CliContext, dag: str | None, limit: int) -> None:
    """The schedules you may see, with their next tick and last run."""
    table = Table()
    for column in ("id", "DAG", "cron", "overlap", "state", "next tick", "last run", "last error"):
        table.add_column(column, overflow="fold")
    for item in _api(obj).schedules(dag, limit):
        last_run = f"{item['last_run_id']} {item['last_run_state']}" if item["last_run_id"] else ""
        table.add_row(
            str(item["id"]),
            item["dag"],
            f"{item['cron']} ({item['timezone']})",
            item["overlap"],
            "active" if item["enabled"] else "paused",
            _when(item["next_fire_at"]),
            last_run,
            item["last_error"] or "",
        )
    console.print(table)


@schedule.command("pause")
@click.argument("schedule_id", type=click.IntRange(1))
@click.pass_obj
def schedule_pause(obj: CliContext, schedule_id: int) -> None:
    """Stop firing SCHEDULE_ID (a run already going carries on)."""
    _api(obj).update_schedule(schedule_id, {"enabled": False})
    console.print(f"Schedule {schedule_id} paused.")


@schedule.command("resume")
@click.argument("schedule_id", type=click.IntRange(1))
@click.pass_obj
def schedule_resume(obj: CliContext, schedule_id: int) -> None:
    """Fire SCHEDULE_ID again from its next tick; its next run covers everything since the last success."""
    updated = _api(obj).update_schedule(schedule_id, {"enabled": True})
    console.print(f"Schedule {schedule_id} resumed. {_summary(updated)}")


@schedule.command("delete")
@click.argument("schedule_id", type=click.IntRange(1))
@click.pass_obj
def schedule_delete(obj: CliContext, schedule_id: int) -> None:
    """Delete SCHEDULE_ID; the runs it started stay."""
    _api(obj).delete_schedule(schedule_id)
    console.print(f"Schedule {schedule_id} deleted.")


def _api(obj: CliContext) -> ApiClient:
    if not obj.server:
        raise ConcurrentError(
            "Schedules are fired by a `concurrent server`; pass --server URL (or set CONCURRENT_SERVER). "
            "Start one with `concurrent server` (its store and work dir are where the DAG's runs happen)."
        )
    return obj.api()


def _summary(item: dict[str, Any]) -> str:
    when = f"next tick {_when(item['next_fire_at'])}" if item["next_fire_at"] else "paused"
    return f"cron {item['cron']!r} ({item['timezone']}), overlap {item['overlap']}; {when}."


def _when(moment: str | None) -> str:
    if not moment:
        return ""
    return datetime.fromisoformat(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
