"""Each benchmark, at its tiny size, still runs against its real peers and checks its own work.

No timing is asserted here (targets are the benchmark's business, on a quiet machine); what
is asserted is that each benchmark ran to the end, that its own correctness checks passed
(the .gz decompresses to the input, every message arrived...), and that it reported every
figure it promises as a positive number.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bench import BENCHMARKS, load
from bench.__main__ import main, parse_overrides
from bench.common import BenchResult, Figure, percentile, render

ROOT = Path(__file__).resolve().parent.parent

# The figures each benchmark must report, by name prefix.
EXPECTED_FIGURES = {
    "compressors": ["isal MB/s / GNU gzip -6 MB/s", "isal output ratio / GNU gzip -6"],
    "throughput": ["gzip: worker MB/s / bare MB/s", "isal: worker MB/s / bare MB/s"],
    "memory": ["peak − idle RSS", "growth "],
    "small_files": ["files/s / (concurrency", "Dropbox calls per file"],
    "webhook": ["dropgz POSTs/s / bare route POSTs/s", "dropgz p99 latency"],
    "delta": ["first listing: files/s", "first listing: Dropbox calls / floor",
              "first listing: SQS calls / floor", "continue after 600 changes: files/s"],
    "reporting": ["files/s with reporting / without"],
    "dashboard": ["slowest page: large service / small service"],
    "many_accounts": ["webhook p99, "],
    "brokered_tokens": ["brokered files/s / seed-token files/s"],
    "batching": ["files/s / (concurrency", "Dropbox calls per file"],
}


@pytest.fixture(autouse=True)
def _tools() -> None:
    for tool in ("gzip", "pigz"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (apt-get install -y {tool}); "
                        "the benchmarks compare against it")


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_benchmark_runs_at_tiny_size(name: str, tmp_path: Path) -> None:
    # Given a benchmark module, when it runs at its tiny size
    result = load(name).run("tiny", tmp_path)

    # Then it finished and its own correctness checks all passed
    assert result.error is None, result.error
    assert result.checks, "a benchmark must check its own work"
    failed = [check for check, passed in result.checks.items() if not passed]
    assert not failed, f"{name} checks failed: {failed}\n{render(result)}"
    assert result.ok
    # and every promised figure is there, a positive finite number with a verdict if targeted
    names = [f.name for f in result.figures]
    for prefix in EXPECTED_FIGURES[name]:
        assert any(n.startswith(prefix) for n in names), (prefix, names)
    for fig in result.figures:
        assert isinstance(fig.value, float) and math.isfinite(fig.value) and fig.value > 0, fig
        assert fig.met in (True, False) if fig.target is not None else fig.met is None
    # and the table has a row per measured case, with the columns it declares
    assert result.rows
    for row in result.rows:
        assert set(result.columns) <= set(row), (result.columns, row)
    # and it serialises to JSON as the CLI writes it
    data = json.loads(json.dumps(result.to_dict()))
    assert data["ok"] is True and data["name"] == name


def test_cli_writes_tables_and_json(tmp_path: Path) -> None:
    # When the command runs one benchmark at the tiny size
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--size", "tiny", "--only", "compressors",
         "--json", str(out), "--workdir", str(tmp_path / "work")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)

    # Then it exits 0, prints the table with verdicts, and writes the JSON results
    assert done.returncode == 0, done.stderr
    assert "| isal MB/s / GNU gzip -6 MB/s" in done.stdout
    assert "checks: 8/8 passed" in done.stdout
    data = json.loads(out.read_text())
    assert data["meta"]["size"] == "tiny" and data["meta"]["cpus"] >= 1
    [result] = data["results"]
    assert result["name"] == "compressors" and result["ok"] is True
    assert all(f["value"] > 0 for f in result["figures"])


def test_bad_arguments_give_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--only", "nonsense"])
    assert exc.value.code == 2
    assert "unknown benchmark(s) nonsense" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="memory has no parameter 'colour'"):
        parse_overrides(["memory.colour=blue"], ["memory"])
    with pytest.raises(SystemExit, match=r"wants NAME\.KEY=VALUE"):
        parse_overrides(["memory"], ["memory"])
    assert parse_overrides(["memory.sizes=17MiB,34MiB", "delta.files=5000"],
                           ["memory", "delta"]) == {
        "memory": {"sizes": "17MiB,34MiB"}, "delta": {"files": 5000}}


def test_figures_judge_their_targets() -> None:
    assert Figure("a", 0.9, 0.85).met is True
    assert Figure("a", 0.8, 0.85).met is False
    assert Figure("b", 35.5, 32, op="<=", unit="MiB").met is False
    assert Figure("c", 1.08, 0.10, op="±").met is True
    assert Figure("c", 0.85, 0.10, op="±").met is False
    assert Figure("d", 3.0).met is None
    result = BenchResult("x", "X", "tiny", {})
    assert not result.ok  # no checks: nothing proves the figures
    result.check("ran", True)
    result.check("ran", False)  # a check failed once stays failed
    assert not result.ok and "FAILED: ran" in render(result)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 1001)]
    assert percentile(values, 99) == 990.0
    assert percentile(values, 50) == 500.0
    assert percentile([5.0], 99) == 5.0
