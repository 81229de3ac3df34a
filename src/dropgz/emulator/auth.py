"""Access tokens and the grants behind them: who a bearer token belongs to, and revocation.

- Each account has a *fixed* access token (``--token`` for the first account, generated for
  the others) that never expires, and a fixed refresh token (``--refresh-token`` ...).
- A *grant* is one authorization of the app by a user: the consent page's "Allow", or an
  account's fixed refresh token. Its refresh token (offline access) mints short-lived access
  tokens (``--token-ttl``) until the grant is revoked.
- ``auth/token/revoke`` disables the calling token and, when it came from a grant, the grant's
  refresh token and every access token it minted (as Dropbox documents the route).
- An unlink (the user removed the app in their settings) revokes every grant and token of the
  account; the next call answers 401 ``invalid_access_token``, a refresh ``invalid_grant``.

Tokens and refresh tokens are stored as SHA-256 digests in the first account's state file (a
restart on the same root keeps them; the file never holds a usable secret) and cached in
memory, since every request checks one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from dropgz.emulator.errors import Unauthorized
from dropgz.emulator.state import StateDB

# A minted token that expired more than this long ago is forgotten (then reported as invalid
# rather than expired).
_FORGET_EXPIRED_SECONDS = 86400


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class _Token:
    account_id: str
    grant_id: str | None
    expires_at: float | None
    revoked: bool


@dataclass
class Grant:
    grant_id: str
    account_id: str
    scope: str
    revoked: bool = False


@dataclass(frozen=True)
class Credential:
    """The checked bearer token of a request: whose it is (and its digest, for revoke)."""

    account_id: str
    token_sha256: str


class Tokens:
    """Checks bearer tokens, mints and revokes them. Thread-safe."""

    def __init__(self, db: StateDB, *, ttl: int) -> None:
        self.db = db
        self.ttl = ttl
        self._lock = threading.Lock()
        self._fixed: set[str] = set()
        self._tokens = {row["token_sha256"]: _Token(row["account_id"], row["grant_id"],
                                                    row["expires_at"], bool(row["revoked"]))
                        for row in db.query("SELECT * FROM access_tokens WHERE expires_at IS "
                                            "NULL OR expires_at > ?",
                                            (time.time() - _FORGET_EXPIRED_SECONDS,))}
        self._grants = {row["grant_id"]: Grant(row["grant_id"], row["account_id"], row["scope"],
                                               bool(row["revoked"]))
                        for row in db.query("SELECT * FROM grants")}
        self._refresh = {row["refresh_sha256"]: row["grant_id"]
                         for row in db.query("SELECT refresh_sha256, grant_id FROM grants "
                                             "WHERE refresh_sha256 IS NOT NULL")}

    # ------------------------------------------------------------ registration

    def add_account(self, account_id: str, *, token: str, refresh_token: str,
                    scope: str) -> None:
        """Registers an account's fixed token and refresh token (at start). A revocation
        recorded for them in an earlier run stands; fixed tokens replaced by others are
        forgotten, as the single-account emulator always accepted only the current one."""
        token_sha, refresh_sha = digest(token), digest(refresh_token)
        grant_id = "fixed-" + refresh_sha[:24]
        with self._lock, self.db.transaction() as conn:
            conn.execute("DELETE FROM access_tokens WHERE kind = 'fixed' AND account_id = ? "
                         "AND token_sha256 != ?", (account_id, token_sha))
            conn.execute("INSERT OR IGNORE INTO access_tokens (token_sha256, account_id, kind) "
                         "VALUES (?, ?, 'fixed')", (token_sha, account_id))
            conn.execute("INSERT OR IGNORE INTO grants (grant_id, account_id, kind, "
                         "refresh_sha256, scope) VALUES (?, ?, 'fixed', ?, ?)",
                         (grant_id, account_id, refresh_sha, scope))
            revoked = conn.execute("SELECT revoked FROM access_tokens WHERE token_sha256 = ?",
                                   (token_sha,)).fetchone()["revoked"]
            grant_revoked = conn.execute("SELECT revoked FROM grants WHERE grant_id = ?",
                                         (grant_id,)).fetchone()["revoked"]
            self._tokens = {sha: record for sha, record in self._tokens.items()
                            if not (record.account_id == account_id and sha in self._fixed)}
            self._tokens[token_sha] = _Token(account_id, None, None, bool(revoked))
            self._fixed.add(token_sha)
            self._grants[grant_id] = Grant(grant_id, account_id, scope, bool(grant_revoked))
            self._refresh[refresh_sha] = grant_id

    def is_fixed(self, authorization: str | None) -> bool:
        """True when ``authorization`` carries one of the accounts' fixed tokens, revoked or
        not: what the emulator's own admin routes accept."""
        token = _bearer(authorization)
        if token is None:
            return False
        with self._lock:
            return digest(token) in self._fixed

    # ------------------------------------------------------------------ checks

    def check(self, authorization: str | None) -> Credential:
        """The request's credential; Unauthorized (401) unless ``Bearer <valid token>``."""
        if not authorization:
            raise Unauthorized("invalid_access_token",
                               'missing HTTP header "Authorization" (Bearer token)')
        token = _bearer(authorization)
        if token is None:
            raise Unauthorized("invalid_access_token", "expected 'Authorization: Bearer <token>'")
        token_sha = digest(token)
        with self._lock:
            record = self._tokens.get(token_sha)
        if record is None or record.revoked:
            raise Unauthorized("invalid_access_token", "invalid access token")
        if record.expires_at is not None and time.time() >= record.expires_at:
            raise Unauthorized("expired_access_token", "access token has expired")
        return Credential(record.account_id, token_sha)

    def grant_for_refresh(self, refresh_token: str | None) -> Grant | None:
        """The live grant a refresh token belongs to, None if unknown or revoked."""
        if not refresh_token:
            return None
        with self._lock:
            grant_id = self._refresh.get(digest(refresh_token))
            grant = self._grants.get(grant_id) if grant_id else None
        # Looked up by SHA-256 digest: timing reveals nothing about the token itself.
        return None if grant is None or grant.revoked else grant

    # ----------------------------------------------------------------- issuing

    def new_grant(self, account_id: str, scope: str, *, offline: bool) -> tuple[Grant, str | None]:
        """A grant for a user's "Allow"; returns it and its refresh token (offline only)."""
        grant = Grant("oauth-" + secrets.token_hex(12), account_id, scope)
        refresh_token = "emu-refresh-" + secrets.token_urlsafe(32) if offline else None
        refresh_sha = digest(refresh_token) if refresh_token else None
        self.db.execute("INSERT INTO grants (grant_id, account_id, kind, refresh_sha256, scope) "
                        "VALUES (?, ?, 'oauth', ?, ?)",
                        (grant.grant_id, account_id, refresh_sha, scope))
        with self._lock:
            self._grants[grant.grant_id] = grant
            if refresh_sha:
                self._refresh[refresh_sha] = grant.grant_id
        return grant, refresh_token

    def mint(self, grant: Grant) -> str:
        """A short-lived access token (``ttl`` seconds) for the grant's account."""
        token = "sl.emu-" + secrets.token_urlsafe(32)
        expires_at = time.time() + self.ttl
        self.db.execute("INSERT INTO access_tokens (token_sha256, account_id, kind, grant_id, "
                        "expires_at) VALUES (?, ?, 'minted', ?, ?)",
                        (digest(token), grant.account_id, grant.grant_id, expires_at))
        with self._lock:
            self._tokens[digest(token)] = _Token(grant.account_id, grant.grant_id, expires_at,
                                                 False)
        return token

    # -------------------------------------------------------------- revocation

    def revoke(self, credential: Credential) -> None:
        """auth/token/revoke: this token, and its grant with every token of that grant."""
        with self._lock:
            record = self._tokens.get(credential.token_sha256)
            grant_id = record.grant_id if record else None
        if grant_id is None:
            self._revoke("token_sha256 = ?", (credential.token_sha256,),
                         lambda sha, _: hmac.compare_digest(sha, credential.token_sha256))
            return
        self._revoke("grant_id = ?", (grant_id,), lambda _, rec: rec.grant_id == grant_id,
                     grants=lambda grant: grant.grant_id == grant_id)

    def unlink(self, account_id: str) -> int:
        """The user removed the app: every token and grant of the account dies. Returns how
        many access tokens were live."""
        return self._revoke("account_id = ?", (account_id,),
                            lambda _, rec: rec.account_id == account_id,
                            grants=lambda grant: grant.account_id == account_id)

    def _revoke(self, where: str, params: tuple, tokens: Callable[[str, _Token], bool],
                grants: Callable[[Grant], bool] | None = None) -> int:
        with self._lock, self.db.transaction() as conn:
            # ``where`` is one of the fixed conditions above; values are bound parameters.
            conn.execute(f"UPDATE access_tokens SET revoked = 1 WHERE {where}", params)  # noqa: S608
            if grants is not None:
                conn.execute(f"UPDATE grants SET revoked = 1 WHERE {where}", params)  # noqa: S608
            live = 0
            for sha, record in self._tokens.items():
                if tokens(sha, record):
                    live += not record.revoked
                    record.revoked = True
            for grant in self._grants.values():
                if grants is not None and grants(grant):
                    grant.revoked = True
        return live


def _bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
