"""Backfill: compress files that were already there before dropgz started watching.

Two phases, so the progress bar has a total and an ETA, and a stopped backfill resumes:

1. *Plan*: list ``PATH`` recursively (2,000 entries a call), keep the eligible files (the
   same rules as the delta tier: :func:`dropgz.web.delta.work_items`) as JSON lines in
   ``data_dir/backfill/<hash of PATH>.jsonl``. A plan already on disk is reused.
2. *Run*: hand the planned items to the work queue (``send``, 10 a call), or compress
   them here directly. ``<plan>.done`` records how many leading items are finished, so a
   restart skips them. A finished backfill removes both files.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dropbox

from dropgz.compression.compress import FileCompressor, Outcome
from dropgz.core.config import CompressionSettings
from dropgz.core.message import WorkItem, parse
from dropgz.core.retries import describe
from dropgz.queues.base import WorkQueue
from dropgz.web.delta import MAX_PAGE_LIMIT, work_items

log = logging.getLogger(__name__)

SEND_CHUNK = 100  # items handed to the queue between progress updates and checkpoints
Progress = Callable[[int, int], None]  # (items done now, their bytes)


class Backfill:
    """The plan and checkpoint of one backfill of ``path`` for ``account``."""

    def __init__(self, data_path: Path, account: str, path: str) -> None:
        self.account = account
        self.path = "" if path in ("", "/") else "/" + path.strip("/")
        key = hashlib.sha256(f"{account}\n{self.path.lower()}".encode()).hexdigest()[:16]
        folder = data_path / "backfill"
        folder.mkdir(parents=True, exist_ok=True)
        self.plan_path = folder / f"{key}.jsonl"
        self.done_path = folder / f"{key}.done"

    # ------------------------------------------------------------ plan

    def plan(self, dbx: dropbox.Dropbox, rules: CompressionSettings,
             on_page: Callable[[int], None] | None = None) -> list[WorkItem]:
        """The eligible files under the path (read from disk when a plan exists)."""
        if self.plan_path.exists():
            with self.plan_path.open(encoding="utf-8") as fh:
                return [parse(line) for line in fh if line.strip()]
        items: list[WorkItem] = []
        partial = self.plan_path.with_suffix(".partial")
        with partial.open("w", encoding="utf-8") as fh:
            for entries in self._pages(dbx):
                page_items, _, _ = work_items(self.account, entries, rules)
                for item in page_items:
                    fh.write(item.to_json() + "\n")
                items.extend(page_items)
                if on_page:
                    on_page(len(items))
        partial.replace(self.plan_path)  # a plan is used only once it is complete
        return items

    def _pages(self, dbx: dropbox.Dropbox) -> Iterator[list[object]]:
        page = dbx.files_list_folder(self.path, recursive=True, limit=MAX_PAGE_LIMIT)
        yield page.entries
        while page.has_more:
            page = dbx.files_list_folder_continue(page.cursor)
            yield page.entries

    # ------------------------------------------------------------ checkpoint

    def done(self) -> int:
        try:
            return int(self.done_path.read_text().strip() or 0)
        except FileNotFoundError:
            return 0

    def _checkpoint(self, count: int) -> None:
        tmp = self.done_path.with_suffix(".tmp")
        tmp.write_text(str(count))
        tmp.replace(self.done_path)

    def finish(self) -> None:
        self.plan_path.unlink(missing_ok=True)
        self.done_path.unlink(missing_ok=True)

    # ------------------------------------------------------------ run

    def enqueue(self, items: list[WorkItem], queue: WorkQueue, progress: Progress) -> int:
        """Send the items not yet sent; returns how many were sent now."""
        start = self.done()
        for first in range(start, len(items), SEND_CHUNK):
            chunk = items[first:first + SEND_CHUNK]
            queue.send([item.to_json() for item in chunk])
            self._checkpoint(first + len(chunk))
            progress(len(chunk), sum(item.size or 0 for item in chunk))
        return len(items) - start

    def compress(self, items: list[WorkItem], compressor: FileCompressor, concurrency: int,
                 progress: Progress) -> tuple[list[Outcome], list[tuple[WorkItem, str]]]:
        """Compress the items not yet done, ``concurrency`` at a time, here.

        The checkpoint only moves past a contiguous run of finished items, so a restart
        redoes at most ``concurrency`` files (harmless: compression is idempotent), and
        never moves past a file that failed: running the backfill again retries it.
        """
        start = self.done()
        outcomes: list[Outcome] = []
        failures: list[tuple[WorkItem, str]] = []
        finished: set[int] = set()
        mark = start

        def one(index: int) -> None:
            item = items[index]
            try:
                outcomes.append(compressor.run(item))
                finished.add(index)
            except Exception as exc:  # reported at the end; the backfill goes on
                failures.append((item, describe(exc)))
                log.warning("backfill could not compress %s: %s", item.path, describe(exc))
            progress(1, item.size or 0)

        with ThreadPoolExecutor(concurrency, thread_name_prefix="dropgz-backfill") as pool:
            for future in [pool.submit(one, i) for i in range(start, len(items))]:
                future.result()
                before = mark
                while mark in finished:
                    mark += 1
                if mark != before:
                    self._checkpoint(mark)
        return outcomes, failures
