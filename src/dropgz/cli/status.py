"""``dropgz status``: the work queue, the watched accounts, what was compressed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from dropgz.cli.common import config_option, load
from dropgz.core.config import Settings
from dropgz.core.errors import DropgzError
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


def global_totals(settings: Settings) -> tuple[dict[str, Any], str] | None:
    """Every worker's numbers, as the dashboard shows them: from the web tier when
    ``[Service] web_url`` and ``internal_key`` are set, else from the report store in the
    data folder (single host); None when neither is there."""
    service = settings.service
    if service.web_url and service.internal_key:
        from dropgz.compression.internal_client import InternalClient

        client = InternalClient(service.web_url, service.internal_key, timeout=10)
        try:
            return client.post("/internal/summary", {}), f"web tier {service.web_url}"
        except DropgzError as exc:
            click.echo(f"dropgz status: web tier not reachable ({exc}); reading local data",
                       err=True)
        finally:
            client.close()
    path = service.data_path / "reports.sqlite3"
    if service.state == "sqlite" and path.exists():
        from dropgz.state.reports import utcnow
        from dropgz.state.reports_sqlite import SqliteReportStore

        store = SqliteReportStore(path)
        beats = store.workers()
        live = [b for b in beats if not b.stale(utcnow())]
        return ({"totals": store.totals(),
                 "workers": {"live": len(live), "stale": len(beats) - len(live),
                             "in_flight": sum(b.in_flight for b in live)}}, f"{path}")
    return None


def _totals_table(settings: Settings) -> Table:
    found = global_totals(settings)
    if found is None:
        return _ledger_table(settings)
    summary, source = found
    totals = summary.get("totals", {})
    workers = summary.get("workers", {})
    table = Table(title=f"compressed by every worker (as on /dashboard; from {source})")
    for column in ("files", "skipped", "failed", "bytes in", "bytes out", "bytes saved",
                   "workers"):
        table.add_column(column, justify="right")
    bytes_in, bytes_out = totals.get("bytes_in", 0), totals.get("bytes_out", 0)
    table.add_row(f"{totals.get('files:compressed', 0):,}", f"{totals.get('files:skipped', 0):,}",
                  f"{totals.get('files:failed', 0):,}", f"{bytes_in:,}", f"{bytes_out:,}",
                  f"{bytes_in - bytes_out:,}",
                  f"{workers.get('live', 0)} live, {workers.get('stale', 0)} stale")
    return table


def _ledger_table(settings: Settings) -> Table:
    ledger = Ledger.in_dir(settings.service.data_path)
    try:
        totals = ledger.totals()
    finally:
        ledger.close()
    table = Table(title="compressed by this host's workers (no report store found)")
    for column in ("files", "skipped", "bytes in", "bytes out", "bytes saved", "last"):
        table.add_column(column, justify="right")
    table.add_row(f"{totals.compressed:,}", f"{totals.skipped:,}", f"{totals.bytes_in:,}",
                  f"{totals.bytes_out:,}", f"{totals.bytes_saved:,}", totals.last_update or "-")
    return table


@click.command("status")
@config_option
def command(config_path: Path | None) -> None:
    """Queue depth, in flight and dead letters; watched accounts and how far their changes
    were read; files compressed, skipped and failed and bytes saved by every worker (the
    dashboard's numbers)."""
    settings = load(config_path, "WARNING")
    console = Console()
    for table in (_queue_table(settings), _accounts_table(settings), _totals_table(settings)):
        console.print(table)
