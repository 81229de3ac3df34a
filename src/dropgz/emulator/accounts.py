"""The emulated users: who each one is (:class:`Profile`) and what each one owns
(:class:`Account`: its files, change journal, cursors and upload sessions).

Every account is isolated as on Dropbox: its own namespace, SQLite file, cursor key and upload
sessions, so identically named files in two accounts never meet. The first account lives in
``--root`` itself (the layout a single-account emulator always had); account ``n`` >= 2 lives in
``<root>/.dropgz-emulator/accounts/<n>/``, out of reach of the first account's paths.
"""

from __future__ import annotations

import secrets
import shutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dropgz.emulator.config import RuntimeSettings
from dropgz.emulator.contention import NamespaceLock
from dropgz.emulator.listing import CursorCodec, Lister
from dropgz.emulator.namespace import Namespace
from dropgz.emulator.paths import STATE_DIR_NAME
from dropgz.emulator.reconcile import reconcile
from dropgz.emulator.sessions import Sessions
from dropgz.emulator.state import StateDB
from dropgz.emulator.writes import Writer

# Account ids of accounts 2..N: "dbid:" + this prefix + the account number on 9 digits
# (35 characters after "dbid:", as Dropbox's), distinct from the first account's default.
_GENERATED_ID_PREFIX = "AADdropgzEmulatorAccountId"


@dataclass(frozen=True)
class Profile:
    """An account's identity, as users/get_current_account and the token endpoint tell it."""

    number: int                  # 1-based; 1 is the account of --token / --account-id
    account_id: str
    given_name: str
    surname: str
    email: str

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.surname}"

    @property
    def uid(self) -> int:
        return legacy_uid(self.account_id)

    @property
    def namespace_id(self) -> str:
        return str(1_000_000 + self.number)


def legacy_uid(account_id: str) -> int:
    """The numeric user id of Dropbox's v1 API (``uid`` of /oauth2/token, webhooks'
    ``delta.users``), derived stably from the account id."""
    return zlib.crc32(account_id.encode()) & 0x7FFFFFFF


def profile(number: int, first_account_id: str) -> Profile:
    """Account ``number``'s identity; the first keeps the single-account emulator's."""
    if number == 1:
        return Profile(1, first_account_id, "Dropgz", "Emulator", "emulator@dropgz.invalid")
    return Profile(number, f"dbid:{_GENERATED_ID_PREFIX}{number:09d}", "User", str(number),
                   f"user{number}@dropgz.invalid")


class Account:
    """One user's Dropbox: namespace (+ writer, lister), upload sessions, staging folder.

    ``on_change`` is called after each committed change (the webhook notifier).
    """

    def __init__(self, profile: Profile, root: Path, settings: RuntimeSettings, *,
                 journal_limit: int, on_change: Callable[[str], None],
                 inside_commit: Callable[[str, str], None]) -> None:
        """Opens (or creates) the account under ``root`` and adopts what changed on disk
        while stopped (``reconciled`` paths; the caller notifies for them).
        ``inside_commit(route, account_id)`` runs in each commit once it holds the namespace
        lock."""
        self.profile = profile
        self.settings = settings
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        state_dir = self.root / STATE_DIR_NAME
        state_dir.mkdir(exist_ok=True)
        self.state_dir = state_dir
        self.staging_dir = state_dir / "tmp"
        shutil.rmtree(self.staging_dir, ignore_errors=True)  # leftovers of a killed run
        self.staging_dir.mkdir()
        self.db = StateDB(state_dir / "state.sqlite3")
        self.namespace = Namespace(self.db, self.root, state_dir, journal_limit=journal_limit)
        self.writer = Writer(self.namespace, on_change=lambda: on_change(profile.account_id))
        self.reconciled = reconcile(self.namespace)
        codec = CursorCodec(bytes.fromhex(self.db.meta_default("cursor_key",
                                                               lambda: secrets.token_hex(32))),
                            self.db.meta_default("instance", lambda: secrets.token_hex(8)))
        self.lister = Lister(self.namespace, codec)
        self.sessions = Sessions(self.db, state_dir / "sessions")
        self.sessions.expire()
        self.namespace_lock = NamespaceLock(
            settings, lambda route: inside_commit(route, profile.account_id))

    @property
    def account_id(self) -> str:
        return self.profile.account_id

    def close(self) -> None:
        self.db.close()


def account_root(root: Path, number: int) -> Path:
    """Where account ``number`` keeps its files (see the module docstring)."""
    return root if number == 1 else root / STATE_DIR_NAME / "accounts" / str(number)
