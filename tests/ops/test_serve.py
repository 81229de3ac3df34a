"""`dropgz serve` end to end: every part a real process over loopback.

The emulator sends signed webhooks to serve's web tier; the local push queue runs the
delta tier; work messages go to SQS (moto_server) or the embedded SQLite queue; the
workers write the .gz files. Every .gz is checked with GNU gzip.
"""

from __future__ import annotations

import gzip
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dropbox
import pytest
from dropbox.files import FileMetadata

from dropgz.ops.processes import wait_http
from tests.fixtures.emulator import start_emulator
from tests.fixtures.moto import moto_env
from tests.fixtures.peers import free_port, gunzip_bytes

N_FILES = 100


def _listing(dbx: dropbox.Dropbox) -> dict[str, FileMetadata]:
    found: dict[str, FileMetadata] = {}
    page = dbx.files_list_folder("", recursive=True)
    while True:
        found.update({e.path_lower: e for e in page.entries if isinstance(e, FileMetadata)})
        if not page.has_more:
            return found
        page = dbx.files_list_folder_continue(page.cursor)


def _sample(n: int) -> tuple[str, bytes]:
    folder = ["", "/docs", "/logs/2026", "/Mixed Case/Sub Dir", "/ünïcode"][n % 5]
    body = (f"line {n} " * (50 + n * 7) + "\n").encode() * (1 + n % 9)
    return f"{folder}/file {n:03d}.txt", body


@pytest.mark.parametrize("queue", ["sqlite", "sqs"])
def test_serve_compresses_every_new_file(queue: str, tmp_path: Path, request) -> None:
    port = free_port()
    with start_emulator(tmp_path / "emulator",
                        webhook_url=f"http://127.0.0.1:{port}/webhook") as emulator:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DROPGZ_")}
        env.update({"DROPGZ_DROPBOX_TOKEN": emulator.token,
                    "DROPGZ_DROPBOX_SECRET": emulator.app_secret,
                    "DROPGZ_DROPBOX_API_BASE_URL": emulator.url,
                    "DROPGZ_DROPBOX_ACCOUNT_ID": emulator.account_id,
                    "DROPGZ_COMPRESSION_EXCLUDE": "*.skip",
                    "DROPGZ_SERVICE_DATA_DIR": str(tmp_path / "data")})
        if queue == "sqs":
            moto = request.getfixturevalue("moto_server")
            env.update(moto_env(moto, tmp_path))
            subprocess.run([sys.executable, "-m", "dropgz", "setup-aws"], env=env, check=True,
                           capture_output=True, timeout=60)
        dbx = emulator.client()
        dbx.files_upload(b"existing before the service started\n" * 50, "/old.txt")
        log_path = tmp_path / "serve.log"
        with log_path.open("wb") as log:
            serve = subprocess.Popen(
                [sys.executable, "-m", "dropgz", "serve", "--port", str(port), "--workers", "2"],
                env=env, stdout=log, stderr=log, cwd=tmp_path)
        try:
            wait_http(f"http://127.0.0.1:{port}/webhook?challenge=hi", serve, log_path)
            # When 100 files, a user's .gz and an excluded file arrive through the SDK
            files = dict(_sample(n) for n in range(N_FILES))
            for path, data in files.items():
                dbx.files_upload(data, path)
            users_gz = gzip.compress(b"user archive", mtime=0)
            dbx.files_upload(users_gz, "/archive.tgz.gz")
            dbx.files_upload(b"please do not", "/notes.skip")
            # Then every file gets its .gz, checked by GNU gzip
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                listing = _listing(dbx)
                if all(p.lower() + ".gz" in listing for p in files):
                    break
                assert serve.poll() is None, log_path.read_text()[-5000:]
                time.sleep(0.5)
            listing = _listing(dbx)
            missing = [p for p in files if p.lower() + ".gz" not in listing]
            assert not missing, f"{len(missing)} without .gz: {missing[:5]}\n" + \
                log_path.read_text()[-5000:]
            for path, data in files.items():
                _, response = dbx.files_download(path + ".gz")
                with response:
                    assert gunzip_bytes(response.content) == data, path
            # and nothing else changed: no .gz of the old file, the user's .gz or the excluded one
            expected = {p.lower() for p in files} | {p.lower() + ".gz" for p in files}
            expected |= {"/old.txt", "/archive.tgz.gz", "/notes.skip"}
            assert set(listing) == expected
            _, response = dbx.files_download("/archive.tgz.gz")
            assert response.content == users_gz
            # and serve's two workers reported every file: `dropgz status` shows the total
            def status() -> str:
                return subprocess.run([sys.executable, "-m", "dropgz", "status"], env=env,
                                      cwd=tmp_path, capture_output=True, text=True,
                                      timeout=60, check=True).stdout
            counted = re.compile(rf"compressed by every worker.*\n(.*\n)*.*│\s+{N_FILES} │")
            deadline = time.monotonic() + 30
            while not counted.search(status()) and time.monotonic() < deadline:
                time.sleep(0.5)
            shown = status()
            assert counted.search(shown) and "2 live" in shown, shown
        finally:
            serve.send_signal(signal.SIGTERM)
            code = serve.wait(timeout=60)
        assert code == 0, log_path.read_text()[-5000:]
        log = log_path.read_text()
        for secret in (emulator.token, emulator.app_secret):
            assert secret not in log
        # The workers held no credential: their tokens came from serve's own web tier.
        assert log.count(f"tokens=from http://127.0.0.1:{port}") == 2, log[-3000:]
        assert (tmp_path / "data" / "internal_key").stat().st_mode & 0o777 == 0o600

