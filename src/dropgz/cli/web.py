"""``dropgz web``: the monitoring and delta tiers on one host, under waitress.

Runs the same Flask app as App Engine with the local push queue (SQLite + an in-process
delivery thread), after starting to watch the configured account. Stops cleanly on
SIGTERM or SIGINT: the dispatcher finishes its deliveries in flight (the server still
answers them), then waitress stops; undelivered tasks stay queued.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import click
import dropbox
import waitress
from waitress import wasyncore

from dropgz.cli.common import config_option, load, log_level_option
from dropgz.core.config import Settings
from dropgz.core.errors import ConfigError, DropgzError
from dropgz.core.logs import fields
from dropgz.core.retries import describe
from dropgz.pushqueue.local import LocalPushQueue
from dropgz.state.base import utcnow
from dropgz.web.app import create_app
from dropgz.web.delta import init_account
from dropgz.web.services import Services

log = logging.getLogger("dropgz.web.app")
# Request threads: each delta run holds one for its whole listing.
WAITRESS_THREADS = 8


def _serve_until_signal(server: Any, push_queue: LocalPushQueue) -> None:
    """Serve until SIGTERM/SIGINT, then stop in dependency order.

    The push queue delivers its tasks to this very server, so it stops first (finishing
    the deliveries in flight while the server still answers them), then the server. The
    other order left a delivery waiting for an answer that never came, and the process
    hung until the delivery timeout.
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=server.run, name="dropgz-waitress", daemon=True)
    thread.start()
    while not stop.wait(0.5):
        if not thread.is_alive():
            log.error("the web server stopped by itself")
            break
    log.info("stopping: finishing task deliveries, then the server")
    push_queue.close()
    # waitress's close() is not thread-safe: have its own loop close its sockets.
    server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
    thread.join(10)
    server.task_dispatcher.shutdown()


def _watch_seed_account(settings: Settings, svc: Services) -> None:
    """Start watching the account of ``[Dropbox] token`` now (the seed's deployment)."""
    assert svc.accounts is not None
    try:
        account = init_account(settings, svc.state, svc.accounts.client(),
                               page_limit=svc.page_limit)
        log.info("watching: %s", fields(account=account))
    except (DropgzError, dropbox.exceptions.DropboxException) as exc:
        # Not fatal: the reconcile task the dispatcher runs at start tries again. With a
        # known account id, watching starts now anyway (the first run lists from scratch
        # and keeps files modified from this moment).
        log.warning("could not reach Dropbox at start-up: %s", fields(error=describe(exc)))
        if settings.dropbox.account_id:
            svc.state.add_account(settings.dropbox.account_id, watch_start=utcnow())


@click.command("web")
@config_option
@log_level_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (Dropbox must reach /webhook through a proxy).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on (0: any free port, printed at start).")
def command(config_path: Path | None, log_level: str, host: str, port: int) -> None:
    """Serve /webhook and /tasks/* locally with the local push queue."""
    settings = load(config_path, log_level)
    if settings.service.state != "sqlite":
        raise ConfigError(f"{settings.source}: [Service] state: dropgz web needs 'sqlite' "
                          "('ndb' runs on App Engine only)")
    push_queue = LocalPushQueue.from_settings(settings)
    app = create_app(settings, push_queue=push_queue)
    svc: Services = app.extensions["dropgz"]
    if svc.accounts is not None:
        _watch_seed_account(settings, svc)
    if settings.dropbox.redirect_uri:
        log.info("users connect at: %s", fields(
            url=settings.dropbox.redirect_uri.rsplit("/", 1)[0],
            accounts=svc.state.count_accounts()))
    server = waitress.create_server(app, host=host, port=port, threads=WAITRESS_THREADS)
    own = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104 - comparing
    if ":" in own:
        own = f"[{own}]"
    base_url = f"http://{own}:{server.effective_port}"
    push_queue.start(base_url)
    log.info("listening: %s", fields(url=base_url, webhook=f"{base_url}/webhook"))
    click.echo(f"dropgz web: listening on {base_url}", err=True)
    _serve_until_signal(server, push_queue)
    svc.counters.flush()
    log.info("stopped")
    sys.exit(0)
