"""The emulated Dropbox account without HTTP: state, route table, faults, stats, webhooks.

:class:`Emulator` wires the pieces together from an :class:`EmulatorConfig`; the HTTP layer
(:mod:`dropgz.emulator.handler`) only decodes requests, calls a route's handler and encodes
the answer. Routes are the SDK's own ``bb.Route`` objects, so argument, result and error
types are exactly those the SDK serializes.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropbox import files, users

from dropgz.emulator import content, rpc
from dropgz.emulator.auth import Tokens
from dropgz.emulator.config import EmulatorConfig, RuntimeSettings, generate_credentials
from dropgz.emulator.faults import FaultInjector
from dropgz.emulator.listing import CursorCodec, Lister
from dropgz.emulator.namespace import Namespace
from dropgz.emulator.paths import STATE_DIR_NAME
from dropgz.emulator.reconcile import reconcile
from dropgz.emulator.sessions import Sessions
from dropgz.emulator.state import StateDB
from dropgz.emulator.stats import RequestStats
from dropgz.emulator.webhooks import WebhookNotifier
from dropgz.emulator.writes import Writer


@dataclass(frozen=True)
class Route:
    """One emulated endpoint: the SDK's route object, its style and its handler."""

    spec: Any                 # dropbox.stone_base.Route
    handler: Callable[..., Any]
    writes: bool = False      # a write: rate limits say too_many_write_operations

    @property
    def name(self) -> str:
        """The URL name, e.g. ``files/delete_v2``."""
        namespace = "users" if self.spec in _USERS_ROUTES else "files"
        suffix = f"_v{self.spec.version}" if self.spec.version > 1 else ""
        return f"{namespace}/{self.spec.name}{suffix}"

    @property
    def style(self) -> str:
        return self.spec.attrs.get("style") or "rpc"


_USERS_ROUTES = (users.get_current_account,)

ROUTES: dict[str, Route] = {route.name: route for route in (
    Route(users.get_current_account, rpc.get_current_account),
    Route(files.get_metadata, rpc.get_metadata),
    Route(files.list_folder, rpc.list_folder),
    Route(files.list_folder_continue, rpc.list_folder_continue),
    Route(files.list_folder_get_latest_cursor, rpc.list_folder_get_latest_cursor),
    Route(files.delete_v2, rpc.delete_v2, writes=True),
    Route(files.delete, rpc.delete_v1, writes=True),
    Route(files.create_folder_v2, rpc.create_folder_v2, writes=True),
    Route(files.move_v2, rpc.move_v2, writes=True),
    Route(files.download, content.download),
    Route(files.upload, content.upload, writes=True),
    Route(files.upload_session_start, content.session_start, writes=True),
    Route(files.upload_session_append_v2, content.session_append, writes=True),
    Route(files.upload_session_append, content.session_append_v1, writes=True),
    Route(files.upload_session_finish, content.session_finish, writes=True),
)}


class Emulator:
    """One account kept under ``config.root`` (a new temp folder when None)."""

    def __init__(self, config: EmulatorConfig) -> None:
        config.validate()
        self.config = config
        self.root = Path(config.root or tempfile.mkdtemp(prefix="dropgz-emulator-")).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        state_dir = self.root / STATE_DIR_NAME
        state_dir.mkdir(exist_ok=True)
        self.staging_dir = state_dir / "tmp"
        shutil.rmtree(self.staging_dir, ignore_errors=True)  # leftovers of a killed run
        self.staging_dir.mkdir()
        self.db = StateDB(state_dir / "state.sqlite3")
        self.credentials = self._credentials(config)
        self.account_id = config.account_id
        self.settings = RuntimeSettings(config)
        self.stats = RequestStats()
        self.faults = FaultInjector(self.settings, config.seed)
        self.webhooks = WebhookNotifier(
            lambda: self.settings.webhook_url, app_secret=self.credentials["app_secret"],
            account_id=config.account_id, debounce_seconds=config.webhook_debounce_ms / 1000,
            retry_seconds=config.webhook_retry_seconds)
        self.namespace = Namespace(self.db, self.root, state_dir,
                                   journal_limit=config.journal_limit)
        self.writer = Writer(self.namespace, on_change=self.webhooks.notify)
        if reconcile(self.namespace):
            self.webhooks.notify()
        codec = CursorCodec(bytes.fromhex(self.db.meta_default("cursor_key",
                                                               lambda: secrets.token_hex(32))),
                            self.db.meta_default("instance", lambda: secrets.token_hex(8)))
        self.lister = Lister(self.namespace, codec)
        self.sessions = Sessions(self.db, state_dir / "sessions")
        self.sessions.expire()
        self.tokens = Tokens(self.db, ttl=config.token_ttl, **self.credentials)

    def _credentials(self, config: EmulatorConfig) -> dict[str, str]:
        """Given credentials win; missing ones are generated once per root and kept."""
        generated = generate_credentials()
        return {name: getattr(config, name) or self.db.meta_default(
                    f"credential.{name}", lambda name=name: generated[name])
                for name in ("token", "app_key", "app_secret", "refresh_token")}

    def start(self) -> None:
        self.webhooks.start()

    def close(self) -> None:
        self.webhooks.stop()
        self.db.close()
