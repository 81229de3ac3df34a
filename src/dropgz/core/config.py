"""Settings: settings.cfg (the seed's format, read with configparser) plus the environment.

The seed's file is accepted verbatim::

    [Dropbox]
    token: <token>
    secret: <secret>

    [AWS]
    aws_access_key_id = <key_id>
    aws_secret_access_key = <access_key>
    region = us-west-1
    queue = <some_queue>

Every key may instead come from the environment as ``DROPGZ_<SECTION>_<KEY>``
(``DROPGZ_DROPBOX_TOKEN``, ``DROPGZ_AWS_QUEUE``, ``DROPGZ_COMPRESSION_LEVEL`` ...); the
environment wins over the file. :func:`load_settings` builds one immutable
:class:`Settings` that is passed to everything else. Any problem raises
:class:`~dropgz.core.errors.ConfigError` with one line naming the file, section and key.
"""

from __future__ import annotations

import base64
import configparser
import logging
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dropgz.core.errors import ConfigError
from dropgz.core.secret import Secret

log = logging.getLogger(__name__)

DEFAULT_REGION = "us-west-1"  # the seed: "the region has to be us-west-1"
COMPRESSORS = ("gzip", "zlib-ng", "isal")
PUSH_QUEUES = ("local", "gae")
STATE_STORES = ("sqlite", "ndb")
# SQS limits: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html
MAX_VISIBILITY_TIMEOUT = 12 * 60 * 60
# A Fernet key is 32 random bytes in URL-safe base64 (cryptography.fernet.Fernet.generate_key).
FERNET_KEY_BYTES = 32
NEW_KEY_HINT = ("python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'")
# Where Dropbox sends the user back; the web tier serves exactly this path.
CONNECT_CALLBACK_PATH = "/connect/callback"
_REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)


# ---------------------------------------------------------------- the settings


@dataclass(frozen=True)
class DropboxSettings:
    """``[Dropbox]``: how to reach the account and check webhook signatures."""

    token: Secret | None = None
    secret: Secret | None = None  # the app secret: webhook HMAC key and OAuth client secret
    app_key: str | None = None
    refresh_token: Secret | None = None
    api_base_url: str | None = None  # e.g. the emulator: http://127.0.0.1:8765
    ca_bundle: str | None = None  # CA file to trust for an https api_base_url
    account_id: str | None = None  # skip users/get_current_account when known
    # Where Dropbox sends a user back after they allow the app (OAuth redirect URI, as
    # registered in the App Console). Set it to let users connect their Dropbox at /connect.
    redirect_uri: str | None = None

    def has_credentials(self) -> bool:
        return bool(self.token) or bool(self.refresh_token and self.app_key)


@dataclass(frozen=True)
class AWSSettings:
    """``[AWS]``: the SQS work queue. No ``queue`` means the embedded SQLite queue."""

    # Not a secret by itself, but it names the credential: keep it out of reprs too.
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: Secret | None = None
    region: str = DEFAULT_REGION
    queue: str | None = None
    dead_letter_queue: str | None = None
    endpoint_url: str | None = None
    # How long a received message stays hidden while its worker renews the claim (its
    # heartbeat); after a crash, how long its files wait. None: the queue's own setting (SQS's
    # queue attribute, 30 s for queues `dropgz setup-aws` makes; 30 s for the SQLite queue).
    visibility_timeout: int | None = None
    max_receive_count: int = 5

    @property
    def dead_letter_name(self) -> str | None:
        if self.dead_letter_queue:
            return self.dead_letter_queue
        if not self.queue:
            return None
        return self.queue.rstrip("/").rsplit("/", 1)[-1] + "-dlq"


@dataclass(frozen=True)
class CompressionSettings:
    """``[Compression]``: what is compressed and how."""

    compressor: str = "gzip"
    level: int = 6  # Python's gzip defaults to 9: 4x slower here for 1% smaller output
    exclude: tuple[str, ...] = ()
    min_size: int = 0
    max_size: int = 0  # 0 = no limit
    replace_original: bool = False
    # A .gz must be at least this fraction smaller than its file, else none is made (and
    # already-compressed formats are skipped unread); 0 compresses everything.
    min_savings: float = 0.05


