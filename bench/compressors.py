"""Benchmark 6: every gzip compressor dropgz can use, against GNU gzip -6 and pigz, same files.

dropgz's backends are timed as the worker drives them (:meth:`Compressor.open_writer`,
fed 1 MiB blocks); GNU ``gzip`` and ``pigz`` as processes reading a file and writing one.
Speed is input MB/s (best of ``repeats``), output ratio is gzip bytes / input bytes over
the whole corpus. Every output must come back through GNU ``gzip -dc`` as the input.
Target: the isal backend (dropgz's level 6, i.e. ISA-L level 2) at least 5x GNU gzip -6,
with an output ratio within 20 % of it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.common import BenchResult, MiB, corpus, find_tool, gunzip_sha256, mb_per_s, sha256_of
from dropgz.compression.compressors import get_compressor
from dropgz.core.errors import ConfigError

NAME = "compressors"
TITLE = "6. Compressors: MB/s and output ratio on the same files"
PRESETS = {
    "tiny": {"corpus_bytes": 2 * MiB, "repeats": 1},
    "full": {"corpus_bytes": 64 * MiB, "repeats": 3},
}
BLOCK = MiB  # what GzipReader hands the compressor
SPEEDUP_TARGET = 5.0  # isal vs GNU gzip -6 (the issue)
RATIO_TOLERANCE = 1.20  # isal output at most 20 % larger than GNU gzip -6's
# (label, dropgz backend, dropgz level 1..9)
BACKENDS = [
    ("python gzip -1", "gzip", 1),
    ("python gzip -6", "gzip", 6),
    ("python gzip -9", "gzip", 9),
    ("zlib-ng -6", "zlib-ng", 6),
    ("isal -6 (ISA-L 2)", "isal", 6),
    ("isal -9 (ISA-L 3)", "isal", 9),
]
ISAL_LABEL = "isal -6 (ISA-L 2)"
GNU_LABEL = "GNU gzip -6"


class _Sink:
    """Collects the compressor's output (so it can be checked after the clock stops)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def compress_with(backend: str, level: int, blocks: Iterable[bytes], *, name: bytes = b"bench",
                  mtime: int = 0) -> tuple[bytes, float]:
    """gzip of ``blocks`` with a dropgz backend; returns it and the seconds spent."""
    compressor = get_compressor(backend)
    sink = _Sink()
    started = time.perf_counter()
    writer = compressor.open_writer(sink, name=name, mtime=mtime, level=level)  # type: ignore[arg-type]
    for block in blocks:
        writer.write(block)
    writer.close()
    seconds = time.perf_counter() - started
    return b"".join(sink.parts), seconds


def _blocks(data: bytes) -> list[memoryview]:
    view = memoryview(data)
    return [view[i:i + BLOCK] for i in range(0, len(data), BLOCK)]


@dataclass
class _Timing:
    seconds: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    verified: bool = True


def _time_backend(backend: str, level: int, data: dict[str, bytes], repeats: int,
                  outdir: Path) -> _Timing:
    timing = _Timing()
    for kind, raw in data.items():
        best, output = float("inf"), b""
        for _ in range(repeats):
            output, seconds = compress_with(backend, level, _blocks(raw))
            best = min(best, seconds)
        out_path = outdir / f"{kind}.{backend}-{level}.gz"
        out_path.write_bytes(output)
        timing.verified &= gunzip_sha256(out_path) == sha256_of([raw])
        timing.seconds += best
        timing.bytes_in += len(raw)
        timing.bytes_out += len(output)
        out_path.unlink()
    return timing


def _time_tool(argv: list[str], files: dict[str, Path], data: dict[str, bytes], repeats: int,
               outdir: Path) -> _Timing:
    timing = _Timing()
    for kind, path in files.items():
        out_path = outdir / f"{kind}.{Path(argv[0]).name}.gz"
        best = float("inf")
        for _ in range(repeats):
            with out_path.open("wb") as out:
                started = time.perf_counter()
                subprocess.run([*argv, "-c", str(path)], stdout=out, check=True, timeout=600)
                best = min(best, time.perf_counter() - started)
        timing.verified &= gunzip_sha256(out_path) == sha256_of([data[kind]])
        timing.seconds += best
        timing.bytes_in += len(data[kind])
        timing.bytes_out += out_path.stat().st_size
        out_path.unlink()
    return timing


def run(size: str, workdir: Path, **overrides: object) -> BenchResult:
    params = {**PRESETS[size], **overrides}
    result = BenchResult(NAME, TITLE, size, params,
                         columns=["compressor", "MB/s", "ratio", "speed vs gzip -6",
                                  "ratio vs gzip -6"])
    data = corpus(int(params["corpus_bytes"]))
    indir = workdir / "corpus"
    indir.mkdir(parents=True, exist_ok=True)
    files = {}
    for kind, raw in data.items():
        files[kind] = indir / f"{kind}.dat"
        files[kind].write_bytes(raw)
    gzip_cmd, pigz_cmd = find_tool("gzip"), find_tool("pigz")
    if gzip_cmd is None:
        result.error = "GNU gzip is not installed (apt-get install -y gzip): nothing to compare"
        return result
    repeats = int(params["repeats"])
    timings: dict[str, _Timing] = {}
    for label, backend, level in BACKENDS:
        try:
            timings[label] = _time_backend(backend, level, data, repeats, workdir)
        except ConfigError as exc:  # an optional backend is not installed
            result.notes.append(f"{label} skipped: {exc}")
    timings[GNU_LABEL] = _time_tool([gzip_cmd, "-6", "-n"], files, data, repeats, workdir)
    if pigz_cmd is None:
        result.notes.append("pigz is not installed (apt-get install -y pigz): row left out")
    else:
        timings["pigz -6 (all cores)"] = _time_tool([pigz_cmd, "-6", "-n"], files, data,
                                                    repeats, workdir)
    gnu = timings[GNU_LABEL]
    gnu_speed = mb_per_s(gnu.bytes_in, gnu.seconds)
    gnu_ratio = gnu.bytes_out / gnu.bytes_in
    for label, t in timings.items():
        speed, ratio = mb_per_s(t.bytes_in, t.seconds), t.bytes_out / t.bytes_in
        result.rows.append({"compressor": label, "MB/s": speed, "ratio": ratio,
                            "speed vs gzip -6": speed / gnu_speed,
                            "ratio vs gzip -6": ratio / gnu_ratio})
        result.check(f"{label}: gzip -dc gives the input back", t.verified)
    if ISAL_LABEL in timings:
        isal = timings[ISAL_LABEL]
        result.figure("isal MB/s / GNU gzip -6 MB/s",
                      mb_per_s(isal.bytes_in, isal.seconds) / gnu_speed, SPEEDUP_TARGET)
        result.figure("isal output ratio / GNU gzip -6 output ratio",
                      (isal.bytes_out / isal.bytes_in) / gnu_ratio, RATIO_TOLERANCE, op="<=")
    else:
        result.notes.append("isal is not installed (pip install 'dropgz[isal]'): no target")
    kinds = ", ".join(f"{kind} {len(raw) / MiB:.1f} MiB" for kind, raw in data.items())
    result.notes.append(f"corpus: {kinds}")
    return result
