"""The architecture rules (pyproject.toml [tool.importlinter]) hold, and would catch a breach.

Given the package as it is, When lint-imports checks it, Then every contract is kept.
Given a copy where the compression tier imports the web tier and two web modules import
each other, When lint-imports checks the copy, Then the independence, layers and
no-circle contracts are reported broken.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_every_architecture_contract_is_kept() -> None:
    result = _lint(ROOT, ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_breach_of_the_tiers_and_a_circle_are_caught(tmp_path: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    package = tmp_path / "src" / "dropgz"
    shutil.copytree(ROOT / "src" / "dropgz", package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    worker = package / "compression" / "worker.py"
    worker.write_text(worker.read_text() + "\nfrom dropgz.web import webhook  # noqa\n")
    webhook = package / "web" / "webhook.py"
    webhook.write_text(webhook.read_text() + "\n\ndef _circle():\n    from dropgz.web import app\n")

    result = _lint(tmp_path, tmp_path / "src")

    assert result.returncode != 0
    out = result.stdout
    tiers = "Tiers stay apart: compression never imports web, web never imports compression"
    assert f"{tiers} BROKEN" in out
    assert "No import circle among sibling modules anywhere in the package BROKEN" in out
    assert "dropgz.compression.worker -> dropgz.web.webhook" in out
