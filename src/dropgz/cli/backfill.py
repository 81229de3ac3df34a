"""``dropgz backfill``: compress what was already in Dropbox before dropgz watched it."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from dropgz.cli.common import config_option, load, log_level_option
from dropgz.compression.compress import FileCompressor
from dropgz.ops.account_clients import UnknownAccount, account_client
from dropgz.ops.backfill import Backfill


@click.command("backfill")
@click.argument("path", default="/")
@config_option
@log_level_option
@click.option("--direct", is_flag=True,
              help="Compress here instead of sending work messages to the work queue.")
@click.option("--concurrency", type=click.IntRange(1, 256), default=None,
              help="Files at once with --direct (default: [Service] concurrency).")
@click.option("--restart", is_flag=True, help="Forget an unfinished backfill of PATH first.")
@click.option("--account", "account_id", default=None, metavar="ID",
              help="The connected account to backfill (dbid:...; default: the account of "
                   "[Dropbox] token). Its id is on the page shown after connecting.")
def command(path: str, config_path: Path | None, log_level: str, direct: bool,
            concurrency: int | None, restart: bool, account_id: str | None) -> None:
    """Compress every eligible file already under PATH (default: everything) of one account:
    through the work queue (workers do it), or --direct. Resumable: run it again after an
    interruption and it goes on where it stopped."""
    if not path.startswith("/"):
        raise click.BadParameter(f"must start with '/': {path!r}", param_hint="PATH")
    settings = load(config_path, log_level)
    workers = concurrency or settings.service.concurrency
    try:
        account, dbx = account_client(settings, account_id, pool_size=workers + 4)
    except UnknownAccount as exc:
        raise click.BadParameter(str(exc), param_hint="--account") from None
    backfill = Backfill(settings.service.data_path, account, path)
    if restart:
        backfill.finish()
    console = Console(stderr=True)
    with console.status(f"listing {path} ..."):
        items = backfill.plan(dbx, settings.compression)
    start = backfill.done()
    total_bytes = sum(i.size or 0 for i in items)
    done_bytes = sum(i.size or 0 for i in items[:start])
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[files]}"), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("compressing" if direct else "queueing", total=total_bytes,
                            completed=done_bytes, files=f"{start}/{len(items)} files")
        count = [start]

        def progress(files: int, size: int) -> None:
            count[0] += files
            bar.update(task, advance=size, files=f"{count[0]}/{len(items)} files")

        if direct:
            compressor = FileCompressor(dbx, settings.compression)
            outcomes, failures = backfill.compress(items, compressor, workers, progress)
        else:
            from dropgz.queues import open_work_queue

            queue = open_work_queue(settings)
            try:
                backfill.enqueue(items, queue, progress)
            finally:
                queue.close()
            outcomes, failures = [], []
    for item, reason in failures:
        console.print(f"[red]failed[/] {item.path}: {reason}")
    if failures:
        console.print(f"{len(failures)} file(s) failed; run the same command again to retry them")
        sys.exit(1)
    backfill.finish()
    if direct:
        compressed = [o for o in outcomes if o.status == "compressed"]
        saved = sum(o.bytes_in - o.bytes_out for o in compressed)
        console.print(f"{len(compressed)} compressed, {len(outcomes) - len(compressed)} "
                      f"skipped, {saved:,} bytes saved")
    else:
        console.print(f"{len(items) - start} work messages sent for {len(items)} files "
                      f"under {path} of {account}")
