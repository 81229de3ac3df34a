"""``dropgz serve``: every tier on one host, supervised."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from dropgz.cli.common import config_option, load, log_level_option
from dropgz.core.config import Settings
from dropgz.core.keyfile import INTERNAL_KEY_FILE, kept_key
from dropgz.ops.supervisor import Supervisor


def child_argv(command: str, config_path: Path | None, log_level: str,
               *extra: str) -> list[str]:
    argv = [sys.executable, "-m", "dropgz", command, "--log-level", log_level]
    if config_path is not None:
        argv += ["--config", str(config_path)]
    return argv + list(extra)


@click.command("serve")
@config_option
@log_level_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address the webhook endpoint listens on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes (each runs [Service] concurrency files at once).")
def command(config_path: Path | None, log_level: str, host: str, port: int,
            workers: int) -> None:
    """Run the monitoring and delta tiers (web app + local push queue) and the compression
    tier (workers) on this host, restarting any that dies. The work queue is SQS when
    [AWS] queue is set, else the embedded SQLite queue. Workers get short-lived Dropbox
    tokens from the web app, as on separate hosts. SIGTERM drains, then exits 0."""
    settings = load(config_path, log_level)  # fail fast, in one line, on bad settings
    if not settings.dropbox.redirect_uri:
        settings.require_dropbox_credentials()
    settings.require("Dropbox", "secret")
    children = {"web": child_argv("web", config_path, log_level,
                                  "--host", host, "--port", str(port))}
    for n in range(workers):
        children[f"worker-{n + 1}"] = child_argv("worker", config_path, log_level)
    sys.exit(Supervisor(children, env=children_env(settings, host, port)).run())


def children_env(settings: Settings, host: str, port: int) -> dict[str, str]:
    """The children's environment: workers get their Dropbox tokens from this web tier
    (``web_url`` = its own loopback address), calls signed with the configured
    ``internal_key`` or one kept in data_dir. (Environment variables win over the file.)"""
    own = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104 - comparing
    if ":" in own:
        own = f"[{own}]"
    key = kept_key(settings.service.data_path, INTERNAL_KEY_FILE, settings.service.internal_key)
    return {**os.environ, "DROPGZ_SERVICE_WEB_URL": f"http://{own}:{port}",
            "DROPGZ_SERVICE_INTERNAL_KEY": key.reveal()}
