"""Worker fixtures: settings wired to a live emulator, a work queue, a worker, helpers."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dropbox
import pytest
from dropbox.files import WriteMode

from dropgz.cli.worker import single_account
from dropgz.compression.worker import Worker
from dropgz.core.config import Settings, load_settings
from dropgz.core.message import WorkItem
from dropgz.queues import open_work_queue
from dropgz.queues.base import WorkQueue
from tests.fixtures.peers import gunzip_bytes


def emulator_env(emulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "DROPGZ_DROPBOX_TOKEN": emulator.token,
        "DROPGZ_DROPBOX_SECRET": emulator.app_secret,
        "DROPGZ_DROPBOX_API_BASE_URL": emulator.url,
        "DROPGZ_SERVICE_DATA_DIR": str(tmp_path / "data"),
        "DROPGZ_AWS_VISIBILITY_TIMEOUT": "30",
        "DROPGZ_AWS_MAX_RECEIVE_COUNT": "3",
    }
    if emulator.ca_bundle:
        env["DROPGZ_DROPBOX_CA_BUNDLE"] = emulator.ca_bundle
    env.update(extra)
    return env


@dataclass
class Rig:
    """An emulator, a Dropbox client on it, a work queue and a way to run a worker."""

    emulator: object
    dbx: dropbox.Dropbox
    settings: Settings
    queue: WorkQueue

    def upload(self, path: str, data: bytes) -> dropbox.files.FileMetadata:
        return self.dbx.files_upload(data, path, mode=WriteMode.overwrite)

    def enqueue(self, *items: WorkItem | str) -> None:
        self.queue.send([i.to_json() if isinstance(i, WorkItem) else i for i in items])

    def item(self, md: dropbox.files.FileMetadata) -> WorkItem:
        return WorkItem(path=md.path_display, id=md.id, rev=md.rev, size=md.size,
                        content_hash=md.content_hash)

    def worker(self, **kwargs: object) -> Worker:
        kwargs.setdefault("concurrency", 4)
        kwargs.setdefault("poll_seconds", 0.2)
        return Worker(self.queue, single_account(self.settings),
                      visibility_timeout=self.settings.aws.visibility_timeout, **kwargs)

    def read(self, path: str) -> bytes:
        _, response = self.dbx.files_download(path)
        with response:
            return response.content

    def exists(self, path: str) -> bool:
        try:
            self.dbx.files_get_metadata(path)
        except dropbox.exceptions.ApiError:
            return False
        return True

    def assert_gz_of(self, path: str, original: bytes) -> bytes:
        """``path + '.gz'`` exists and GNU gzip decompresses it to ``original``."""
        gz = self.read(path + ".gz")
        assert gunzip_bytes(gz) == original
        return gz


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    made: list[WorkQueue] = []

    def make(emulator, **extra: str) -> Rig:
        settings = load_settings(env=emulator_env(emulator, tmp_path, **extra))
        queue = open_work_queue(settings)
        made.append(queue)
        return Rig(emulator, emulator.client(), settings, queue)

    yield make
    for queue in made:
        queue.close()


@pytest.fixture
def rig(emulator, make_rig: Callable[..., Rig]) -> Rig:
    return make_rig(emulator)


def text_bytes(size: int, seed: int = 0) -> bytes:
    """Compressible, varied text of ``size`` bytes (log-like lines)."""
    out = io.BytesIO()
    n = seed
    while out.tell() < size:
        out.write(f"2026-11-24T10:{n % 60:02d}:00Z INFO request id={n * 7919 % 100003} "
                  f"path=/api/v2/items/{n % 977} status={200 + n % 5} ms={n % 1000}\n".encode())
        n += 1
    return out.getvalue()[:size]
