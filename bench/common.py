"""What every benchmark shares: results with their targets, tables, data, peers, process memory.

A benchmark measures two things in the same run and reports their quotient, so the figure
means the same on a fast laptop and on a slow 2-core VM: "the worker reaches 0.93 of the
bare compressor", not "the worker does 41 MB/s". Each :class:`Figure` carries its target
and says whether it was met; each :class:`BenchResult` also carries ``checks``, the
benchmark's own proof that it measured real work (the .gz decompresses to the input, the
queue holds the expected messages...). A figure from a run whose checks failed is void.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import random
import shutil
import subprocess
import sysconfig
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dropbox
import requests
from dropbox.files import CommitInfo, UploadSessionCursor, UploadSessionFinishArg, WriteMode

from dropgz.core.config import DropboxSettings
from dropgz.core.secret import Secret
from dropgz.dropbox_client import make_dropbox
from dropgz.ops import peers
from dropgz.ops.processes import start_emulator, stop
from dropgz.ops.samples import log_lines

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
SIZES = ("tiny", "full")
# Upload-session appends; files/upload takes at most 150 MiB per call, and concurrent
# sessions want 4 MiB multiples:
# https://www.dropbox.com/developers/documentation/http/documentation#files-upload_session-append
UPLOAD_CHUNK = 8 * MiB
EMULATOR_READY_SECONDS = 60.0


# ---------------------------------------------------------------- results


@dataclass
class Figure:
    """One reported number and its target. ``op`` is ``">="``, ``"<="`` or ``"±"`` (a ratio
    within ``target`` of 1: 0.10 means 0.9..1.1); ``unit`` is ``"ratio"`` for a quotient of
    two measurements, else the unit of an absolute figure."""

    name: str
    value: float
    target: float | None = None
    op: str = ">="
    unit: str = "ratio"
    note: str = ""

    @property
    def met(self) -> bool | None:
        """True/False against the target; None when there is no target."""
        if self.target is None:
            return None
        if self.op == "±":
            return abs(self.value - 1) <= self.target
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


@dataclass
class BenchResult:
    """What one benchmark measured: a table, its figures against targets, its own checks."""

    name: str
    title: str
    size: str
    params: dict[str, Any]
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None  # set when the benchmark could not run to the end

    @property
    def ok(self) -> bool:
        """Ran to the end and every check passed (targets are reported, not required)."""
        return self.error is None and bool(self.checks) and all(self.checks.values())

    def check(self, name: str, passed: bool) -> bool:
        """Record a correctness check (a failed one voids the figures)."""
        self.checks[name] = bool(passed) and self.checks.get(name, True)
        return passed

    def figure(self, name: str, value: float, target: float | None = None, *, op: str = ">=",
               unit: str = "ratio", note: str = "") -> Figure:
        fig = Figure(name, float(value), target, op, unit, note)
        self.figures.append(fig)
        return fig

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["figures"] = [f.to_dict() for f in self.figures]
        data["ok"] = self.ok
        return data


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def markdown_table(columns: list[str], rows: Iterable[dict[str, Any]]) -> str:
    rows = list(rows)
    cells = [[_cell(row.get(col, "")) for col in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
              for r in cells]
    return "\n".join(lines)


def _target(fig: Figure) -> str:
    if fig.target is None:
        return "-"
    if fig.op == "±":
        return f"1 ± {_cell(fig.target)}"
    return f"{fig.op} {_cell(fig.target)}"


def _verdict(fig: Figure) -> str:
    return {True: "met", False: "MISSED", None: "-"}[fig.met]


def render(result: BenchResult) -> str:
    """The result as markdown: measurements, then figures against targets, then checks."""
    out = [f"### {result.title} ({result.size}, {result.seconds:.1f} s)", ""]
    if result.params:
        out += ["params: " + ", ".join(f"{k}={v}" for k, v in result.params.items()), ""]
    if result.rows:
        out += [markdown_table(result.columns, result.rows), ""]
    if result.figures:
        out.append(markdown_table(
            ["figure", "value", "target", "verdict"],
            [{"figure": f.name + (f" ({f.note})" if f.note else ""),
              "value": f"{_cell(f.value)}{'' if f.unit == 'ratio' else ' ' + f.unit}",
              "target": _target(f),
              "verdict": _verdict(f)} for f in result.figures]))
        out.append("")
    failed = [name for name, passed in result.checks.items() if not passed]
    out.append(f"checks: {len(result.checks) - len(failed)}/{len(result.checks)} passed"
               + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    out += [f"note: {n}" for n in result.notes]
    if result.error:
        out.append(f"ERROR: {result.error}")
    return "\n".join(out) + "\n"


def write_json(results: list[BenchResult], path: Path, meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "results": [r.to_dict() for r in results]},
                               indent=2) + "\n")


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.started


def mb_per_s(nbytes: int, seconds: float) -> float:
    """Decimal megabytes per second, as compressor benchmarks usually quote them."""
    return nbytes / 1e6 / seconds if seconds > 0 else 0.0


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 1,000 samples is the 990th)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * pct // 100)))
    return ordered[int(rank) - 1]


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.05) -> None:
    """Poll ``condition`` until true; TimeoutError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s")
        time.sleep(interval)