@dataclass(frozen=True)
class ServiceSettings:
    """``[Service]``: single-host mode and the parts every tier shares."""

    data_dir: str = ".dropgz"  # SQLite work queue, state and local push queue live here
    concurrency: int = 8  # files in flight per worker; I/O bound, so above the core count
    push_queue: str = "local"
    state: str = "sqlite"
    task_secret: Secret | None = None  # signs local push-queue tasks; made on first use if unset
    # Where workers reach the web tier's internal endpoints (tokens, reports), and the key
    # that signs those calls (dropgz.core.internal_auth). Both tiers need the same key.
    web_url: str | None = None
    internal_key: Secret | None = None
    # Fernet key(s) encrypting connected accounts' refresh tokens at rest; comma-separated
    # for rotation (the first encrypts, every one decrypts).
    encryption_key: Secret | None = None
    # The operator dashboard (/dashboard) opens with this password; /metrics answers a
    # request bearing this token. Unset: each stays closed to everyone.
    operator_password: Secret | None = None
    metrics_token: Secret | None = None

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()


@dataclass(frozen=True)
class Settings:
    """Everything dropgz is configured with; built once by :func:`load_settings`."""

    dropbox: DropboxSettings = field(default_factory=DropboxSettings)
    aws: AWSSettings = field(default_factory=AWSSettings)
    compression: CompressionSettings = field(default_factory=CompressionSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    source: str = "<defaults>"  # where the settings came from, for error messages

    def secrets(self) -> list[str]:
        """Every secret value, so logging can redact them wherever they might appear."""
        found = []
        for section in (self.dropbox, self.aws, self.compression, self.service):
            for f in fields(section):
                value = getattr(section, f.name)
                if isinstance(value, Secret) and value:
                    # Comma-separated keys (encryption_key) may show up one at a time.
                    found.extend([value.reveal(), *value.reveal().split(",")])
        if self.aws.aws_access_key_id:
            found.append(self.aws.aws_access_key_id)
        return found

    def require(self, section: str, key: str) -> Any:
        """The value of ``[section] key``, or a ConfigError naming it when it is unset."""
        value = getattr(_SECTIONS[section][1](self), key)
        if value in (None, "") or (isinstance(value, Secret) and not value):
            raise ConfigError(_where(self.source, section, key, "missing (required here)"))
        return value

    def error(self, section: str, key: str, problem: str) -> ConfigError:
        """The one-line ConfigError for ``[section] key`` (names the file and the variable)."""
        return ConfigError(_where(self.source, section, key, problem))

    def require_dropbox_credentials(self) -> None:
        if not self.dropbox.has_credentials():
            raise ConfigError(_where(self.source, "Dropbox", "token",
                                     "missing (or set refresh_token and app_key)"))


# ---------------------------------------------------------------- parsing


def _where(source: str, section: str, key: str, problem: str) -> str:
    env = f"DROPGZ_{section.upper()}_{key.upper()}"
    return f"{source}: [{section}] {key}: {problem} (environment: {env})"


def _int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"not a whole number: {raw!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"{value} is outside {lo}..{hi}")
        return value
    return parse


def parse_size(raw: str) -> int:
    """``"150MiB"`` → 157286400. Units k/m/g/t (powers of 1000) and ki/mi/gi/ti (1024)."""
    m = _SIZE_RE.match(raw)
    if not m:
        raise ValueError(f"not a size: {raw!r} (examples: 0, 4096, 10MB, 2GiB)")
    unit = (m.group(2) or "b").lower()
    if unit == "b":
        return int(m.group(1))
    base = 1024 if "i" in unit else 1000
    return int(m.group(1)) * base ** ("kmgt".index(unit[0]) + 1)


def parse_percent(raw: str) -> float:
    """``"5%"`` → 0.05; ``"0"`` → 0.0. Only a percentage (or 0): "0.05" or "5" would be
    ambiguous."""
    value = raw.strip()
    if value in ("0", "0%"):
        return 0.0
    m = re.match(r"^(\d+(?:\.\d+)?)\s*%$", value)
    if not m:
        raise ValueError(f"not a percentage: {value!r} (write it like 5%, or 0 to "
                         "compress everything)")
    percent = float(m.group(1))
    if percent >= 100:
        raise ValueError(f"{value} is not below 100%")
    return percent / 100


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in configparser.RawConfigParser.BOOLEAN_STATES:
        return configparser.RawConfigParser.BOOLEAN_STATES[lowered]
    raise ValueError(f"not true/false: {raw!r}")


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"unknown value {raw.strip()!r} (choose from {', '.join(options)})")
        return value
    return parse


