"""Run the emulator on a port: :class:`EmulatorServer` (in-process, background thread).

Why the stdlib ``http.server.ThreadingHTTPServer`` with ``protocol_version = "HTTP/1.1"``
rather than werkzeug or waitress: the emulator must do things a framework hides on purpose —
drop a connection without answering (fault injection), stream request bodies of any size
straight to disk in bounded pieces (waitress buffers whole bodies first), send files with
``sendfile`` and Range, and wrap each connection in TLS on its own thread so a slow handshake
never blocks ``accept``. werkzeug's development server is this same stdlib server underneath.
One thread per connection with keep-alive fits the workloads here (tens of concurrent clients,
latency injected with ``sleep``).

Usage::

    with EmulatorServer(EmulatorConfig(root=tmp)).start() as server:
        dbx = dropbox.Dropbox(server.token, session=make_session(server.url))
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dropgz.emulator.app import Emulator
from dropgz.emulator.config import EmulatorConfig
from dropgz.emulator.handler import EmulatorHandler

log = logging.getLogger("dropgz.emulator")

# Seconds a TLS client has to finish its handshake.
TLS_HANDSHAKE_TIMEOUT = 10.0


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: Emulator,
                 ssl_context: ssl.SSLContext | None) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.emulator = emulator
        self.ssl_context = ssl_context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, EmulatorHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Runs on the connection's own thread: the TLS handshake happens here."""
        if self.ssl_context is not None:
            request.settimeout(TLS_HANDSHAKE_TIMEOUT)
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                log.info("TLS handshake with %s failed: %s", client_address, exc)
                return
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)
            if self.ssl_context is not None:
                request.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("unhandled error on connection from %s", client_address)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class EmulatorServer:
    """An :class:`Emulator` behind an HTTP(S) server on ``config.host:config.port``."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.emulator: Emulator | None = None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> EmulatorServer:
        """Binds the port and serves on a background thread. ValueError / OSError if it can't."""
        emulator = Emulator(self.config)
        try:
            context = self._ssl_context()
            self._httpd = _HTTPServer((self.config.host, self.config.port), emulator, context)
        except BaseException:
            emulator.close()
            raise
        self.emulator = emulator
        emulator.start()
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.2,),
                                        name="emulator-http", daemon=True)
        self._thread.start()
        log.info("serving %s on %s (root %s)", "HTTPS" if context else "HTTP", self.url,
                 emulator.root)
        return self

    def stop(self) -> None:
        """Lets held requests go (503), stops accepting, cuts open connections, stops the
        webhook thread. Idempotent."""
        if self.emulator is not None:
            self.emulator.holds.close()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.close_connections()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self.emulator is not None:
            self.emulator.close()
            self.emulator = None

    def __enter__(self) -> EmulatorServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.config.tls_cert is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.config.tls_cert), str(self.config.tls_key))
        return context

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        host = self.config.host
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if self.config.tls_cert else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def root(self) -> Path:
        assert self.emulator is not None, "server not started"
        return self.emulator.root

    @property
    def token(self) -> str:
        assert self.emulator is not None, "server not started"
        return self.emulator.credentials["token"]

    def ready_info(self) -> dict[str, Any]:
        """What the CLI prints once listening: where it is and which credentials it accepts.
        The top-level token, refresh_token, account_id and root are the first account's;
        ``accounts`` lists every account."""
        emu = self.emulator
        assert emu is not None, "server not started"
        accounts = [{"account_id": account.account_id, "email": account.profile.email,
                     "display_name": account.profile.display_name,
                     "token": credentials["token"],
                     "refresh_token": credentials["refresh_token"], "root": str(account.root)}
                    for account, credentials in zip(emu.accounts, emu.account_credentials,
                                                    strict=True)]
        return {"event": "ready", "url": self.url, **emu.credentials,
                "account_id": emu.account_id, "root": str(emu.root),
                "app_name": emu.config.app_name, "accounts": accounts}
