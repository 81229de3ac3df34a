"""``python -m bench [--size tiny|full] [--only NAME,...] [--set NAME.KEY=VALUE]``.

Runs the benchmarks one after another, prints one markdown table per benchmark (the
measurements, then each figure against its target: met / MISSED), and writes every
result to JSON. Exit status: 0 when every benchmark ran and passed its own checks
(a missed target is reported, not an error), 1 otherwise, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import logging
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import BENCHMARKS, load
from bench.common import SIZES, BenchResult, cpu_count, render, write_json
from dropgz.core.config import parse_size

HERE = Path(__file__).resolve().parent


def _value(raw: str) -> Any:
    """``--set`` values: a whole number, a size (``64MiB``), a float, else the text."""
    for parse in (int, parse_size, float):
        try:
            return parse(raw)
        except ValueError:
            pass
    return raw


def parse_overrides(items: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
    """``["memory.sizes=..."]`` -> ``{"memory": {"sizes": ...}}``; SystemExit(2) when malformed."""
    overrides: dict[str, dict[str, Any]] = {name: {} for name in names}
    for item in items:
        target, sep, raw = item.partition("=")
        name, dot, key = target.partition(".")
        if not sep or not dot or not key:
            raise SystemExit(f"bench: --set wants NAME.KEY=VALUE, got {item!r}")
        if name not in BENCHMARKS:
            raise SystemExit(f"bench: --set {item!r}: unknown benchmark {name!r} "
                             f"(choose from {', '.join(BENCHMARKS)})")
        known = set(load(name).PRESETS["full"])
        if key not in known:
            raise SystemExit(f"bench: --set {item!r}: {name} has no parameter {key!r} "
                             f"(known: {', '.join(sorted(known))})")
        overrides.setdefault(name, {})[key] = _value(raw)
    return overrides


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), "")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=HERE.parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"when": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": cpu_count(),
            "cpu": model, "python": platform.python_version(), "platform": platform.platform(),
            "commit": commit}


def run_one(name: str, size: str, workdir: Path, overrides: dict[str, Any]) -> BenchResult:
    """Run one benchmark; any exception becomes the result's ``error`` (the run goes on)."""
    module = load(name)
    started = time.perf_counter()
    try:
        result = module.run(size, workdir, **overrides)
    except Exception as exc:  # one broken benchmark must not hide the others' figures
        traceback.print_exc()
        result = BenchResult(name, module.TITLE, size, {**module.PRESETS[size], **overrides},
                             error=f"{type(exc).__name__}: {exc}")
    result.seconds = time.perf_counter() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="full",
                        help="tiny: seconds, proves each benchmark works; full: the real figures")
    parser.add_argument("--only", default="",
                        help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="NAME.KEY=VALUE", help="override one parameter of one benchmark")
    parser.add_argument("--json", type=Path, default=None,
                        help="where to write the results (default bench/results-SIZE.json)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="scratch folder (default: a temporary one, removed afterwards)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)} "
                     f"(choose from {', '.join(BENCHMARKS)})")
    overrides = parse_overrides(args.overrides, names)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    meta = {**machine(), "size": args.size}
    print(f"dropgz benchmarks, size {args.size}: {meta['cpus']} CPU(s) {meta['cpu']}, "
          f"Python {meta['python']}, commit {meta['commit'] or '?'}\n", flush=True)
    json_path = args.json or HERE / f"results-{args.size}.json"
    results: list[BenchResult] = []
    with tempfile.TemporaryDirectory(prefix="dropgz-bench-") as tmp:
        base = args.workdir or Path(tmp)
        for name in names:
            workdir = base / name
            shutil.rmtree(workdir, ignore_errors=True)  # a fresh emulator root and queues
            workdir.mkdir(parents=True)
            print(f"running {name}...", file=sys.stderr, flush=True)
            result = run_one(name, args.size, workdir, overrides.get(name, {}))
            results.append(result)
            print(render(result), flush=True)
            write_json(results, json_path, meta)
    print(f"results: {json_path}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