def _region(raw: str) -> str:
    value = raw.strip()
    if not _REGION_RE.match(value):
        raise ValueError(f"not an AWS region name: {value!r} (the seed's is {DEFAULT_REGION})")
    return value


def _url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", value):
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value


def _patterns(raw: str) -> tuple[str, ...]:
    parts = re.split(r"[,\n]", raw)
    return tuple(p.strip().lower() for p in parts if p.strip())


def _fernet_keys(raw: str) -> Secret:
    keys = [part.strip() for part in raw.split(",") if part.strip()]
    for key in keys:
        try:
            valid = len(base64.urlsafe_b64decode(key.encode("ascii"))) == FERNET_KEY_BYTES
        except (ValueError, UnicodeError):
            valid = False
        if not valid:
            raise ValueError(f"not a Fernet key (value not shown); make one with: {NEW_KEY_HINT}")
    if not keys:
        raise ValueError(f"no key given; make one with: {NEW_KEY_HINT}")
    return Secret(",".join(keys))


def _text(raw: str) -> str:
    return raw.strip()


def _secret(raw: str) -> Secret:
    value = raw.strip()
    # Credentials travel in HTTP headers: a space, control or non-ASCII character inside
    # one is a paste error that would otherwise surface much later as a 401. (The value
    # itself is never shown.)
    if any(c.isspace() or not c.isprintable() or not c.isascii() for c in value):
        raise ValueError("must be printable ASCII without spaces (value not shown)")
    return Secret(value)


MIN_PASSWORD_CHARS = 8


def _password(raw: str) -> Secret:
    # Typed by a person, so a passphrase with spaces is fine; only control characters
    # (a paste error) and very short ones are refused. (The value itself is never shown.)
    value = raw.strip()
    if any(not c.isprintable() for c in value):
        raise ValueError("must be printable text (value not shown)")
    if len(value) < MIN_PASSWORD_CHARS:
        raise ValueError(f"must be at least {MIN_PASSWORD_CHARS} characters (value not shown)")
    return Secret(value)


# section name -> (dataclass, accessor, {key: parser})
_SECTIONS: dict[str, tuple[type, Callable[[Settings], Any], dict[str, Callable[[str], Any]]]] = {
    "Dropbox": (DropboxSettings, lambda s: s.dropbox, {
        "token": _secret, "secret": _secret, "app_key": _text, "refresh_token": _secret,
        "api_base_url": _url, "ca_bundle": _text, "account_id": _text, "redirect_uri": _url,
    }),
    "AWS": (AWSSettings, lambda s: s.aws, {
        "aws_access_key_id": _text, "aws_secret_access_key": _secret, "region": _region,
        "queue": _text, "dead_letter_queue": _text, "endpoint_url": _url,
        "visibility_timeout": _int(1, MAX_VISIBILITY_TIMEOUT), "max_receive_count": _int(1, 1000),
    }),
    "Compression": (CompressionSettings, lambda s: s.compression, {
        "compressor": _choice(COMPRESSORS), "level": _int(1, 9), "exclude": _patterns,
        "min_size": parse_size, "max_size": parse_size, "replace_original": _bool,
        "min_savings": parse_percent,
    }),
    "Service": (ServiceSettings, lambda s: s.service, {
        "data_dir": _text, "concurrency": _int(1, 256), "push_queue": _choice(PUSH_QUEUES),
        "state": _choice(STATE_STORES), "task_secret": _secret, "web_url": _url,
        "internal_key": _secret, "encryption_key": _fernet_keys,
        "operator_password": _password, "metrics_token": _secret,
    }),
}
_ATTR = {"Dropbox": "dropbox", "AWS": "aws", "Compression": "compression", "Service": "service"}


