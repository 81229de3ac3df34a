"""The ``dropgz`` command line. Each subcommand lives in its own module, imported on use."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from dropgz import __version__
from dropgz.core.errors import ConfigError

# subcommand -> module defining a click command of that name (attribute ``command``)
COMMANDS: dict[str, str] = {
    "emulator": "dropgz.cli.emulator",
    "worker": "dropgz.cli.worker",
    "web": "dropgz.cli.web",
    "serve": "dropgz.cli.serve",
    "demo": "dropgz.cli.demo",
    "check": "dropgz.cli.check",
    "setup-aws": "dropgz.cli.setup_aws",
    "status": "dropgz.cli.status",
    "backfill": "dropgz.cli.backfill",
}


class LazyGroup(click.Group):
    """Imports a subcommand's module only when it runs (or when help lists it)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        return importlib.import_module(module).command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            # One line, no traceback: the message names file, section and key.
            click.echo(f"dropgz: configuration error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dropgz")
def main() -> None:
    """dropgz: gzip every new or changed file in a Dropbox account (foo.txt -> foo.txt.gz)."""
