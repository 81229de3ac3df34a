"""``dropgz worker``: the compression tier, until stopped."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

import click
import dropbox
import requests
from dropbox.exceptions import AuthError, BadInputError

from dropgz.cli.common import config_option, load, log_level_option
from dropgz.compression.compress import FileCompressor
from dropgz.compression.internal_client import InternalClient
from dropgz.compression.memory import pin_mmap_threshold
from dropgz.compression.reporter import SEND_TIMEOUT_SECONDS, Reporter
from dropgz.compression.tokens import BrokeredCompressors, TokenSource
from dropgz.compression.worker import CompressorLookup, Worker
from dropgz.core.config import Settings
from dropgz.core.errors import ConfigError
from dropgz.dropbox_client import make_dropbox
from dropgz.ops.ledger import Ledger
from dropgz.queues import open_work_queue

log = logging.getLogger("dropgz.compression.worker")


def single_account(settings: Settings) -> CompressorLookup:
    """The seed's deployment: one token, one account. Messages for another account are
    refused (dead-lettered); messages naming no account belong to the token's owner."""
    dbx = make_dropbox(settings.dropbox, pool_size=settings.service.concurrency + 4)
    compressor = FileCompressor(dbx, settings.compression)
    known: list[str] = [settings.dropbox.account_id] if settings.dropbox.account_id else []

    def lookup(account: str | None) -> FileCompressor | None:
        if account is None:
            return compressor
        if not known:
            known.append(dbx.users_get_current_account().account_id)
        return compressor if account == known[0] else None

    return lookup


def brokered(settings: Settings) -> CompressorLookup:
    """Tokens from the web tier (``[Service] web_url``): any connected account, and this
    host holds no Dropbox credential (dropgz.compression.tokens)."""
    key = settings.require("Service", "internal_key")
    client = InternalClient(settings.service.web_url or "", key)
    return BrokeredCompressors(TokenSource(client), settings.dropbox, settings.compression,
                               pool_size=settings.service.concurrency + 4)


def verify_credentials(settings: Settings) -> None:
    """Refuse to start with credentials Dropbox rejects: otherwise every message would be
    retried and dead-lettered. Dropbox being unreachable is not fatal (it may come back)."""
    try:
        make_dropbox(settings.dropbox, max_retries_on_error=1, max_retries_on_rate_limit=1,
                     timeout=30).users_get_current_account()
    except AuthError as exc:
        key = "refresh_token" if settings.dropbox.refresh_token else "token"
        raise ConfigError(f"{settings.source}: [Dropbox] {key}: Dropbox refused it "
                          f"({exc.error})") from None
    except BadInputError as exc:  # the token endpoint refusing the app key or secret
        raise ConfigError(f"{settings.source}: [Dropbox] app_key/secret: Dropbox refused "
                          f"the token refresh ({str(exc.message)[:120]})") from None
    except (dropbox.exceptions.DropboxException, requests.RequestException) as exc:
        log.warning("could not reach Dropbox at start-up (%s); starting anyway",
                    type(exc).__name__)


def make_reporter(settings: Settings, concurrency: int) -> Reporter | None:
    """Reports to the web tier when ``[Service] web_url`` is set (``dropgz serve`` sets it)."""
    if not settings.service.web_url:
        return None
    key = settings.require("Service", "internal_key")
    client = InternalClient(settings.service.web_url, key, timeout=SEND_TIMEOUT_SECONDS)
    return Reporter(client, concurrency=concurrency)


def install_signal_handlers(worker: Worker) -> None:
    """First SIGTERM/SIGINT: drain. Second: exit now."""
    def handle(signum: int, frame: FrameType | None) -> None:
        if worker.stopping:
            worker.request_force_stop()
            logging.shutdown()
            os._exit(1)
        worker.request_stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


@click.command("worker")
@config_option
@log_level_option
@click.option("--concurrency", type=click.IntRange(1, 256), default=None,
              help="Files compressed at once (default: [Service] concurrency, 8).")
@click.option("--burst", is_flag=True, help="Exit once the queue is empty.")
def command(config_path: Path | None, log_level: str, concurrency: int | None,
            burst: bool) -> None:
    """Compression tier: take work messages (SQS, or the embedded SQLite queue), write
    name.gz beside each file. Runs until SIGTERM/SIGINT (first: finish in-flight files).
    With [Service] web_url, Dropbox tokens for every connected account come from the web
    tier; otherwise the [Dropbox] token's account is served."""
    settings = load(config_path, log_level)
    if settings.service.web_url:
        lookup, tokens = brokered(settings), f"from {settings.service.web_url}"
    else:
        settings.require_dropbox_credentials()
        verify_credentials(settings)
        lookup, tokens = single_account(settings), "[Dropbox] settings"
    pin_mmap_threshold()  # memory stays flat with file size: see dropgz.compression.memory
    queue = open_work_queue(settings)
    ledger = Ledger.in_dir(settings.service.data_path)
    concurrency = concurrency or settings.service.concurrency
    reporter = make_reporter(settings, concurrency)
    worker = Worker(queue, lookup, concurrency=concurrency,
                    on_file=reporter.record if reporter else None,
                    paused=reporter.paused if reporter else None,
                    on_outcome=ledger.record)
    install_signal_handlers(worker)
    log.info("worker started: queue=%s concurrency=%d claim=%ds compressor=%s level=%d "
             "tokens=%s", settings.aws.queue or "sqlite", worker.concurrency,
             worker.visibility_timeout, settings.compression.compressor,
             settings.compression.level, tokens)
    if reporter is not None:
        reporter.in_flight = lambda: worker.in_flight
        reporter.start()
    report = worker.work(burst=burst)
    if reporter is not None:
        reporter.close()
    queue.close()
    ledger.close()
    log.info("worker stopped: compressed=%d skipped=%d retried=%d dead_lettered=%d",
             report.compressed, report.skipped, report.retried, report.dead_lettered)
    sys.exit(0)
