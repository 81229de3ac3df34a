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
``POST hold``               ``{"route": "files/upload"}``: requests to it wait (:mod:`holds`);
                            ``"commit:files/upload"`` holds them inside the namespace lock;
                            ``"account_id"`` limits a commit hold to one account
``GET held``                which requests wait; ``?route=R&count=N&timeout=S`` long-polls
                            until N requests to R wait
``POST release``            ``{"route": R}`` lets R's requests go and ends the hold;
                            ``{"route": R, "count": N}`` lets the N oldest go; ``{}`` all
==========================  =============================================================

POST bodies are JSON objects; GET parameters come from the query string.
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


def answer(emu: Emulator, method: str, name: str, params: dict[str, Any]) -> Any:
    """The JSON answer of ``method /_emulator/name``; AdminError for a 4xx."""
    handler = _ROUTES.get((method, name))
    if handler is None:
        raise AdminError(404, f"unknown admin route {method} /_emulator/{name}")
    return handler(emu, params)


def json_object(raw_body: bytes) -> dict[str, Any]:
    """A POST body: a JSON object (empty body = ``{}``); AdminError otherwise."""
    try:
        value = json.loads(raw_body or b"{}")
    except ValueError as exc:
        raise AdminError(400, f"body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise AdminError(400, "expected a JSON object")
    return value


def _string(params: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = params.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise AdminError(400, f"{name} must be a non-empty string, got {value!r}")
    return value


def _number(params: dict[str, Any], name: str, default: float | None, kind: type = int) -> Any:
    value = params.get(name, default)
    if value is None:
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise AdminError(400, f"{name} must be a number, got {value!r}") from None
    if number < 0:
        raise AdminError(400, f"{name} must be >= 0, got {value!r}")
    return number


def _account(emu: Emulator, body: dict[str, Any], *, required: bool) -> Account:
    account_id = body.get("account_id")
    if account_id is None and not required:
        return emu.accounts[0]
    account = emu.by_id.get(account_id) if isinstance(account_id, str) else None
    if account is None:
        raise AdminError(400, f"unknown account_id {account_id!r}; the emulator has "
                              f"{', '.join(emu.by_id)}")
    return account


def _config(emu: Emulator, params: dict[str, Any]) -> Any:
    try:
        return emu.settings.update(params)
    except ValueError as exc:
        raise AdminError(400, f"bad config change: {exc}") from None


def _reset_stats(emu: Emulator, params: dict[str, Any]) -> Any:
    emu.stats.reset()
    return {"ok": True}


def _compact(emu: Emulator, params: dict[str, Any]) -> Any:
    account = _account(emu, params, required=False)
    return {"journal_floor": account.namespace.journal.compact()}


def _unlink(emu: Emulator, params: dict[str, Any]) -> Any:
    account = _account(emu, params, required=True)
    return {"account_id": account.account_id,
            "revoked_tokens": emu.tokens.unlink(account.account_id)}


def _held(emu: Emulator, params: dict[str, Any]) -> Any:
    route = _string(params, "route", required=False)
    if route is None:
        return emu.holds.snapshot()
    return emu.holds.wait_held(route, _number(params, "count", 1),
                               _number(params, "timeout", 0.0, float))


def _release(emu: Emulator, params: dict[str, Any]) -> Any:
    return emu.holds.release(_string(params, "route", required=False),
                             _number(params, "count", None))


_ROUTES = {
    ("GET", "stats"): lambda emu, _: emu.stats.snapshot(),
    ("POST", "reset-stats"): _reset_stats,
    ("GET", "config"): lambda emu, _: emu.settings.snapshot(),
    ("POST", "config"): _config,
    ("GET", "webhooks"): lambda emu, _: emu.webhooks.snapshot(),
    ("POST", "compact-journal"): _compact,
    ("POST", "unlink"): _unlink,
    ("POST", "hold"): lambda emu, params: emu.holds.hold(
        _string(params, "route"), _string(params, "account_id", required=False)),
    ("GET", "held"): _held,
    ("POST", "release"): _release,
}
