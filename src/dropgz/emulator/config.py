"""Settings of one emulator: fixed at start (:class:`EmulatorConfig`) or changeable at run time
(:class:`RuntimeSettings`, what ``POST /_emulator/config`` edits)."""

from __future__ import annotations

import secrets
import string
import threading
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

# Largest body of one files/upload or upload_session call.
# https://www.dropbox.com/developers/documentation/http/documentation#files-upload
UPLOAD_LIMIT_BYTES = 150 * 1024 * 1024
# Dropbox account ids are exactly 40 characters (users_common.AccountId_validator).
ACCOUNT_ID_LENGTH = 40
DEFAULT_ACCOUNT_ID = "dbid:AADdropgzEmulatorAccountId000000000"
# Short-lived access tokens last about four hours.
# https://developers.dropbox.com/oauth-guide (expires_in of /oauth2/token)
DEFAULT_TOKEN_TTL_SECONDS = 14400
FAULT_KINDS = ("429", "500", "drop")
# --accounts: each account is a namespace with its own SQLite file; a thousand is what the
# multi-user benchmark needs and stays far below the file-descriptor limit.
MAX_ACCOUNTS = 1000
# The scopes the emulated app has (App Console "Permissions"): what dropgz needs, plus metadata
# writes. https://developers.dropbox.com/oauth-guide#dropbox-api-permissions
APP_SCOPES = ("account_info.read", "files.content.read", "files.content.write",
              "files.metadata.read", "files.metadata.write")
# An authorization code lives ten minutes (https://developers.dropbox.com/oauth-guide).
DEFAULT_AUTH_CODE_TTL_SECONDS = 600

_KEY_ALPHABET = string.ascii_lowercase + string.digits


def _random_key(length: int) -> str:
    return "".join(secrets.choice(_KEY_ALPHABET) for _ in range(length))


def generate_credentials() -> dict[str, str]:
    """Fresh credentials shaped like Dropbox's (app keys are 15 lowercase characters)."""
    return {
        "token": "sl.emu-" + secrets.token_urlsafe(32),
        "app_key": _random_key(15),
        "app_secret": _random_key(15),
        "refresh_token": "emu-refresh-" + secrets.token_urlsafe(24),
    }