def _read_file(path: Path) -> configparser.RawConfigParser:
    # Raw: a token may contain '%'. Keys are case-insensitive as configparser makes them.
    parser = configparser.RawConfigParser(strict=True)
    try:
        with path.open(encoding="utf-8") as fh:
            parser.read_file(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: settings file not found") from None
    except PermissionError:
        raise ConfigError(f"{path}: settings file not readable (permission denied)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a settings file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except configparser.Error as exc:
        first = str(exc).splitlines()[0].replace("\n", " ")
        raise ConfigError(f"{path}: malformed: {first}") from None
    _warn_if_shared(path)
    return parser


def _warn_if_shared(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("%s is readable by group or others and holds secrets: chmod 600 %s",
                    path, path)


def load_settings(path: str | os.PathLike[str] | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``path`` (if given) and ``env`` (default ``os.environ``).

    Unknown sections and keys in the file are errors too: a typo must not silently fall
    back to a default.
    """
    env = os.environ if env is None else env
    parser = _read_file(Path(path)) if path is not None else configparser.RawConfigParser()
    source = str(path) if path is not None else "<environment>"
    known = {name.lower(): name for name in _SECTIONS}
    for section in parser.sections():
        if section.lower() not in known:
            raise ConfigError(f"{source}: [{section}]: unknown section "
                              f"(known: {', '.join(_SECTIONS)})")
    built: dict[str, Any] = {}
    for name, (cls, _, parsers) in _SECTIONS.items():
        file_section = next((s for s in parser.sections() if s.lower() == name.lower()), None)
        values: dict[str, Any] = {}
        if file_section is not None:
            for key in parser.options(file_section):
                if key not in parsers:
                    raise ConfigError(f"{source}: [{name}] {key}: unknown key "
                                      f"(known: {', '.join(parsers)})")
        for key, parse in parsers.items():
            raw = env.get(f"DROPGZ_{name.upper()}_{key.upper()}")
            origin = f"environment DROPGZ_{name.upper()}_{key.upper()}"
            if raw is None and file_section is not None and parser.has_option(file_section, key):
                raw, origin = parser.get(file_section, key), source
            if raw is None or raw.strip() == "":
                continue
            try:
                values[key] = parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{origin}: [{name}] {key}: {exc}") from None
        built[_ATTR[name]] = cls(**values)
    settings = Settings(**built, source=source)
    _check_consistency(settings)
    return settings


def _check_consistency(settings: Settings) -> None:
    c = settings.compression
    if c.max_size and c.min_size > c.max_size:
        raise ConfigError(_where(settings.source, "Compression", "min_size",
                                 f"{c.min_size} is larger than max_size {c.max_size}"))
    d = settings.dropbox
    if d.ca_bundle and not Path(d.ca_bundle).is_file():
        raise ConfigError(_where(settings.source, "Dropbox", "ca_bundle",
                                 f"file not found: {d.ca_bundle}"))
    if d.redirect_uri and not d.redirect_uri.split("?", 1)[0].endswith(CONNECT_CALLBACK_PATH):
        raise ConfigError(_where(settings.source, "Dropbox", "redirect_uri",
                                 f"must end with {CONNECT_CALLBACK_PATH} (the page dropgz "
                                 f"serves), got {d.redirect_uri!r}"))
    a = settings.aws
    if bool(a.aws_access_key_id) != bool(a.aws_secret_access_key):
        missing = "aws_secret_access_key" if a.aws_access_key_id else "aws_access_key_id"
        raise ConfigError(_where(settings.source, "AWS", missing,
                                 "missing (set both keys, or neither to use the instance role)"))
