"""The README's first command: `dropgz demo` runs the whole pipeline offline and verifies it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.fixtures.peers import gunzip_bytes


def test_demo_compresses_and_verifies_every_sample(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DROPGZ_")}
    result = subprocess.run(
        [sys.executable, "-m", "dropgz", "demo", "--big", "2MB", "--timeout", "120",
         "--workdir", str(workdir)],
        capture_output=True, text=True, env={**env, "COLUMNS": "200"}, timeout=240, check=False)
    logs = "".join(p.read_text() for p in (workdir / "logs").glob("*.log"))
    assert result.returncode == 0, result.stdout + result.stderr + logs[-5000:]
    assert "files of 2 users compressed and verified" in result.stdout
    assert "left alone: already .gz" in result.stdout
    assert "left alone: already compressed: PNG image" in result.stdout  # gzip saves nothing
    # It says where the dashboard is and how to log in (the run's own password)
    shown = re.search(r"http://127\.0\.0\.1:\d+/dashboard\s+\(log in with the password "
                      r"(\S+)\)", result.stdout)
    assert shown, result.stdout
    assert f"operator_password = {shown.group(1)}" in (workdir / "settings.cfg").read_text()
    assert result.stdout.count("connected at http://127.0.0.1:") == 2
    # The emulator keeps each user's files in a plain folder (user 2's inside the first's
    # hidden state folder): check the .gz files there with GNU gzip too.
    first = workdir / "dropbox"
    # (user 1 also has the one large file)
    for root, at_least in ((first, 8), (first / ".dropgz-emulator" / "accounts" / "2", 7)):
        files = [p for p in root.rglob("*")
                 if p.is_file() and ".dropgz-emulator" not in p.relative_to(root).parts]
        gz_files = [p for p in files if p.suffix == ".gz"]
        originals = {p.with_suffix("") for p in gz_files} & set(files)
        assert len(originals) >= at_least, sorted(str(p) for p in gz_files)
        for original in originals:
            assert gunzip_bytes((original.parent / (original.name + ".gz")).read_bytes()) == \
                original.read_bytes()
        assert not (root / "backups" / "already.tar.gz.gz").exists()
        assert not (root / "photos" / "holiday.png.gz").exists()
