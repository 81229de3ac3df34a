"""dropgz benchmarks: each figure is a ratio of two measurements taken in the same run.

``python -m bench`` runs them all (``--size tiny|full``, ``--only NAME``); see BENCHMARKS.md.
One module per benchmark, each with ``NAME``, ``TITLE``, ``PRESETS`` (parameters per size)
and ``run(size, workdir, **overrides) -> BenchResult``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# In the order; the module names say what each measures.
BENCHMARKS: dict[str, str] = {
    "throughput": "bench.throughput",
    "memory": "bench.memory",
    "small_files": "bench.small_files",
    "webhook": "bench.webhook",
    "delta": "bench.delta",
    "compressors": "bench.compressors",
    "reporting": "bench.reporting",
    "dashboard": "bench.dashboard",
    "many_accounts": "bench.many_accounts",
    "brokered_tokens": "bench.brokered_tokens",
    "batching": "bench.batching",
}


def load(name: str) -> ModuleType:
    """The module of benchmark ``name``; ValueError naming the known ones otherwise."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r} (choose from {', '.join(BENCHMARKS)})")
    return importlib.import_module(BENCHMARKS[name])
