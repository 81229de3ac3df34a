"""`dropgz backfill` and `dropgz status` against a live emulator and the embedded queue."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import dropgz.ops.backfill as backfill_module
from dropgz.core.config import load_settings
from dropgz.ops.backfill import Backfill
from dropgz.queues import open_work_queue
from tests.compression.conftest import emulator_env
from tests.fixtures.peers import gunzip_bytes

FILES = {
    "/a.txt": b"alpha\n" * 500,
    "/sub/b.csv": b"x,y\n" * 800,
    "/sub/deeper/c.log": b"log line\n" * 900,
    "/sub/skip.jpg": b"\xff\xd8" + b"j" * 300,
    "/done.gz": b"\x1f\x8b not really",
}
ELIGIBLE = {"/a.txt", "/sub/b.csv", "/sub/deeper/c.log"}


def dropgz(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("DROPGZ_")}
    return subprocess.run([sys.executable, "-m", "dropgz", *args], env={**full, **env},
                          cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def env(emulator, tmp_path: Path) -> dict[str, str]:
    dbx = emulator.client()
    for path, data in FILES.items():
        dbx.files_upload(data, path)
    return emulator_env(emulator, tmp_path, DROPGZ_COMPRESSION_EXCLUDE="*.jpg")


def gz_of(emulator, path: str) -> bytes:
    _, response = emulator.client().files_download(path + ".gz")
    with response:
        return gunzip_bytes(response.content)


def test_backfill_through_the_queue_then_workers(emulator, env, tmp_path: Path) -> None:
    result = dropgz(["backfill"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 work messages sent for 3 files" in result.stderr
    queue = open_work_queue(load_settings(env=env))
    assert queue.stats().visible == 3
    queue.close()
    worker = dropgz(["worker", "--burst"], env, tmp_path)
    assert worker.returncode == 0, worker.stderr
    for path in ELIGIBLE:
        assert gz_of(emulator, path) == FILES[path]
    status = dropgz(["status"], env, tmp_path)
    assert status.returncode == 0, status.stderr
    assert "│     3 │" in status.stdout  # three files compressed by this host's workers
    # a second backfill plans anew (the first finished) and sends the same three again
    again = dropgz(["backfill"], env, tmp_path)
    assert "3 work messages sent" in again.stderr


def test_backfill_direct_under_a_folder(emulator, env, tmp_path: Path) -> None:
    result = dropgz(["backfill", "/sub", "--direct"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "2 compressed, 0 skipped" in result.stderr
    assert gz_of(emulator, "/sub/b.csv") == FILES["/sub/b.csv"]
    names = {e.path_lower for e in emulator.client().files_list_folder("", recursive=True)
             .entries}
    assert "/a.txt.gz" not in names and "/sub/skip.jpg.gz" not in names


def test_interrupted_backfill_resumes_without_listing_again(emulator, env, tmp_path: Path,
                                                            monkeypatch) -> None:
    settings = load_settings(env=env)
    dbx = emulator.client()
    queue = open_work_queue(settings)
    monkeypatch.setattr(backfill_module, "SEND_CHUNK", 2)
    first = Backfill(settings.service.data_path, emulator.account_id, "/")
    items = first.plan(dbx, settings.compression)

    def interrupt(files: int, size: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        first.enqueue(items, queue, interrupt)
    assert first.done() == 2
    emulator.reset_stats()
    second = Backfill(settings.service.data_path, emulator.account_id, "/")
    again = second.plan(dbx, settings.compression)
    assert again == items
    assert "files/list_folder" not in emulator.stats()["routes"]
    assert second.enqueue(again, queue, lambda files, size: None) == 1
    assert queue.stats().visible == 3  # 2 + 1: nothing sent twice, nothing missed
    second.finish()
    assert not second.plan_path.exists()
    queue.close()


def test_backfill_rejects_a_relative_path(env, tmp_path: Path) -> None:
    result = dropgz(["backfill", "sub"], env, tmp_path)
    assert result.returncode == 2
    assert "must start with '/'" in result.stderr
