"""``dropgz emulator``: run the Dropbox API v2 emulator (see ``dropgz emulator --help``)."""

from __future__ import annotations

import sys

import click


@click.command(
    name="emulator",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def command(args: tuple[str, ...]) -> None:
    """Run the Dropbox API v2 emulator (flags: dropgz emulator --help)."""
    # The emulator is a separate product with its own argparse parser (it must not depend on
    # the service); every flag, --help included, goes to it unchanged.
    from dropgz.emulator.cli import main

    sys.exit(main(list(args), prog="dropgz emulator"))
