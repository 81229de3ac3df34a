"""``dropgz emulator`` / ``python -m dropgz.emulator``: run the emulator until SIGTERM/SIGINT.

On start it prints ONE JSON line on stdout (``{"event": "ready", "url": ..., credentials...}``,
flushed) so a parent process knows where to connect; everything else goes to stderr. argparse
keeps the emulator free of the service's dependencies; ``dropgz emulator`` forwards to it.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from dropgz.emulator.config import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_AUTH_CODE_TTL_SECONDS,
    DEFAULT_TOKEN_TTL_SECONDS,
    FAULT_KINDS,
    MAX_ACCOUNTS,
    EmulatorConfig,
    parse_fault_kinds,
)
from dropgz.emulator.server import EmulatorServer


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Dropbox API v2 emulator: serves /2/<route>, /oauth2/authorize "
        "and /oauth2/token on one port for the unmodified Dropbox SDK. Prints one JSON 'ready' "
        "line on stdout, then logs to stderr; SIGTERM or SIGINT stops it.")
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, default=0, help="port to listen on; 0 picks a free one (default)")
    add("--root", type=Path, help="folder keeping the account's files and the emulator's state "
        "(hidden .dropgz-emulator/ inside); default: a new temporary folder")
    add("--token", help="access token accepted for every request (never expires); default: "
        "generated once per root and printed in the ready line")
    add("--app-key", help="OAuth app key (client_id) for /oauth2/token; default generated")
    add("--app-secret", help="OAuth app secret: signs webhooks and authenticates token "
        "refreshes; default generated")
    add("--refresh-token", help="refresh token accepted by /oauth2/token; default generated")
    add("--account-id", default=DEFAULT_ACCOUNT_ID,
        help=f"account id ('dbid:' + 35 characters; default {DEFAULT_ACCOUNT_ID})")
    add("--webhook-url", help="URL receiving Dropbox-style change notifications (signed POST)")
    add("--tls-cert", type=Path, help="PEM certificate chain: serve HTTPS (with --tls-key)")
    add("--tls-key", type=Path, help="PEM private key of --tls-cert")
    add("--latency-ms", type=float, default=0.0,
        help="milliseconds added to every Dropbox request (default 0)")
    add("--fail-rate", type=float, default=0.0, help="fraction (0..1) of Dropbox requests "
        "answered with a fault: 429 + Retry-After, 500, or a dropped connection (default 0)")
    add("--fail-kinds", default=",".join(FAULT_KINDS), type=parse_fault_kinds,
        help=f"comma-separated faults to draw from (default {','.join(FAULT_KINDS)})")
    add("--seed", type=int, help="random seed making fault injection reproducible")
    add("--retry-after", type=int, default=1,
        help="seconds announced by Retry-After on injected 429s (default 1)")
    add("--token-ttl", type=int, default=DEFAULT_TOKEN_TTL_SECONDS,
        help=f"lifetime in seconds of tokens minted by /oauth2/token "
        f"(default {DEFAULT_TOKEN_TTL_SECONDS})")
    add("--journal-limit", type=int, default=1_000_000,
        help="changes kept for cursors; older cursors get 'reset' (default 1000000)")
    add("--webhook-retry-seconds", type=float, default=60.0,
        help="how long a failing webhook delivery is retried with backoff (default 60)")
    add("--accounts", type=int, default=1,
        help=f"number of emulated users (1..{MAX_ACCOUNTS}, default 1), each with its own "
        "files, cursors and tokens; the flags above describe the first, the others' "
        "credentials are generated and printed in the ready line")
    add("--app-name", default="dropgz",
        help="the app's name on the OAuth consent page (default dropgz)")
    add("--redirect-uri", dest="redirect_uris", action="append", default=[],
        metavar="URI", help="an OAuth redirect URI registered for the app (repeatable); "
        "/oauth2/authorize refuses any other")
    add("--auth-code-ttl", type=int, default=DEFAULT_AUTH_CODE_TTL_SECONDS,
        help=f"seconds an OAuth authorization code stays valid "
        f"(default {DEFAULT_AUTH_CODE_TTL_SECONDS})")
    add("--no-write-contention", dest="write_contention", action="store_false",
        help="let overlapping commits in one account wait for each other instead of failing "
        "with 429 too_many_write_operations as Dropbox does (contention is on by default)")
    add("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="stderr log level (default INFO)")
    return parser


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    return EmulatorConfig(
        host=args.host, port=args.port, root=args.root, token=args.token,
        app_key=args.app_key, app_secret=args.app_secret, refresh_token=args.refresh_token,
        account_id=args.account_id, webhook_url=args.webhook_url, tls_cert=args.tls_cert,
        tls_key=args.tls_key, latency_ms=args.latency_ms, fail_rate=args.fail_rate,
        fail_kinds=args.fail_kinds, seed=args.seed, token_ttl=args.token_ttl,
        retry_after=args.retry_after, journal_limit=args.journal_limit,
        webhook_retry_seconds=args.webhook_retry_seconds, accounts=args.accounts,
        app_name=args.app_name, redirect_uris=tuple(args.redirect_uris),
        auth_code_ttl=args.auth_code_ttl, write_contention=args.write_contention)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Runs until SIGTERM/SIGINT; returns the exit status (0 on a clean stop, 2 on bad input)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server = EmulatorServer(config_from_args(args)).start()
    except (ValueError, OSError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(server.ready_info()), flush=True)
        while not stop.wait(0.5):
            pass
        logging.getLogger("dropgz.emulator").info("stopping")
    finally:
        server.stop()
    return 0
