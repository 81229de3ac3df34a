"""``dropgz status``: the work queue, the watched accounts, what was compressed."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from dropgz.cli.common import config_option, load
from dropgz.core.config import Settings
from dropgz.ops.ledger import Ledger
from dropgz.queues import open_work_queue


def _queue_table(settings: Settings) -> Table:
    queue = open_work_queue(settings)
    try:
        stats = queue.stats()
        dead = queue.dead_letters(limit=5) if stats.dead else []
    finally:
        queue.close()
    table = Table(title=f"work queue: {settings.aws.queue or 'embedded SQLite'}")
    for column in ("waiting", "in flight", "dead letters"):
        table.add_column(column, justify="right")
    table.add_row(str(stats.visible), str(stats.in_flight), str(stats.dead))
    for letter in dead:
        table.add_row("", "", f"[red]{(letter.reason or 'redriven by SQS')[:80]}[/]")
    return table


def _accounts_table(settings: Settings) -> Table:
    table = Table(title="accounts")
    for column in ("account", "watching since", "changes seen up to", "delta run"):
        table.add_column(column)
    if settings.service.state != "sqlite":
        table.add_row("(state is kept in App Engine's datastore)", "", "", "")
        return table
    from dropgz.state import open_state_store

    state = open_state_store(settings)
    try:
        for account in state.accounts():
            record = state.get(account)
            if record is None:
                continue
            table.add_row(account, _when(record.watch_start), _when(record.synced_at),
                          "running" if record.lease_owner else "idle")
    finally:
        state.close()
    return table


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "-"  # type: ignore[attr-defined]


def _totals_table(settings: Settings) -> Table:
    ledger = Ledger.in_dir(settings.service.data_path)
    try:
        totals = ledger.totals()
    finally:
        ledger.close()
    table = Table(title="compressed by this host's workers")
    for column in ("files", "skipped", "bytes in", "bytes out", "bytes saved", "last"):
        table.add_column(column, justify="right")
    table.add_row(f"{totals.compressed:,}", f"{totals.skipped:,}", f"{totals.bytes_in:,}",
                  f"{totals.bytes_out:,}", f"{totals.bytes_saved:,}", totals.last_update or "-")
    return table


@click.command("status")
@config_option
def command(config_path: Path | None) -> None:
    """Queue depth, in flight and dead letters; watched accounts and how far their changes
    were read; files compressed and bytes saved by this host's workers."""
    settings = load(config_path, "WARNING")
    console = Console()
    for table in (_queue_table(settings), _accounts_table(settings), _totals_table(settings)):
        console.print(table)
