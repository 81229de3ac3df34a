"""HTTP/1.1 request handling: Dropbox wire format in and out, faults, admin routes.

Paths served on one port:

- ``/2/<route>``: the Dropbox API (RPC: JSON body; content: ``Dropbox-API-Arg`` header in,
  ``Dropbox-API-Result`` header out), with latency and fault injection, acting on the account
  whose token the request carries;
- ``/oauth2/authorize`` (consent page, :mod:`oauth_authorize`) and ``/oauth2/token``
  (:mod:`oauth_token`);
- ``/_emulator/...``: test helpers (:mod:`admin`), an account's fixed token required, never
  faulted.

Each failure is answered as Dropbox does (errors.py): 400 text for bad arguments, 401 JSON
AuthError, 409 JSON route error, 429 JSON RateLimitError + ``Retry-After``, 5xx text; how
answers are written is :mod:`answers`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from dropbox import stone_serializers as serializers
from dropbox import stone_validators as validators

from dropgz.emulator import admin
from dropgz.emulator.answers import JSON, Answers
from dropgz.emulator.app import ROUTES, Route
from dropgz.emulator.batch import contention_failures
from dropgz.emulator.body import ClientGone, RequestBody
from dropgz.emulator.content import Download
from dropgz.emulator.contention import TooManyWriteOperations
from dropgz.emulator.errors import (
    BadRequest,
    RouteError,
    Unauthorized,
    Unavailable,
    error_summary,
)
from dropgz.emulator.oauth_token import OAuthError

if TYPE_CHECKING:
    from dropgz.emulator.app import Emulator

log = logging.getLogger("dropgz.emulator.http")

# Largest RPC / admin / OAuth body accepted (they are small JSON or form documents).
MAX_SMALL_BODY = 1 << 20
# A body left unread after an early answer (e.g. payload_too_large) is drained up to this
# size to keep the connection; beyond it the connection is closed instead.
MAX_DRAIN = 512 << 20


class EmulatorHandler(Answers):
    """One connection; ``self.server.emulator`` is the :class:`Emulator` served."""

    protocol_version = "HTTP/1.1"
    server_version = "dropgz-emulator/1"
    sys_version = ""
    # Small answers go out as header + body writes: without TCP_NODELAY, Nagle plus delayed
    # ACKs would add ~40 ms to each keep-alive request.
    disable_nagle_algorithm = True
    timeout = 120  # seconds an idle keep-alive connection is kept

    server: Any

    @property
    def emulator(self) -> Emulator:
        return self.server.emulator

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The path only: a query string could carry an argument nobody wants in a log.
        elapsed = (time.monotonic() - getattr(self, "_started", time.monotonic())) * 1000
        log.info('"%s %s" %s %.1f ms', self.command, self.path.partition("?")[0], code,
                 elapsed)

    # ----------------------------------------------------------------- dispatch

    def _handle(self) -> None:
        self._started = time.monotonic()
        self._status: int | str = "-"
        self._stat_route: str | None = None  # counted in stats once, before the answer leaves
        self._fault: str | None = None
        path, _, self._query = self.path.partition("?")
        try:
            self._body = RequestBody.from_headers(self.rfile, self.headers)
        except BadRequest as exc:
            self.close_connection = True
            self._send_text(400, str(exc))
            return
        try:
            if path.startswith("/2/"):
                self._dropbox(unquote(path[3:]))
            elif path == "/oauth2/token":
                self._oauth()
            elif path == "/oauth2/authorize":
                self._authorize()
            elif path.startswith("/_emulator/"):
                self._admin(path[len("/_emulator/"):])
            else:
                self._send_text(404, f"Not found: {path}")
        except (ClientGone, ConnectionError, TimeoutError) as exc:
            log.info("client went away during %s: %s", path, exc)
            self.close_connection = True
        finally:
            if not self.close_connection and not self._body.drain(MAX_DRAIN):
                self.close_connection = True

    def _dropbox(self, name: str) -> None:
        emu = self.emulator
        route = ROUTES.get(name)
        self._stat_route = name
        if not self._wait_if_held(name):
            return
        if route is None or not route.commits:
            emu.faults.delay()  # a commit spends it holding its namespace lock
        fault = emu.faults.draw()
        if fault is not None:
            self._fault = fault
            self._inject(fault, route)
            self._record("drop" if fault == "drop" else self._status)
            return
        try:
            self._call(name, route)
        except RouteError as exc:
            encoded = serializers.json_compat_obj_encode(route.spec.error_type, exc.error)
            self._send_json(409, json.dumps({"error_summary": error_summary(encoded),
                                             "error": encoded}))
        except Unauthorized as exc:
            self._send_auth_error(exc)
        except TooManyWriteOperations:
            emu.stats.count_contention("rejected_calls")
            self._send_rate_limited(True, emu.settings.retry_after)
        except Unavailable as exc:
            self.close_connection = True
            self._send_text(503, f"Service Unavailable ({exc})")
        except BadRequest as exc:
            self._send_text(400, f'Error in call to API function "{name}": {exc}')
        except (ClientGone, ConnectionError, TimeoutError):
            raise
        except Exception:
            log.exception("internal error in %s", name)
            self._send_text(500, "Internal Server Error (emulator bug, see its log)")
        finally:
            self._record(self._status)

    def _wait_if_held(self, name: str) -> bool:
        """Waits while a test holds this route (:mod:`holds`); False (and a 503 sent) when
        the emulator stops meanwhile."""
        if self.emulator.holds.wait_if_held(name):
            return True
        self.close_connection = True
        self._send_text(503, "Service Unavailable (the emulator is stopping)")
        return False

    def _record(self, status: int | str) -> None:
        """Count this request once. Called before the answer is written, so a client that
        has its answer always finds it counted (tests read stats right after a call)."""
        if self._stat_route is not None:
            self.emulator.stats.record(self._stat_route, status, fault=self._fault)
            self._stat_route = None

    def _call(self, name: str, route: Route | None) -> None:
        if route is None:
            raise BadRequest("Unknown API function")
        if self.command != "POST" and route.style != "download":
            raise BadRequest(f"{self.command} is not allowed; use POST")
        emu = self.emulator
        credential = emu.tokens.check(self.headers.get("Authorization"))
        arg = self._decode_arg(route)
        account = emu.by_id[credential.account_id]
        if route.takes_credential:
            result = route.handler(emu, credential, arg, self._body)
        elif route.commits == "call":
            with account.namespace_lock.commit(route.name) as held:
                if not held:
                    raise TooManyWriteOperations(route.name)
                result = route.handler(account, arg, self._body)
        else:
            result = route.handler(account, arg, self._body)
        if route.commits == "entries" and (failed := contention_failures(result)):
            emu.stats.count_contention("failed_batch_entries", failed)
        if isinstance(result, Download):
            self._send_download(route, result)
            return
        self._send_json(200, serializers.json_encode(route.spec.result_type, result))

    def _decode_arg(self, route: Route) -> Any:
        if route.style == "rpc":
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            raw = self._body.read_all(MAX_SMALL_BODY).decode("utf-8", "replace")
            if raw.strip() == "" and isinstance(route.spec.arg_type, validators.Void):
                return None
            if content_type != JSON:
                raise BadRequest(f'Bad HTTP "Content-Type" header: "{content_type}". '
                                 'Expecting one of "application/json", '
                                 '"application/json; charset=utf-8".')
        else:
            raw = self.headers.get("Dropbox-API-Arg") or parse_qs(self._query).get("arg", [""])[0]
            if not raw:
                raise BadRequest('Must provide HTTP header "Dropbox-API-Arg" or URL '
                                 'parameter "arg".')
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if route.style == "upload" and content_type not in ("application/octet-stream",
                                                                 "text/plain"):
                raise BadRequest(f'Bad HTTP "Content-Type" header: "{content_type}". '
                                 'Expecting one of "application/octet-stream", '
                                 '"text/plain; charset=dropbox-cors-hack".')
        try:
            return serializers.json_decode(route.spec.arg_type, raw, strict=True)
        except validators.ValidationError as exc:
            raise BadRequest(f"request body: {exc}") from None

    # ----------------------------------------------------------------- faults

    def _inject(self, fault: str, route: Route | None) -> None:
        if fault == "drop":
            self._status = "drop"
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "500":
            self._send_text(500, "Internal Server Error (injected by the emulator)")
            return
        self._send_rate_limited(route is not None and route.writes,
                                self.emulator.settings.retry_after)

    # ------------------------------------------------------------ oauth, admin

    def _form(self) -> dict[str, str]:
        """Query string and form body merged (the body wins), first value of each name."""
        raw = self._body.read_all(MAX_SMALL_BODY).decode("utf-8", "replace")
        return {key: values[0] for key, values in
                parse_qs(self._query + "&" + raw, keep_blank_values=True).items()}

    def _oauth(self) -> None:
        self._stat_route = "oauth2/token"
        if not self._wait_if_held("oauth2/token"):
            return
        try:
            if self.command != "POST":
                raise OAuthError("invalid_request", "use POST")
            answer = self.emulator.token_endpoint.answer(self._form(),
                                                         self.headers.get("Authorization"))
            self._send_json(200, json.dumps(answer), {"Cache-Control": "no-store"})
        except OAuthError as exc:
            self._send_json(400, json.dumps({"error": exc.error,
                                             "error_description": exc.description}))
        except BadRequest as exc:
            self._send_json(400, json.dumps({"error": "invalid_request",
                                             "error_description": str(exc)}))
        self._record(self._status)

    def _authorize(self) -> None:
        self._stat_route = "oauth2/authorize"
        authorizer = self.emulator.authorizer
        if self.command == "POST":
            status, headers, body = authorizer.decide(self._form())
        else:
            query = {key: values[0] for key, values in
                     parse_qs(self._query, keep_blank_values=True).items()}
            status, headers, body = authorizer.page(query)
        self._send_bytes(status, headers.pop("Content-Type", "text/plain"), body, headers)

    def _admin(self, name: str) -> None:
        emu = self.emulator
        if not emu.tokens.is_fixed(self.headers.get("Authorization")):
            self._send_auth_error(Unauthorized("invalid_access_token",
                                               "the emulator's admin routes need the fixed "
                                               "token of one of its accounts"))
            return
        try:
            if self.command == "POST":
                params = admin.json_object(self._body.read_all(MAX_SMALL_BODY))
            else:
                params = {key: values[0] for key, values in parse_qs(self._query).items()}
            answer = admin.answer(emu, self.command, name, params)
        except admin.AdminError as exc:
            self._send_text(exc.status, str(exc))
            return
        except BadRequest as exc:
            self._send_text(400, str(exc))
            return
        self._send_json(200, json.dumps(answer))

    # ---------------------------------------------------------------- answers
