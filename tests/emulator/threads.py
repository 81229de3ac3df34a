"""Calls made on a thread, so a test can hold them in the emulator and watch them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Call:
    """Runs ``call`` on a thread; ``done`` is set when it returned or raised."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._call = call
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self._call()
        except BaseException as exc:  # handed to the test
            self.error = exc
        finally:
            self.done.set()

    def join(self) -> Any:
        assert self.done.wait(20), "the call did not return after its release"
        if self.error is not None:
            raise self.error
        return self.result


def any_done(calls: list[Call], timeout: float = 20.0) -> Call:
    """The first call to finish (a condition waited on, not a guessed delay)."""
    finished = threading.Event()
    for call in calls:
        threading.Thread(target=lambda c=call: c.done.wait(timeout) and finished.set(),
                         daemon=True).start()
    assert finished.wait(timeout), "no call returned"
    return next(call for call in calls if call.done.is_set())
