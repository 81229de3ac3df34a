"""``dropgz status``: the work queue, the watched accounts, what was compressed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
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


def _accounts_table(settings: Settings, limit: int) -> Table:
    table = Table(title="accounts")
    table.add_column("account", no_wrap=True)
    for column in ("user", "state", "watching since", "changes up to", "delta"):
        table.add_column(column)
    if settings.service.state != "sqlite":
        table.add_row("(state is kept in App Engine's datastore)", "", "", "", "", "")
        return table
    from dropgz.state import ACCOUNT_STATUSES, open_state_store

    state = open_state_store(settings)
    try:
        records = state.list_accounts(limit=limit)
        counts = {status: state.count_accounts(status) for status in ACCOUNT_STATUSES}
    finally:
        state.close()
    reasons = []
    for record in records:
        user = " ".join(x for x in (record.display_name, f"<{record.email}>"
                                    if record.email else "") if x)
        if not record.connected_at:
            user = "[Dropbox] token"  # the seed's account, served from the settings
        # Names come from users: text, never rich markup.
        table.add_row(escape(record.account), escape(user or "-"), _state(record.status),
                      _when(record.watch_start), _when(record.last_sync),
                      "running" if record.lease_owner else "idle")
        if record.status_reason:
            reasons.append(f"{record.account}: {record.status_reason}")
    total = sum(counts.values())
    if total > len(records):
        table.add_row(f"... {total - len(records):,} more", "(--accounts N)", "", "", "", "")
    table.caption = escape("\n".join([", ".join(f"{n:,} {s.replace('_', ' ')}"
                                                 for s, n in counts.items()), *reasons]))
    return table


def _state(status: str) -> str:
    colour = {"watching": "green", "needs_reconnect": "red", "paused": "yellow"}[status]
    return f"[{colour}]{status.replace('_', ' ')}[/]"


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "-"  # type: ignore[attr-defined]


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
        skips = ledger.skips()
    finally:
        ledger.close()
    table = Table(title="compressed by this host's workers (no report store found)")
    for column in ("files", "skipped", "bytes in", "bytes out", "bytes saved", "last"):
        table.add_column(column, justify="right")
    table.add_row(f"{totals.compressed:,}", f"{totals.skipped:,}", f"{totals.bytes_in:,}",
                  f"{totals.bytes_out:,}", f"{totals.bytes_saved:,}", totals.last_update or "-")
    if skips:
        table.caption = "skipped: " + ", ".join(f"{kind} {files:,}" for kind, files in
                                                skips.items())
    return table


@click.command("status")
@config_option
@click.option("--accounts", "account_rows", type=click.IntRange(1, 1000), default=50,
              show_default=True, help="Accounts listed (the caption counts them all).")
def command(config_path: Path | None, account_rows: int) -> None:
    """Queue depth, in flight and dead letters; the accounts served (the seed's and every
    connected one), their state (watching, needs reconnect, paused) and how far their
    changes were read; files compressed, skipped and failed and bytes saved by every worker
    (the dashboard's numbers)."""
    settings = load(config_path, "WARNING")
    console = Console()
    for table in (_queue_table(settings), _accounts_table(settings, account_rows),
                  _totals_table(settings)):
        console.print(table)
