"""Holding requests until a test releases them: deterministic "in flight" for tests.

``POST /_emulator/hold {"route": "files/list_folder/continue"}`` makes every later request to
that route wait, before anything of it is processed (no latency, fault, token check or body
read yet), until ``POST /_emulator/release``. ``GET /_emulator/held`` tells which requests are
waiting; with ``?route=R&count=N&timeout=S`` it waits (long poll) until at least N requests
to R are held. A test can so stop a client exactly in the middle of a call, kill it, and know
it did, with no sleep racing a latency.

A hold may name an ``account_id``: then only that account's requests wait. (Only holds
checked once the caller is known, the ``commit:<route>`` ones taken inside the namespace lock,
can tell accounts apart; a plain route hold is checked before the token is.)

Requests held when the emulator stops are let go with a 503 and a closed connection.
"""

from __future__ import annotations

import threading
import time
from typing import Any

# Longest long poll of GET /_emulator/held, in seconds.
MAX_WAIT_SECONDS = 60.0


class _Ticket:
    __slots__ = ("released",)

    def __init__(self) -> None:
        self.released = False


class Holds:
    """The held routes and the requests waiting on them. Thread-safe."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._routes: dict[str, str | None] = {}  # route -> account_id filter (None: any)
        self._waiting: dict[str, list[_Ticket]] = {}
        self._closed = False

    def hold(self, route: str, account_id: str | None = None) -> dict[str, Any]:
        with self._cond:
            self._routes[route] = account_id
            return self._snapshot()

    def wait_if_held(self, route: str, account_id: str | None = None) -> bool:
        """Blocks while ``route`` is held (for ``account_id``); False when the emulator
        stopped meanwhile (the request must then not be served)."""
        with self._cond:
            if self._closed:
                return False
            if route not in self._routes:
                return True
            wanted = self._routes[route]
            if wanted is not None and wanted != account_id:
                return True
            ticket = _Ticket()
            self._waiting.setdefault(route, []).append(ticket)
            self._cond.notify_all()
            while not ticket.released and not self._closed:
                self._cond.wait()
            return ticket.released

    def release(self, route: str | None = None, count: int | None = None) -> dict[str, Any]:
        """Lets held requests go: all of them (and the hold ends) when ``count`` is None,
        else the ``count`` oldest of ``route`` (which stays held)."""
        with self._cond:
            routes = [route] if route is not None else list(self._waiting)
            for name in routes:
                tickets = self._waiting.get(name, [])
                chosen = tickets if count is None else tickets[:count]
                for ticket in chosen:
                    ticket.released = True
                self._waiting[name] = tickets[len(chosen):]
            if count is None and route is None:
                self._routes.clear()
            elif count is None:
                self._routes.pop(route, None)
            self._cond.notify_all()
            return self._snapshot()

    def wait_held(self, route: str, count: int, timeout: float) -> dict[str, Any]:
        """The snapshot once at least ``count`` requests to ``route`` are held, or after
        ``timeout`` seconds (``reached`` says which)."""
        deadline = time.monotonic() + min(timeout, MAX_WAIT_SECONDS)
        with self._cond:
            while len(self._waiting.get(route, [])) < count and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return {**self._snapshot(), "reached": len(self._waiting.get(route, [])) >= count}

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            return self._snapshot()

    def close(self) -> None:
        """The emulator stops: every held request is let go, nothing is held any more."""
        with self._cond:
            self._closed = True
            self._routes.clear()
            self._cond.notify_all()

    def _snapshot(self) -> dict[str, Any]:
        held = {route: len(tickets) for route, tickets in self._waiting.items() if tickets}
        return {"routes": sorted(self._routes), "held": held, "total": sum(held.values())}