# ---------------------------------------------------------------- realistic data
#
# Dropbox folders hold logs, spreadsheets exported as CSV, JSON, source code and
# already-compressed media. Each kind is generated once per process (seeded, so every
# run compresses the same bytes) and larger sizes repeat it: deflate looks back 32 KiB
# only, so a repeat every few MiB does not make the data easier than it is.

KIND_SHARES = {"log": 0.35, "csv": 0.20, "json": 0.15, "source": 0.20, "random": 0.10}
UNIT_BYTES = 16 * MiB  # one period of the mixed stream
PIECE_BYTES = MiB  # the mixed stream switches kind every piece


def _csv_text(rng: random.Random, size: int) -> bytes:
    regions = ["us-west-1", "us-east-1", "eu-central-1", "ap-south-1", "sa-east-1"]
    rows, total, i = ["date,order_id,region,product,units,unit_price,total,customer\n"], 0, 0
    while total < size:
        units, price = rng.randint(1, 500), rng.uniform(0.5, 999)
        row = (f"2026-{1 + i % 12:02d}-{1 + i % 28:02d},{100000 + i},{rng.choice(regions)},"
               f"SKU-{rng.randint(1000, 9999)},{units},{price:.2f},{units * price:.2f},"
               f"C{rng.randint(1, 50000):06d}\n")
        rows.append(row)
        total += len(row)
        i += 1
    return "".join(rows).encode()[:size]


