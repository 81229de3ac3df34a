"""``dropgz check``: can this configuration work? Settings, Dropbox, the work queue."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from dropgz.cli.common import config_option, load
from dropgz.core.config import Settings
from dropgz.core.errors import DropgzError

Check = tuple[str, bool, str]  # what, passed, detail


def _dropbox(settings: Settings) -> list[Check]:
    import dropbox

    from dropgz.dropbox_client import make_dropbox

    d = settings.dropbox
    if not d.has_credentials():
        return [("Dropbox credentials", False, "[Dropbox] token (or refresh_token + app_key) "
                 "is missing")]
    kind = ("refresh token (renewed automatically)" if d.refresh_token and d.app_key
            else "access token (short-lived tokens expire in about 4 hours)")
    try:
        account = make_dropbox(d, max_retries_on_error=1, max_retries_on_rate_limit=1,
                               timeout=20).users_get_current_account()
    except (dropbox.exceptions.DropboxException, OSError) as exc:
        return [("Dropbox account", False, f"{type(exc).__name__}: {str(exc)[:200]}")]
    checks = [("Dropbox account", True, f"{account.name.display_name} <{account.email}> "
               f"{account.account_id}; {kind}")]
    if d.account_id and d.account_id != account.account_id:
        checks.append(("Dropbox account_id", False, f"settings say {d.account_id}, the token "
                       f"belongs to {account.account_id}"))
    return checks


def _webhook(settings: Settings) -> list[Check]:
    ok = bool(settings.dropbox.secret)
    return [("Webhook signature key", ok, "[Dropbox] secret is set" if ok
             else "[Dropbox] secret is missing: webhooks cannot be verified")]


def _queue(settings: Settings) -> list[Check]:
    if not settings.aws.queue:
        path = settings.service.data_path
        path.mkdir(parents=True, exist_ok=True)
        ok = os.access(path, os.W_OK)
        return [("Work queue", ok, f"embedded SQLite queue in {path}"
                 + ("" if ok else " (not writable)"))]
    from dropgz.queues.sqs import describe_queues

    try:
        report = describe_queues(settings)
    except DropgzError as exc:
        return [("SQS", False, str(exc))]
    main, dead = report["queue"], report["dead_letter_queue"]
    checks: list[Check] = []
    if not main["exists"]:
        return [("SQS queue", False, f"{main['name']} does not exist in {report['region']} "
                 "(run: dropgz setup-aws)")]
    checks.append(("SQS queue", True, f"{main['url']} visibility {main['visibility_timeout']}s, "
                   f"{main['visible']} waiting, {main['in_flight']} in flight"))
    if not main.get("redrive_policy"):
        checks.append(("SQS dead-letter queue", False, "no redrive policy (run: dropgz setup-aws)"))
    elif not dead["exists"]:
        checks.append(("SQS dead-letter queue", False, f"{dead['name']} does not exist"))
    else:
        max_receives = main["redrive_policy"].get("maxReceiveCount")
        checks.append(("SQS dead-letter queue", True, f"{dead['name']} after {max_receives} "
                       f"receives, {dead['visible']} dead letters"))
    return checks


CHECKS: list[Callable[[Settings], list[Check]]] = [_dropbox, _webhook, _queue]


@click.command("check")
@config_option
def command(config_path: Path | None) -> None:
    """Validate settings, reach Dropbox (account, token kind) and the work queue (exists in
    the region, visibility timeout, dead-letter queue). Exits 1 if anything failed."""
    settings = load(config_path, "WARNING")
    results: list[Check] = [("Settings", True, settings.source)]
    for check in CHECKS:
        results.extend(check(settings))
    table = Table(show_header=False, box=None)
    for what, ok, detail in results:
        table.add_row("[green]✓[/]" if ok else "[red]✗[/]", what, detail)
    Console().print(table)
    sys.exit(0 if all(ok for _, ok, _ in results) else 1)
