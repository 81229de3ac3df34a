"""``/_emulator/<name>``: helpers for tests, never faulted. Any account's fixed token opens
them (even after that account unlinked the app: tests still need to look).

==========================  =============================================================
``GET stats``               requests counted per route and status (:mod:`stats`)
``POST reset-stats``        zero the counters
``GET config``              run-time settings; ``POST config`` changes some (JSON object)
``GET webhooks``            delivery counters of the webhook notifier
``POST compact-journal``    drop the change journal (``{"account_id": ...}``, default the
                            first account): older cursors get ``reset``
``POST unlink``             ``{"account_id": ...}``: the user removed the app; every token
                            and refresh token of the account stops working
==========================  =============================================================
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dropgz.emulator.accounts import Account
    from dropgz.emulator.app import Emulator


class AdminError(Exception):
    """A refused admin request: ``status`` (400/404) and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def answer(emu: Emulator, method: str, name: str, raw_body: bytes) -> Any:
    """The JSON answer of ``method /_emulator/name``; AdminError for a 4xx."""
    handler = _ROUTES.get((method, name))
    if handler is None:
        raise AdminError(404, f"unknown admin route {method} /_emulator/{name}")
    return handler(emu, raw_body)


def _json_object(raw_body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw_body or b"{}")
    except ValueError as exc:
        raise AdminError(400, f"body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise AdminError(400, "expected a JSON object")
    return value


def _account(emu: Emulator, body: dict[str, Any], *, required: bool) -> Account:
    account_id = body.get("account_id")
    if account_id is None and not required:
        return emu.accounts[0]
    account = emu.by_id.get(account_id) if isinstance(account_id, str) else None
    if account is None:
        raise AdminError(400, f"unknown account_id {account_id!r}; the emulator has "
                              f"{', '.join(emu.by_id)}")
    return account


def _config(emu: Emulator, raw_body: bytes) -> Any:
    try:
        return emu.settings.update(_json_object(raw_body))
    except ValueError as exc:
        raise AdminError(400, f"bad config change: {exc}") from None


def _reset_stats(emu: Emulator, raw_body: bytes) -> Any:
    emu.stats.reset()
    return {"ok": True}


def _compact(emu: Emulator, raw_body: bytes) -> Any:
    account = _account(emu, _json_object(raw_body), required=False)
    return {"journal_floor": account.namespace.journal.compact()}


def _unlink(emu: Emulator, raw_body: bytes) -> Any:
    account = _account(emu, _json_object(raw_body), required=True)
    return {"account_id": account.account_id,
            "revoked_tokens": emu.tokens.unlink(account.account_id)}


_ROUTES = {
    ("GET", "stats"): lambda emu, _: emu.stats.snapshot(),
    ("POST", "reset-stats"): _reset_stats,
    ("GET", "config"): lambda emu, _: emu.settings.snapshot(),
    ("POST", "config"): _config,
    ("GET", "webhooks"): lambda emu, _: emu.webhooks.snapshot(),
    ("POST", "compact-journal"): _compact,
    ("POST", "unlink"): _unlink,
}
