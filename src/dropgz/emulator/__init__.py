"""A Dropbox API v2 emulator the unmodified official SDK talks to over HTTP or HTTPS.

A separate product inside the dropgz tree: it imports only the ``dropbox`` SDK (for its route
objects and serializers, so the wire format is Dropbox's own) and the standard library, never
the dropgz service. Run it with ``dropgz emulator`` / ``python -m dropgz.emulator``, or
in-process with :class:`dropgz.emulator.server.EmulatorServer`.

Modules: ``config`` (settings), ``server`` (HTTP server) -> ``handler`` (wire format, faults)
-> ``app`` (accounts, route table) -> ``rpc`` / ``content`` (route handlers) -> ``accounts``
(one user's namespace, cursors, sessions) -> ``namespace`` / ``entry`` / ``journal`` /
``writes`` / ``reconcile`` (files + change journal), ``listing`` (cursors), ``sessions``
(upload sessions); ``auth`` (tokens, grants, revocation), ``oauth_authorize`` (consent page,
``templates/``), ``oauth_codes``, ``oauth_token`` (/oauth2/token); ``admin`` (/_emulator/),
``webhooks``, ``faults``, ``stats``, ``paths``, ``hashing``, ``body``, ``state`` (SQLite),
``errors``.

Deliberate differences from Dropbox, written down once:

- Only the current revision of a file is kept (``rev:`` / ``rev=`` of an older one: not_found).
- Uploading content identical to the file's current content makes no new revision, as Dropbox.
- ``upload_session/finish``'s ``content_hash`` covers the bytes sent in that call (the SDK
  documents it so and its Uploader sends it so); the whole file is hashed for the metadata.
- A refresh without ``client_secret`` is accepted (a PKCE client), one with a wrong secret is not.
- OAuth scopes are recorded and reported, not enforced; a replayed authorization code is
  refused but the tokens it gave stay valid; codes in flight do not survive a restart.
- One app (``--app-key``); the consent page offers every emulated account, no sign-in.
"""

from dropgz.emulator.config import EmulatorConfig
from dropgz.emulator.server import EmulatorServer

__all__ = ["EmulatorConfig", "EmulatorServer"]
