"""A varied, reproducible sample set for the demo and tests: what people keep in Dropbox."""

from __future__ import annotations

import gzip
import json
import random
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    path: str
    data: bytes
    eligible: bool  # False: dropgz must leave it alone (already gzip, or compressed)


def log_lines(rng: random.Random, size: int) -> bytes:
    """``size`` bytes of a web server's log: the kind of text Dropbox folders fill up with.

    Shared with the benchmarks (bench/common.py), so the demo and the figures compress the
    same kind of data.
    """
    levels = ["INFO"] * 6 + ["WARN", "ERROR", "DEBUG", "DEBUG"]
    routes = ["/api/v2/items", "/api/v2/items/{}", "/login", "/static/app.{}.js",
              "/api/v2/search?q={}", "/health", "/files/{}/download"]
    agents = ["Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "dropbox-sdk-python/12.2.4",
              "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1)"]
    lines, total, second = [], 0, 0
    while total < size:
        second += rng.randint(0, 2)
        route = rng.choice(routes).format(rng.randint(1, 99999))
        line = (f"2026-11-24T{second // 3600 % 24:02d}:{second // 60 % 60:02d}:"
                f"{second % 60:02d}.{rng.randint(0, 999):03d}Z {rng.choice(levels)} "
                f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)} "
                f"req={rng.getrandbits(64):016x} {rng.choice(['GET', 'GET', 'POST', 'PUT'])} "
                f"{route} status={rng.choice([200, 200, 200, 201, 304, 404, 500])} "
                f"bytes={rng.randint(0, 250000)} ms={rng.randint(1, 900)} "
                f"agent=\"{rng.choice(agents)}\"\n")
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def _csv(rng: random.Random, rows: int) -> bytes:
    out = ["date,region,product,units,price"]
    for i in range(rows):
        out.append(f"2026-{1 + i % 12:02d}-{1 + i % 28:02d},"
                   f"{rng.choice(['us-west-1', 'eu-central-1', 'ap-south-1'])},"
                   f"SKU-{rng.randint(1000, 9999)},{rng.randint(1, 500)},"
                   f"{rng.uniform(1, 999):.2f}")
    return ("\n".join(out) + "\n").encode()


def _json(rng: random.Random, items: int) -> bytes:
    records = [{"id": i, "name": f"item {i}", "tags": rng.sample(["a", "b", "c", "d", "e"], 2),
                "price": round(rng.uniform(1, 100), 2), "active": rng.random() > 0.3}
               for i in range(items)]
    return json.dumps({"items": records}, indent=2).encode()


def _png_like(rng: random.Random, size: int) -> bytes:
    """A PNG signature and IHDR, then incompressible bytes (already-compressed image data)."""
    ihdr = struct.pack(">IIBBBBB", 640, 480, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    head = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)))
    return head + rng.randbytes(size - len(head))


def _source_code() -> bytes:
    """This package's own source: real Python text."""
    here = Path(__file__).parent
    return b"".join(p.read_bytes() for p in sorted(here.glob("*.py")))


def sample_set(big_bytes: int = 50 * 1000 * 1000, seed: int = 2026) -> list[Sample]:
    """The demo's files. ``big_bytes`` sizes the one large log (0 leaves it out)."""
    rng = random.Random(seed)
    samples = [
        Sample("/notes/meeting notes.txt", ("Agenda\n- budget\n- hiring\n" * 400).encode(), True),
        Sample("/reports/2026/sales Q3.csv", _csv(rng, 5000), True),
        Sample("/data/catalog.json", _json(rng, 2000), True),
        Sample("/logs/app-2026-11-23.log", log_lines(rng, 400_000), True),
        Sample("/code/dropgz_source.py", _source_code(), True),
        # gzip would save nothing: skipped on its first bytes (min_savings, PNG signature)
        Sample("/photos/holiday.png", _png_like(rng, 300_000), False),
        Sample("/Ünïcødé Földer/résumé 東京 (final).md",
               "# Résumé\n\nCafé, naïve, 東京, ✓\n".encode() * 300, True),
        Sample("/deep/a/b/c/d/nested config.yaml", b"key: value\nlist:\n  - one\n  - two\n" * 300,
               True),
        Sample("/backups/already.tar.gz", gzip.compress(b"an archive\n" * 1000, mtime=0), False),
    ]
    if big_bytes:
        samples.append(Sample("/logs/big/server-full.log", log_lines(rng, big_bytes), True))
    return samples
