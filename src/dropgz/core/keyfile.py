"""Keys single-host mode makes for itself and keeps in ``[Service] data_dir`` (mode 0600):
the internal key (``serve``) and the local push queue's task secret."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from dropgz.core.errors import ConfigError
from dropgz.core.secret import Secret

INTERNAL_KEY_FILE = "internal_key"


def kept_key(data_path: Path, name: str, configured: Secret | None = None, *,
             what: str = "key", setting: str = "") -> Secret:
    """``configured`` if set, else the key in ``data_path/name``, made on first use.

    ``what`` names the key in the error for an empty file, ``setting`` the setting that
    would replace it."""
    if configured:
        return configured
    data_path.mkdir(parents=True, exist_ok=True)
    path = data_path / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text(encoding="ascii").strip()
        if not value:
            instead = f", or set {setting}" if setting else ""
            raise ConfigError(f"{path}: empty {what} file: delete it to make a new one"
                              f"{instead}") from None
        return Secret(value)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        value = secrets.token_hex(32)
        fh.write(value + "\n")
    return Secret(value)
