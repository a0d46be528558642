"""`concurrent schedule` (being built)."""

from __future__ import annotations

import click


@click.group()
def schedule() -> None:
    """Cron schedules of stored DAGs (micro-batch runs over new data)."""
