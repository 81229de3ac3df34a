"""A string that never shows itself in logs, errors or reprs."""

from __future__ import annotations

import hmac


class Secret:
    """Holds a credential. ``str()``, ``repr()`` and f-strings print ``'***'``.

    Only :meth:`reveal` gives the value, so every place that hands a secret to a
    library is easy to find with grep.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __reduce__(self) -> tuple[type, tuple[str]]:
        # Settings are passed to worker processes; pickling must keep the value.
        return (Secret, (self._value,))
