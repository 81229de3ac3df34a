"""Refresh tokens encrypted at rest: Fernet (AES-128-CBC + HMAC-SHA256) from ``cryptography``.

``[Service] encryption_key`` holds one or more Fernet keys, comma-separated. The first
encrypts; every one decrypts (``MultiFernet``), so a key is rotated by putting the new one
first, re-encrypting (:meth:`TokenCipher.rotate`), then dropping the old one.

Each ciphertext is bound to its account: the plaintext is ``<account id>\\n<token>``, and
:meth:`TokenCipher.decrypt` refuses a ciphertext made for another account, so a row copied
from one account to another in the database decrypts to nothing.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from dropgz.core.errors import DropgzError
from dropgz.core.secret import Secret


class DecryptionFailed(DropgzError):
    """A stored ciphertext does not open with the configured key(s), or belongs to another
    account. Usually: ``[Service] encryption_key`` is not the key the data was written with."""


class TokenCipher:
    """Encrypts and decrypts credentials for the state store. Thread-safe."""

    def __init__(self, keys: Secret) -> None:
        parts = [k.strip() for k in keys.reveal().split(",") if k.strip()]
        if not parts:
            raise ValueError("TokenCipher needs at least one Fernet key")
        self._fernet = MultiFernet([Fernet(k.encode("ascii")) for k in parts])

    def __repr__(self) -> str:
        return "TokenCipher(keys=***)"

    def encrypt(self, account: str, value: Secret) -> str:
        """The ciphertext (URL-safe ASCII) of ``value`` for ``account``."""
        return self._fernet.encrypt(f"{account}\n{value.reveal()}".encode()).decode("ascii")

    def decrypt(self, account: str, blob: str) -> Secret:
        """The value sealed by :meth:`encrypt` for ``account``; DecryptionFailed otherwise."""
        try:
            plain = self._fernet.decrypt(blob.encode("ascii")).decode()
        except (InvalidToken, UnicodeError, ValueError):
            raise DecryptionFailed("stored credential does not decrypt with the configured "
                                   "encryption key") from None
        owner, _, value = plain.partition("\n")
        if owner != account:
            raise DecryptionFailed("stored credential belongs to another account")
        return Secret(value)

    def rotate(self, blob: str) -> str:
        """``blob`` re-encrypted with the first key (after adding a new key in front)."""
        try:
            return self._fernet.rotate(blob.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError, ValueError):
            raise DecryptionFailed("stored credential does not decrypt with the configured "
                                   "encryption key") from None
