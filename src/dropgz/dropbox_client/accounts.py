"""Which Dropbox accounts this deployment serves, and a client for each.

Credentials are looked up per account id. The seed configures one ``[Dropbox] token``,
so there is one account: the token's owner, named by ``[Dropbox] account_id`` when set,
else found once with ``users/get_current_account`` and remembered for the process.
A notification may name other accounts (e.g. an app shared with several users); they
are unknown here, and :meth:`Accounts.client_for` answers None for them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import dropbox

from dropgz.core.config import DropboxSettings
from dropgz.dropbox_client import make_dropbox

DropboxFactory = Callable[[DropboxSettings], dropbox.Dropbox]


def default_dropbox_factory(settings: DropboxSettings) -> dropbox.Dropbox:
    """The SDK client for the delta tier: no SDK sleeping on 429, the push queue waits."""
    return make_dropbox(settings, max_retries_on_rate_limit=0)


class Accounts:
    """The account directory (single-token edition)."""

    def __init__(self, settings: DropboxSettings,
                 dropbox_factory: DropboxFactory = default_dropbox_factory) -> None:
        self._settings = settings
        self._factory = dropbox_factory
        self._owner_id = settings.account_id
        self._client: dropbox.Dropbox | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Accounts(owner={self._owner_id!r})"

    def client(self) -> dropbox.Dropbox:
        """The configured account's client (built once; the SDK client is thread-safe)."""
        with self._lock:
            if self._client is None:
                self._client = self._factory(self._settings)
            return self._client

    def owner_id(self) -> str:
        """The configured token's account id (may call ``users/get_current_account``)."""
        if self._owner_id is None:
            found = self.client().users_get_current_account().account_id
            with self._lock:
                self._owner_id = found
        return self._owner_id

    def known_ids(self) -> list[str]:
        """Account ids with credentials here."""
        return [self.owner_id()]

    def client_for(self, account_id: str) -> dropbox.Dropbox | None:
        """A client acting for ``account_id``, or None when it is not one of ours."""
        return self.client() if account_id == self.owner_id() else None