def _json_text(rng: random.Random, size: int) -> bytes:
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    records, total, i = [], 0, 0
    while total < size:
        record = json.dumps({
            "id": i, "name": f"{rng.choice(words)} {rng.choice(words)} {i}",
            "tags": rng.sample(words, 3), "price": round(rng.uniform(1, 100), 2),
            "active": rng.random() > 0.3, "stock": {"warehouse": rng.randint(0, 9),
                                                    "units": rng.randint(0, 1000)},
            "updated": f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:00:00Z"}, indent=2)
        records.append(record)
        total += len(record) + 2
        i += 1
    return ("[\n" + ",\n".join(records) + "\n]\n").encode()[:size]


def _source_text(rng: random.Random, size: int) -> bytes:
    # Real Python: the standard library's own modules, in a fixed order.
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    text = b"".join(p.read_bytes() for p in sorted(stdlib.glob("*.py")))
    return (text * (size // len(text) + 1))[:size]


def _random_bytes(rng: random.Random, size: int) -> bytes:
    # Stands in for JPEG/MP4/ZIP content: incompressible.
    return rng.randbytes(size)


_MAKERS: dict[str, Callable[[random.Random, int], bytes]] = {
    "log": log_lines, "csv": _csv_text, "json": _json_text, "source": _source_text,
    "random": _random_bytes,
}


@functools.lru_cache(maxsize=16)
def kind_bytes(kind: str, size: int, seed: int = 2026) -> bytes:
    """``size`` bytes of one kind: ``log``, ``csv``, ``json``, ``source`` or ``random``."""
    if kind not in _MAKERS:
        raise ValueError(f"unknown kind {kind!r} (choose from {', '.join(_MAKERS)})")
    return _MAKERS[kind](random.Random(f"{seed}-{kind}"), size)


def corpus(total: int, seed: int = 2026) -> dict[str, bytes]:
    """One file per kind, sized by :data:`KIND_SHARES`, ``total`` bytes together."""
    return {kind: kind_bytes(kind, max(1, int(total * share)), seed)
            for kind, share in KIND_SHARES.items()}


@functools.lru_cache(maxsize=2)
def _mixed_unit(unit: int, seed: int) -> bytes:
    pieces = max(1, unit // PIECE_BYTES)
    piece = unit // pieces
    # Each kind gets its share of the pieces; the order is shuffled with the seed.
    order: list[str] = []
    for kind, share in KIND_SHARES.items():
        order += [kind] * max(1, round(pieces * share))
    random.Random(seed).shuffle(order)
    order = order[:pieces]
    sources = {kind: kind_bytes(kind, piece * order.count(kind), seed) for kind in set(order)}
    used = dict.fromkeys(sources, 0)
    out = bytearray()
    for kind in order:
        out += sources[kind][used[kind]:used[kind] + piece]
        used[kind] += piece
    return bytes(out)


def mixed_chunks(size: int, chunk: int = UPLOAD_CHUNK, seed: int = 2026) -> Iterator[bytes]:
    """``size`` bytes of mixed content, as chunks, without holding more than a period."""
    unit = _mixed_unit(min(UNIT_BYTES, max(PIECE_BYTES, size)), seed)
    sent = 0
    while sent < size:
        offset = sent % len(unit)
        take = min(chunk, size - sent, len(unit) - offset)
        yield unit[offset:offset + take]
        sent += take


def mixed_bytes(size: int, seed: int = 2026) -> bytes:
    return b"".join(mixed_chunks(size, seed=seed))


def sha256_of(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------- tools and processes


def find_tool(name: str) -> str | None:
    """Path of a command-line tool, or None (the caller says it is missing)."""
    return shutil.which(name)


def gunzip_sha256(gz_path: Path, gzip_cmd: str | None = None) -> str | None:
    """SHA-256 of what GNU ``gzip -dc`` makes of ``gz_path``; None if gzip refuses it."""
    gzip_cmd = gzip_cmd or find_tool("gzip")
    if gzip_cmd is None:
        raise RuntimeError("GNU gzip is not installed (apt-get install -y gzip)")
    digest = hashlib.sha256()
    with subprocess.Popen([gzip_cmd, "-dc", str(gz_path)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        for block in iter(lambda: proc.stdout.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest() if proc.returncode == 0 else None


def proc_status_kib(pid: int, key: str) -> int:
    """A ``/proc/<pid>/status`` figure in KiB: ``VmRSS`` (now) or ``VmHWM`` (peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(f"{key} not in /proc/{pid}/status")


@dataclass
class Emulator:
    """A running ``python -m dropgz.emulator`` and what its ready line said."""

    proc: subprocess.Popen[bytes]
    info: dict[str, Any]
    log_path: Path

    @property
    def url(self) -> str:
        return self.info["url"]

    @property
    def token(self) -> str:
        return self.info["token"]

    @property
    def app_secret(self) -> str:
        return self.info["app_secret"]

    @property
    def account_id(self) -> str:
        return self.info["account_id"]

    @property
    def ca_bundle(self) -> str | None:
        return self.info.get("ca_bundle")

    def client(self, pool_size: int = 16, account: int = 1) -> dropbox.Dropbox:
        """An SDK client for the bench's own setup calls, as user ``account`` (1-based, as
        ``--accounts N`` counts them)."""
        return make_dropbox(self.settings(account), pool_size=pool_size)

    def settings(self, account: int = 1) -> DropboxSettings:
        """``[Dropbox]`` settings acting as user ``account``."""
        return DropboxSettings(token=Secret(self.info["accounts"][account - 1]["token"]),
                               api_base_url=self.url, ca_bundle=self.ca_bundle)

    def account_ids(self) -> list[str]:
        return [entry["account_id"] for entry in self.info["accounts"]]

    def _admin_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def stats(self) -> dict[str, Any]:
        """Request counters (``GET /_emulator/stats``)."""
        response = requests.get(f"{self.url}/_emulator/stats", timeout=10,
                                headers=self._admin_auth(), verify=self.ca_bundle or True)
        response.raise_for_status()
        return response.json()

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change run-time knobs (``POST /_emulator/config``), e.g. ``latency_ms=50``."""
        response = requests.post(f"{self.url}/_emulator/config", json=changes, timeout=10,
                                 headers=self._admin_auth(), verify=self.ca_bundle or True)
        response.raise_for_status()
        return response.json()

    def env(self, data_dir: Path, **extra: str) -> dict[str, str]:
        """``DROPGZ_*`` settings for a dropgz tier pointed at this emulator."""
        env = {
            "DROPGZ_DROPBOX_TOKEN": self.token,
            "DROPGZ_DROPBOX_SECRET": self.app_secret,
            "DROPGZ_DROPBOX_API_BASE_URL": self.url,
            "DROPGZ_DROPBOX_ACCOUNT_ID": self.account_id,
            "DROPGZ_SERVICE_DATA_DIR": str(data_dir),
        }
        if self.ca_bundle:
            env["DROPGZ_DROPBOX_CA_BUNDLE"] = self.ca_bundle
        env.update(extra)
        return env


def route_calls(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """Requests per route between two :meth:`Emulator.stats` snapshots (zeros left out)."""
    calls: dict[str, int] = {}
    for route, counts in after.get("routes", {}).items():
        done = counts["total"] - before.get("routes", {}).get(route, {}).get("total", 0)
        if done and not route.startswith("/_emulator"):
            calls[route] = done
    return calls


@contextlib.contextmanager
def running_emulator(workdir: Path, *args: str) -> Iterator[Emulator]:
    """An emulator on a fresh root under ``workdir``, stopped on exit."""
    root = workdir / "dropbox-root"
    root.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "emulator.log"
    proc, info = start_emulator(root, log_path, *args, timeout=EMULATOR_READY_SECONDS)
    try:
        yield Emulator(proc, info, log_path)
    finally:
        stop(proc)


def upload_chunks(dbx: dropbox.Dropbox, path: str, chunks: Iterable[bytes]
                  ) -> dropbox.files.FileMetadata:
    """Upload ``chunks`` (each at most 150 MiB) to ``path`` through one upload session."""
    session_id: str | None = None
    offset = 0
    for chunk in chunks:
        if session_id is None:
            session_id = dbx.files_upload_session_start(chunk).session_id
        else:
            dbx.files_upload_session_append_v2(chunk, UploadSessionCursor(session_id, offset))
        offset += len(chunk)
    if session_id is None:
        return dbx.files_upload(b"", path, mode=WriteMode.overwrite)
    return dbx.files_upload_session_finish(
        b"", UploadSessionCursor(session_id, offset),
        CommitInfo(path=path, mode=WriteMode.overwrite))


def seed_small_files(dbx: dropbox.Dropbox, files: Sequence[tuple[str, bytes]],
                     concurrency: int = 16) -> list[dropbox.files.FileMetadata]:
    """Upload many small files into one account as Dropbox advises under its write
    contention: each in its own closed session (in parallel: uploading data takes no lock),
    then up to 1,000 committed per ``finish_batch_v2``, one batch at a time. Any refused
    entry is an error (setup must be clean). Returns the metadata in ``files`` order."""
    with ThreadPoolExecutor(concurrency) as pool:
        sessions = list(pool.map(
            lambda item: dbx.files_upload_session_start(item[1], close=True).session_id, files))
    metadata: list[dropbox.files.FileMetadata] = []
    for start in range(0, len(files), 1000):
        chunk = list(zip(files[start:start + 1000], sessions[start:start + 1000], strict=True))
        result = dbx.files_upload_session_finish_batch_v2([
            UploadSessionFinishArg(UploadSessionCursor(session_id, len(data)),
                                   CommitInfo(path, mode=WriteMode.overwrite))
            for (path, data), session_id in chunk])
        for ((path, _), _), entry in zip(chunk, result.entries, strict=True):
            if not entry.is_success():
                raise RuntimeError(f"seeding {path}: {entry.get_failure()}")
            metadata.append(entry.get_success())
    return metadata


def download_to(dbx: dropbox.Dropbox, path: str, target: Path) -> dropbox.files.FileMetadata:
    """Stream ``path`` from Dropbox into the local file ``target``."""
    md, response = dbx.files_download(path)
    with response, target.open("wb") as out:
        for block in response.iter_content(MiB):
            out.write(block)
    return md


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


@contextlib.contextmanager
def running_moto(workdir: Path) -> Iterator[str]:
    """``moto_server`` (SQS over real HTTP) on a free loopback port; yields its URL."""
    proc, url = peers.start_moto(workdir / "moto_server.log", timeout=EMULATOR_READY_SECONDS)
    try:
        yield url
    finally:
        stop(proc)


moto_env = peers.moto_env
