"""How answers go on the wire, as ``dropbox.dropbox_client`` expects them: JSON with
``Content-Type: application/json`` exactly (the SDK compares the whole value), 401 AuthError,
429 RateLimitError + ``Retry-After``, and downloads with ``Dropbox-API-Result``, Range and
``sendfile``. Mixed into :class:`dropgz.emulator.handler.EmulatorHandler`.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
from http.server import BaseHTTPRequestHandler
from typing import Any

from dropbox import auth
from dropbox import stone_serializers as serializers

from dropgz.emulator.app import Route
from dropgz.emulator.content import Download
from dropgz.emulator.errors import Unauthorized, error_summary

JSON = "application/json"
SEND_PIECE = 1 << 20
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """``(start, end_inclusive)`` for one satisfiable byte range, None to send the whole
    file (no or unsupported header), ``"unsatisfiable"`` for a range past the end."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        length = int(last)
        if length == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return "unsatisfiable"
    return start, end


class Answers(BaseHTTPRequestHandler):
    """Writing answers; ``_status`` is the status sent, ``_record`` counts it first."""

    _status: int | str

    def _record(self, status: int | str) -> None:
        raise NotImplementedError

    def _start(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        """Status line, headers and a small body in one write (one TCP segment if it fits)."""
        self._status = status
        self._record(status)
        self.send_response(status)
        self.send_header("X-Dropbox-Request-Id", secrets.token_hex(16))
        for key, value in headers.items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        # What end_headers() does, with the body appended before the flush.
        self._headers_buffer.append(b"\r\n" + body)  # type: ignore[attr-defined]
        self.flush_headers()

    def _send_bytes(self, status: int, content_type: str, body: bytes,
                    headers: dict[str, str] | None = None) -> None:
        self._start(status, {"Content-Type": content_type, "Content-Length": str(len(body)),
                             **(headers or {})}, body)

    def _send_json(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, JSON, text.encode("utf-8"), headers)

    def _send_text(self, status: int, text: str) -> None:
        self._send_bytes(status, "text/plain; charset=utf-8", text.encode("utf-8"))

    def _send_rate_limited(self, write: bool, retry_after: int) -> None:
        """429 + Retry-After; reason too_many_write_operations for a write."""
        reason = (auth.RateLimitReason.too_many_write_operations if write
                  else auth.RateLimitReason.too_many_requests)
        encoded = serializers.json_compat_obj_encode(
            auth.RateLimitError_validator,
            auth.RateLimitError(reason=reason, retry_after=retry_after))
        self._send_json(429, json.dumps({"error_summary": error_summary(encoded["reason"]),
                                         "error": encoded}),
                        {"Retry-After": str(retry_after)})

    def _send_auth_error(self, exc: Unauthorized) -> None:
        encoded = {".tag": exc.tag}
        self._send_json(401, json.dumps({"error_summary": f"{exc.tag}/..", "error": encoded,
                                         "error_description": str(exc)}))

    def _send_download(self, route: Route, download: Download) -> None:
        with download.stream as stream:
            size = download.size
            wanted = parse_range(self.headers.get("Range"), size)
            if wanted == "unsatisfiable":
                self._send_bytes(416, "text/plain; charset=utf-8",
                                 b"Requested range not satisfiable",
                                 {"Content-Range": f"bytes */{size}"})
                return
            start, end = wanted if isinstance(wanted, tuple) else (0, size - 1)
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Length": str(end - start + 1),
                "Accept-Ranges": "bytes",
                "Dropbox-API-Result": serializers.json_encode(route.spec.result_type,
                                                              download.metadata),
            }
            if isinstance(wanted, tuple):
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            self._start(206 if isinstance(wanted, tuple) else 200, headers)
            self._send_file(stream, start, end - start + 1)

    def _send_file(self, stream: Any, offset: int, count: int) -> None:
        if count <= 0:
            return
        if type(self.connection) is socket.socket:
            self.connection.sendfile(stream, offset, count)  # zero-copy on plain TCP
            return
        # TLS: socket.sendfile would fall back to 8 KiB sends; bigger pieces go faster.
        stream.seek(offset)
        piece = memoryview(bytearray(SEND_PIECE))
        while count > 0:
            got = stream.readinto(piece[:min(SEND_PIECE, count)])
            if not got:
                raise ConnectionError("file shrank while being sent")
            self.wfile.write(piece[:got])
            count -= got