def parse_fault_kinds(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"429,500"`` or a list -> a tuple of known fault kinds; ValueError names the known ones."""
    items = value.split(",") if isinstance(value, str) else list(value)
    kinds = tuple(item.strip() for item in items if item.strip())
    unknown = [kind for kind in kinds if kind not in FAULT_KINDS]
    if unknown or not kinds:
        raise ValueError(f"fail_kinds must be a non-empty subset of {','.join(FAULT_KINDS)}, "
                         f"got {value!r}")
    return kinds


def _check_fail_rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"fail_rate must be a number between 0 and 1, got {value!r}")
    return float(value)


def _check_non_negative(name: str, value: Any, kind: type = float) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    if kind is int and value != int(value):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return kind(value)


def _check_url(value: Any, name: str = "webhook_url") -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError(f"{name} must be an http(s):// URL, got {value!r}")
    return value


def check_redirect_uris(value: Any) -> tuple[str, ...]:
    """The registered OAuth redirect URIs: a list of http(s) URLs, compared exactly."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError(f"redirect_uris must be a list of http(s):// URLs, got {value!r}")
    uris = tuple(value)
    for uri in uris:
        if not _check_url(uri, "redirect_uris"):
            raise ValueError(f"redirect_uris must be http(s):// URLs, got {uri!r}")
    return uris


@dataclass
class EmulatorConfig:
    """Everything ``dropgz emulator`` accepts as a flag. Credentials left None are
    generated (and kept in the root's state, so a restart on the same root keeps them)."""

    host: str = "127.0.0.1"
    port: int = 0
    root: Path | None = None
    token: str | None = field(default=None, repr=False)
    app_key: str | None = None
    app_secret: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    account_id: str = DEFAULT_ACCOUNT_ID
    webhook_url: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    latency_ms: float = 0.0
    fail_rate: float = 0.0
    fail_kinds: tuple[str, ...] = FAULT_KINDS
    seed: int | None = None
    token_ttl: int = DEFAULT_TOKEN_TTL_SECONDS
    retry_after: int = 1
    upload_limit: int = UPLOAD_LIMIT_BYTES
    # Journal rows kept for cursors; an older cursor gets `reset`.
    journal_limit: int = 1_000_000
    # Dropbox retries a failed notification with backoff for about ten minutes; tests need less.
    webhook_retry_seconds: float = 60.0
    webhook_debounce_ms: float = 150.0
    # Emulated users; the first one is the account the flags above describe.
    accounts: int = 1
    # OAuth app as the App Console would register it.
    app_name: str = "dropgz"
    redirect_uris: tuple[str, ...] = ()
    auth_code_ttl: int = DEFAULT_AUTH_CODE_TTL_SECONDS
    # Overlapping commits in one account fail with 429 too_many_write_operations, as on
    # Dropbox (see dropgz.emulator.contention); False makes them wait for each other.
    write_contention: bool = True

    def validate(self) -> None:
        """Raises ValueError with a one-line message naming the bad setting."""
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {self.port}")
        if len(self.account_id) != ACCOUNT_ID_LENGTH or not self.account_id.startswith("dbid:"):
            raise ValueError(f"account_id must be 'dbid:' + 35 characters "
                             f"({ACCOUNT_ID_LENGTH} in all), got {self.account_id!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        for path in (self.tls_cert, self.tls_key):
            if path is not None and not Path(path).is_file():
                raise ValueError(f"TLS file not found: {path}")
        _check_fail_rate(self.fail_rate)
        parse_fault_kinds(self.fail_kinds)
        _check_non_negative("latency_ms", self.latency_ms)
        _check_url(self.webhook_url)
        if self.token_ttl < 1:
            raise ValueError(f"token_ttl must be >= 1 second, got {self.token_ttl}")
        _check_non_negative("retry_after", self.retry_after, int)
        if not 1 <= self.upload_limit <= UPLOAD_LIMIT_BYTES:
            raise ValueError(f"upload_limit must be between 1 and {UPLOAD_LIMIT_BYTES}, "
                             f"got {self.upload_limit}")
        if self.journal_limit < 1:
            raise ValueError(f"journal_limit must be >= 1, got {self.journal_limit}")
        if not 1 <= self.accounts <= MAX_ACCOUNTS:
            raise ValueError(f"accounts must be between 1 and {MAX_ACCOUNTS}, "
                             f"got {self.accounts}")
        if not self.app_name.strip():
            raise ValueError("app_name must not be empty")
        check_redirect_uris(self.redirect_uris)
        _check_non_negative("auth_code_ttl", self.auth_code_ttl, int)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _check_upload_limit(value: Any) -> int:
    limit = _check_non_negative("upload_limit", value, int)
    if not 1 <= limit <= UPLOAD_LIMIT_BYTES:
        raise ValueError(f"upload_limit must be between 1 and {UPLOAD_LIMIT_BYTES}")
    return limit


# How each run-time setting is validated (and normalised) before it is applied.
_RUNTIME_CHECKS: dict[str, Any] = {
    "fail_rate": _check_fail_rate,
    "fail_kinds": parse_fault_kinds,
    "fail_next": lambda value: _check_non_negative("fail_next", value, int),
    "latency_ms": lambda value: _check_non_negative("latency_ms", value),
    "webhook_url": _check_url,
    "retry_after": lambda value: _check_non_negative("retry_after", value, int),
    "upload_limit": _check_upload_limit,
    "redirect_uris": check_redirect_uris,
    "auth_code_ttl": lambda value: _check_non_negative("auth_code_ttl", value, int),
    "write_contention": lambda value: _check_bool("write_contention", value),
}


class RuntimeSettings:
    """The knobs tests turn while the emulator runs. Reads and writes are atomic."""

    # fail_next: the next N Dropbox requests fail (kinds from fail_kinds), whatever fail_rate
    # says; makes a single fault deterministic in tests.
    # redirect_uris: the OAuth redirect URIs registered for the app (a test registers the
    # callback of a service whose port it learns at run time); auth_code_ttl: seconds an
    # authorization code stays valid (0 makes every new code expired: deterministic tests).
    MUTABLE = ("fail_rate", "fail_kinds", "fail_next", "latency_ms", "webhook_url",
               "retry_after", "upload_limit", "redirect_uris", "auth_code_ttl",
               "write_contention")

    def __init__(self, config: EmulatorConfig) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {name: getattr(config, name, None)
                                        for name in self.MUTABLE}
        self._values["fail_kinds"] = parse_fault_kinds(config.fail_kinds)
        self._values["redirect_uris"] = check_redirect_uris(config.redirect_uris)
        self._values["fail_next"] = 0

    def __getattr__(self, name: str) -> Any:
        if name in RuntimeSettings.MUTABLE:
            with self._lock:
                return self._values[name]
        raise AttributeError(name)

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Validates every change first, then applies them all; returns the new snapshot."""
        unknown = sorted(set(changes) - set(self.MUTABLE))
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}; "
                             f"known: {', '.join(self.MUTABLE)}")
        checked = {name: _RUNTIME_CHECKS[name](value) for name, value in changes.items()}
        with self._lock:
            self._values.update(checked)
        return self.snapshot()

    def take_forced_failure(self) -> bool:
        """True (and one less to go) while ``fail_next`` is positive."""
        with self._lock:
            if self._values["fail_next"] <= 0:
                return False
            self._values["fail_next"] -= 1
            return True

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            values = dict(self._values)
        values["fail_kinds"] = list(values["fail_kinds"])
        values["redirect_uris"] = list(values["redirect_uris"])
        return values


CONFIG_FIELDS = tuple(f.name for f in fields(EmulatorConfig))
