"""A Click group that imports a subcommand's module only when that subcommand is run (or its help shown).

`concurrent --version`, `--help` and `dag validate` must start in about the time it takes to import Click,
rich, pydantic and PyYAML; the `run`, `server` and `cluster` modules pull in MLflow, SQLAlchemy, FastAPI and
the Kubernetes client. So the top-level group holds a table of name -> (module:attribute, short help) and
lists its commands from that table, the way Click's documented LazyGroup does. A unit test keeps each short
help equal to the first paragraph of the real command's docstring, so `concurrent --help` reads the same.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import click


class LazyGroup(click.Group):
    """A group whose subcommands are `module:attribute` paths, imported on first use."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy_commands: dict[str, tuple[str, str]] = {}

    def add_lazy_commands(self, commands: Mapping[str, tuple[str, str]]) -> None:
        """Register subcommands by name as (`package.module:attribute`, short help for the listing)."""
        self.lazy_commands.update(commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            self.add_command(_load(self.lazy_commands[cmd_name][0]), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Click's own listing, fed stand-ins that carry the short help so listing imports nothing."""
        listed = [(name, self._listed(ctx, name)) for name in self.list_commands(ctx)]
        shown = [(name, command) for name, command in listed if command is not None and not command.hidden]
        if not shown:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in shown)
        with formatter.section("Commands"):
            formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in shown])

    def _listed(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        return click.Command(name, help=self.lazy_commands[name][1])


def _load(target: str) -> click.Command:
    module_name, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a Click command")
    return command
