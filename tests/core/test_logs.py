"""Log lines: ``key=value`` fields, read back by what parses them (the demo's table)."""

from __future__ import annotations

import pytest

from dropgz.core.logs import fields, parse_fields


@pytest.mark.parametrize("value", [
    "/photos/holiday.png", "/a b/c.txt", 'say "hi"', "a=b", "back\\slash", "two\nlines",
    "", "ünïcødé 東京", "already compressed: PNG image",
])
def test_parse_fields_reads_back_what_fields_wrote(value: str) -> None:
    line = "2026-11-30 08:58:32,190 INFO dropgz.compression.worker file " + fields(
        path=value, outcome="skipped", reason=value, ratio=0.5, n=3)
    assert parse_fields(line) == {"path": value, "outcome": "skipped", "reason": value,
                                  "ratio": "0.500", "n": "3"}
