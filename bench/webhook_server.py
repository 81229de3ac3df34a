"""``python -m bench.webhook_server``: the production web server, plus a bare Flask route on it.

Built as ``dropgz web`` builds it (settings from ``DROPGZ_*``, the local push queue and
its delivery thread, :func:`dropgz.web.app.create_app`, waitress with the same thread count,
INFO logging with redaction), with one addition for benchmark 4: a bare Flask app
mounted under ``/bare`` on the same server, whose ``POST /bare/webhook`` does nothing.
Prints one JSON line ``{"event": "ready", "url": ...}`` on stdout; stops on SIGTERM.

Knobs for the benchmarks (environment, not settings): ``BENCH_PORT`` (default any free
port: the connect benchmarks register the redirect URI before the server starts),
``BENCH_BUCKET_SECONDS`` (the push queue's coalescing bucket) and ``BENCH_DELIVER=0`` (queue
delta tasks without delivering them, to time the webhook alone).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from types import FrameType

import waitress
from flask import Flask, Response
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from dropgz.cli.web import WAITRESS_THREADS
from dropgz.core.config import load_settings
from dropgz.core.logs import setup_logging
from dropgz.pushqueue.base import DEFAULT_BUCKET_SECONDS
from dropgz.pushqueue.local import LocalPushQueue
from dropgz.web.app import create_app

BARE_PREFIX = "/bare"


def bare_app() -> Flask:
    """The yardstick: Flask routing and a response, nothing else."""
    app = Flask("bare")

    @app.post("/webhook")
    def webhook() -> Response:
        return Response("", mimetype="text/plain")

    return app


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)  # waitress's loop closes and returns on SystemExit


def main() -> int:
    settings = load_settings(env=os.environ)
    setup_logging("INFO", settings.secrets())
    push_queue = LocalPushQueue.from_settings(settings)
    bucket = float(os.environ.get("BENCH_BUCKET_SECONDS", DEFAULT_BUCKET_SECONDS))
    app = create_app(settings, push_queue=push_queue, bucket_seconds=bucket)
    wsgi = DispatcherMiddleware(app, {BARE_PREFIX: bare_app()})
    server = waitress.create_server(wsgi, host="127.0.0.1",
                                    port=int(os.environ.get("BENCH_PORT", "0")),
                                    threads=WAITRESS_THREADS)
    url = f"http://127.0.0.1:{server.effective_port}"
    if os.environ.get("BENCH_DELIVER", "1") != "0":
        push_queue.start(url)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(json.dumps({"event": "ready", "url": url, "threads": WAITRESS_THREADS}), flush=True)
    try:
        server.run()
    finally:
        push_queue.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
