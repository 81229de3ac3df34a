"""``dropgz check``: can this configuration work? Settings, Dropbox, the work queue."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dropgz.cli.common import config_option, load
from dropgz.core.config import CONNECT_CALLBACK_PATH, Settings
from dropgz.core.errors import DropgzError

Check = tuple[str, bool | None, str]  # what, passed (None: a warning, not a failure), detail
# Connected accounts listed one per row; beyond this, only counted.
MAX_ACCOUNT_ROWS = 20


def _dropbox(settings: Settings) -> list[Check]:
    import dropbox

    from dropgz.dropbox_client import make_dropbox

    d = settings.dropbox
    if not d.has_credentials() and d.redirect_uri:
        return [("Dropbox credentials", True, "none in settings: only accounts connected at "
                 "/connect are served")]
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


def _connect(settings: Settings) -> list[Check]:
    d = settings.dropbox
    if not d.redirect_uri:
        return [("Connect page", True, "off ([Dropbox] redirect_uri not set): only the "
                 "[Dropbox] token's account is served")]
    missing = [name for name, value in (("[Dropbox] app_key", d.app_key),
                                        ("[Service] encryption_key",
                                         settings.service.encryption_key)) if not value]
    if missing:
        return [("Connect page", False, f"{' and '.join(missing)} missing")]
    base = d.redirect_uri[: -len(CONNECT_CALLBACK_PATH)]
    return [("Connect page", True, f"users connect at {base}/connect; register "
             f"{d.redirect_uri} as a redirect URI in the App Console")]


def _accounts(settings: Settings) -> list[Check]:
    if settings.service.state != "sqlite":
        return [("Accounts", True, "kept in App Engine's datastore (see the web tier)")]
    from dropgz.core.encryption import DecryptionFailed
    from dropgz.state import ACCOUNT_STATUSES, CredentialMissing, open_state_store

    state = open_state_store(settings)
    try:
        try:
            state.check_cipher()
            cipher: Check = ("Encryption key", True, "opens the stored refresh tokens")
        except CredentialMissing:
            cipher = ("Encryption key", False, "[Service] encryption_key is missing and "
                      "refresh tokens are stored")
        except DecryptionFailed:
            cipher = ("Encryption key", False, "[Service] encryption_key does not decrypt "
                      "the stored refresh tokens")
        counts = {status: state.count_accounts(status) for status in ACCOUNT_STATUSES}
        records = state.list_accounts(limit=MAX_ACCOUNT_ROWS)
    finally:
        state.close()
    summary = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items())
    checks: list[Check] = [("Accounts", True, summary or "none yet")]
    if any(r.has_credential for r in records) or not cipher[1]:
        checks.append(cipher)
    for record in records:
        who = escape(record.email or record.display_name or "[Dropbox] token")
        reason = f": {escape(record.status_reason)}" if record.status_reason else ""
        checks.append((f"  {escape(record.account)}",
                       None if record.status == "needs_reconnect" else True,
                       f"{who} {record.status.replace('_', ' ')}{reason}"))
    return checks


CHECKS: list[Callable[[Settings], list[Check]]] = [_dropbox, _webhook, _queue, _connect,
                                                   _accounts]


@click.command("check")
@config_option
def command(config_path: Path | None) -> None:
    """Validate settings, reach Dropbox (account, token kind) and the work queue (exists in
    the region, visibility timeout, dead-letter queue); the connect page's settings and the
    connected accounts with their state. Exits 1 if anything failed."""
    settings = load(config_path, "WARNING")
    results: list[Check] = [("Settings", True, settings.source)]
    for check in CHECKS:
        results.extend(check(settings))
    table = Table(show_header=False, box=None)
    for what, ok, detail in results:
        mark = "[yellow]![/]" if ok is None else "[green]✓[/]" if ok else "[red]✗[/]"
        table.add_row(mark, what, detail)
    Console().print(table)
    # A user's account needing reconnect (!) is theirs to fix, not the configuration's.
    sys.exit(0 if all(ok is not False for _, ok, _ in results) else 1)
