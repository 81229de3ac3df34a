"""What every subcommand shares: the ``--config`` option, settings loading, logging."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from dropgz.core.config import Settings, load_settings
from dropgz.core.logs import setup_logging

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_CONFIG = "settings.cfg"


def config_option(func: F) -> F:
    """``--config PATH`` (default: ./settings.cfg when present, else the environment only)."""
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=True, path_type=Path),
        default=None, envvar="DROPGZ_CONFIG",
        help="settings.cfg to read (default: ./settings.cfg if present; "
             "DROPGZ_<SECTION>_<KEY> variables override it).")(func)


def log_level_option(func: F) -> F:
    return click.option("--log-level", default="INFO", show_default=True,
                        type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"],
                                          case_sensitive=False))(func)


def load(config_path: Path | None, log_level: str = "INFO") -> Settings:
    """Settings from ``config_path`` (or the default) and the environment; logging set up
    to redact every secret they hold. A ConfigError propagates to the CLI's one-line exit 2."""
    if config_path is None and Path(DEFAULT_CONFIG).is_file():
        config_path = Path(DEFAULT_CONFIG)
    setup_logging(log_level)  # before loading: the permission warning must show
    settings = load_settings(config_path, env=os.environ)
    setup_logging(log_level, secrets=settings.secrets())
    return settings
