"""``dropgz demo``: see the whole pipeline work, offline, in about a minute."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dropgz.core.config import parse_size


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("demo")
@click.option("--keep", is_flag=True,
              help="Leave the emulator and serve running afterwards; print their URLs and "
                   "a settings.cfg for them.")
@click.option("--big", "big_bytes", default="50MB", show_default=True, callback=_size,
              help="Size of the one large file in the sample set (0 leaves it out).")
@click.option("--timeout", type=click.FloatRange(1, 3600), default=180, show_default=True,
              help="Seconds to wait for every .gz.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the emulator's files, data and logs here (default: a temp folder).")
@click.option("--accounts", type=click.IntRange(1, 20), default=2, show_default=True,
              help="Dropbox users in the emulator; each connects through /connect.")
def command(keep: bool, big_bytes: int, timeout: float, workdir: Path | None,
            accounts: int) -> None:
    """Start the Dropbox emulator with several users and `dropgz serve` on free loopback
    ports, connect every user through /connect (the OAuth flow, over HTTP), upload a varied
    sample set into each Dropbox, let webhooks drive the pipeline, verify every .gz, print a
    table per user. Exits 0 when every eligible file has a correct .gz and nothing else was
    touched."""
    from dropgz.ops.demo import run_demo  # rich and the SDK load only when the demo runs

    sys.exit(run_demo(keep, big_bytes, timeout, workdir, accounts))
