"""`concurrent cluster` (being built)."""

from __future__ import annotations

import click


@click.group()
def cluster() -> None:
    """Kubernetes clusters that nodes can run on."""
