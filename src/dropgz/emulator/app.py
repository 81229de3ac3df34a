"""The emulated Dropbox without HTTP: accounts, tokens, OAuth, route table, faults, stats,
webhooks.

:class:`Emulator` wires the pieces together from an :class:`EmulatorConfig`; the HTTP layer
(:mod:`dropgz.emulator.handler`) only decodes requests, calls a route's handler and encodes
the answer. Routes are the SDK's own ``bb.Route`` objects, so argument, result and error
types are exactly those the SDK serializes. Every ``/2/`` route acts on the account whose
token the request carries.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropbox import auth, files, users

from dropgz.emulator import batch, content, rpc, upload_sessions
from dropgz.emulator.accounts import Account, account_root, profile
from dropgz.emulator.auth import Credential, Tokens
from dropgz.emulator.config import APP_SCOPES, EmulatorConfig, RuntimeSettings, generate_credentials
from dropgz.emulator.contention import COMMIT_HOLD_PREFIX
from dropgz.emulator.errors import Unavailable
from dropgz.emulator.faults import FaultInjector
from dropgz.emulator.holds import Holds
from dropgz.emulator.oauth_authorize import Authorizer
from dropgz.emulator.oauth_codes import AuthCodes
from dropgz.emulator.oauth_token import TokenEndpoint
from dropgz.emulator.stats import RequestStats
from dropgz.emulator.webhooks import WebhookNotifier

_CREDENTIALS = ("token", "app_key", "app_secret", "refresh_token")


@dataclass(frozen=True)
class Route:
    """One emulated endpoint: the SDK's route object, its style and its handler.

    ``handler(account, arg, body)`` acts on the caller's account; a route with
    ``takes_credential`` gets ``handler(emulator, credential, arg, body)`` instead.
    ``commits``: "call" when the whole call is one commit under the namespace lock (429 on
    contention), "entries" when the handler takes the lock itself (finish_batch_v2 reports
    contention per entry); see contention.py.
    """

    spec: Any                 # dropbox.stone_base.Route
    handler: Callable[..., Any]
    namespace: str = "files"
    writes: bool = False      # a write: rate limits say too_many_write_operations
    takes_credential: bool = False
    commits: str = ""

    @property
    def name(self) -> str:
        """The URL name, e.g. ``files/delete_v2``."""
        suffix = f"_v{self.spec.version}" if self.spec.version > 1 else ""
        return f"{self.namespace}/{self.spec.name}{suffix}"

    @property
    def style(self) -> str:
        return self.spec.attrs.get("style") or "rpc"


def _revoke(emu: Emulator, credential: Credential, arg: None, body: Any) -> None:
    emu.tokens.revoke(credential)


ROUTES: dict[str, Route] = {route.name: route for route in (
    Route(users.get_current_account, rpc.get_current_account, namespace="users"),
    Route(auth.token_revoke, _revoke, namespace="auth", takes_credential=True),
    Route(files.get_metadata, rpc.get_metadata),
    Route(files.list_folder, rpc.list_folder),
    Route(files.list_folder_continue, rpc.list_folder_continue),
    Route(files.list_folder_get_latest_cursor, rpc.list_folder_get_latest_cursor),
    Route(files.delete_v2, rpc.delete_v2, writes=True, commits="call"),
    Route(files.delete, rpc.delete_v1, writes=True, commits="call"),
    Route(files.create_folder_v2, rpc.create_folder_v2, writes=True, commits="call"),
    Route(files.move_v2, rpc.move_v2, writes=True, commits="call"),
    Route(files.copy_v2, rpc.copy_v2, writes=True, commits="call"),
    Route(files.download, content.download),
    Route(files.upload, content.upload, writes=True, commits="call"),
    Route(files.upload_session_start, upload_sessions.session_start, writes=True),
    Route(files.upload_session_start_batch, batch.start_batch, writes=True),
    Route(files.upload_session_append_v2, upload_sessions.session_append, writes=True),
    Route(files.upload_session_append, upload_sessions.session_append_v1, writes=True),
    Route(files.upload_session_finish, upload_sessions.session_finish, writes=True, commits="call"),
    Route(files.upload_session_finish_batch_v2, batch.finish_batch_v2, writes=True,
          commits="entries"),
)}


class Emulator:
    """``config.accounts`` accounts, the first kept under ``config.root`` (a new temp folder
    when None), the others inside its hidden state folder."""

    def __init__(self, config: EmulatorConfig) -> None:
        config.validate()
        self.config = config
        self.root = Path(config.root or tempfile.mkdtemp(prefix="dropgz-emulator-")).resolve()
        self.settings = RuntimeSettings(config)
        self.stats = RequestStats()
        self.faults = FaultInjector(self.settings, config.seed)
        self.holds = Holds()
        self.accounts: list[Account] = []
        try:
            self._open(config)
        except BaseException:
            self.close()
            raise

    def _open(self, config: EmulatorConfig) -> None:
        for number in range(1, config.accounts + 1):
            self.accounts.append(Account(
                profile(number, config.account_id), account_root(self.root, number),
                self.settings, journal_limit=config.journal_limit, on_change=self._changed,
                inside_commit=self._inside_commit))
        self.by_id = {account.account_id: account for account in self.accounts}
        if len(self.by_id) != len(self.accounts):
            raise ValueError(f"account_id {config.account_id!r} is one the emulator generates "
                             f"for another account; choose another")
        first = self.accounts[0]
        given = {name: getattr(config, name) for name in _CREDENTIALS}
        self.credentials = self._credentials(first, given)
        self.account_credentials = [self.credentials] + [
            self._credentials(account, {}) for account in self.accounts[1:]]
        self.webhooks = WebhookNotifier(
            lambda: self.settings.webhook_url, app_secret=self.credentials["app_secret"],
            debounce_seconds=config.webhook_debounce_ms / 1000,
            retry_seconds=config.webhook_retry_seconds)
        for account in self.accounts:
            if account.reconciled:
                self.webhooks.notify(account.account_id)
        self.tokens = Tokens(first.db, ttl=config.token_ttl)
        for account, credentials in zip(self.accounts, self.account_credentials, strict=True):
            self.tokens.add_account(account.account_id, token=credentials["token"],
                                    refresh_token=credentials["refresh_token"],
                                    scope=" ".join(APP_SCOPES))
        profiles = [account.profile for account in self.accounts]
        self.codes = AuthCodes(lambda: self.settings.auth_code_ttl)
        self.token_endpoint = TokenEndpoint(
            self.tokens, self.codes, {p.account_id: p for p in profiles},
            app_key=self.credentials["app_key"], app_secret=self.credentials["app_secret"])
        self.authorizer = Authorizer(app_key=self.credentials["app_key"],
                                     app_name=config.app_name, settings=self.settings,
                                     profiles=profiles, codes=self.codes)

    @staticmethod
    def _credentials(account: Account, given: dict[str, str | None]) -> dict[str, str]:
        """Given credentials win; missing ones are generated once per root and kept. (The
        app's are the first account's; the other accounts' app fields go unused.)"""
        generated = generate_credentials()
        return {name: given.get(name) or account.db.meta_default(
                    f"credential.{name}", lambda name=name: generated[name])
                for name in _CREDENTIALS}

    @property
    def account_id(self) -> str:
        """The first account's id."""
        return self.accounts[0].account_id

    def _changed(self, account_id: str) -> None:
        self.webhooks.notify(account_id)

    def _inside_commit(self, route: str, account_id: str) -> None:
        """What a commit does once it holds its namespace lock: wait while a test holds
        ``commit:<route>``, then spend the injected latency (see contention.py)."""
        if not self.holds.wait_if_held(COMMIT_HOLD_PREFIX + route, account_id):
            raise Unavailable("the emulator is stopping")
        self.faults.delay()

    def start(self) -> None:
        self.webhooks.start()

    def close(self) -> None:
        self.holds.close()
        webhooks = getattr(self, "webhooks", None)
        if webhooks is not None:
            webhooks.stop()
        for account in self.accounts:
            account.close()
