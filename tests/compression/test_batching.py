"""Small .gz files are committed in batches per account (finish_batch_v2), two calls of
their own per new file, under the emulator's namespace write contention (on by default).

Preconditions are made with the emulator's holds (a route, or a commit inside its account's
namespace lock, waits until released), never with a sleep racing a latency.
"""

from __future__ import annotations

import gzip
import io
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import dropbox
import pytest
from dropbox.exceptions import ApiError
from dropbox.files import CommitInfo, WriteMode

from dropgz.compression.batch import BatchCommitter
from dropgz.compression.compress import FileCompressor
from dropgz.compression.worker import Worker, WorkReport
from dropgz.core.errors import RateLimited
from dropgz.core.message import WorkItem
from dropgz.core.retries import RetryPolicy
from tests.compression.conftest import Rig, text_bytes
from tests.emulator.threads import Call
from tests.fixtures.emulator import EmulatorProcess, start_emulator
from tests.fixtures.peers import gunzip_bytes, wait_for

FINISH_BATCH = "files/upload_session/finish_batch_v2"
START = "files/upload_session/start"


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """An emulator with two users, write contention on (its default)."""
    with start_emulator(tmp_path_factory.mktemp("batching"), accounts=2) as process:
        yield process


@pytest.fixture
def rig(two: EmulatorProcess, make_rig: Callable[..., Rig]) -> Iterator[Rig]:
    two.release()  # no hold left over by a failed test
    yield make_rig(two)


def calls(emulator: EmulatorProcess) -> dict[str, int]:
    return {route: counts["total"] for route, counts in emulator.stats()["routes"].items()
            if not route.startswith("/_emulator")}


def worker_for_accounts(rig: Rig, emulator: EmulatorProcess, **kwargs: Any) -> Worker:
    """A worker serving both users, each with its own client (and batch committer)."""
    compressors = {account.account_id: FileCompressor(emulator.client(account=number),
                                                      rig.settings.compression)
                   for number, account in enumerate(emulator.accounts, start=1)}
    compressors[None] = compressors[emulator.account_id]  # type: ignore[index]
    kwargs.setdefault("concurrency", 4)
    return Worker(rig.queue, compressors.get, poll_seconds=0.2, visibility_timeout=30, **kwargs)


def put(emulator: EmulatorProcess, account: int, path: str, data: bytes) -> WorkItem:
    md = emulator.client(account=account).files_upload(data, path, mode=WriteMode.overwrite)
    return WorkItem(path=md.path_display, account=emulator.account(account).account_id,
                    id=md.id, rev=md.rev, size=md.size, content_hash=md.content_hash)


def read(emulator: EmulatorProcess, account: int, path: str
         ) -> tuple[dropbox.files.FileMetadata, bytes]:
    md, response = emulator.client(account=account).files_download(path)
    with response:
        return md, response.content


def working(worker: Worker) -> tuple[threading.Thread, dict[str, WorkReport]]:
    """The worker on a thread until its queue is empty and nothing is in flight."""
    reports: dict[str, WorkReport] = {}
    thread = threading.Thread(target=lambda: reports.update(report=worker.work(burst=True)),
                              daemon=True)
    thread.start()
    return thread, reports


def finished(thread: threading.Thread, reports: dict[str, WorkReport]) -> WorkReport:
    thread.join(60)
    assert not thread.is_alive(), "the worker did not finish"
    return reports["report"]


def ours(name: str, data: bytes) -> bytes:
    """A .gz as dropgz writes it: the original's name in the header."""
    out = io.BytesIO()
    with gzip.GzipFile(filename=name, mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(data)
    return out.getvalue()


def test_a_burst_across_two_accounts_commits_in_batches(two: EmulatorProcess, rig: Rig) -> None:
    # Given 8 new small files in each of two accounts, queued
    files = {(account, f"/burst/a{account}-{n}.log"): text_bytes(4_000 + n, seed=n)
             for account in (1, 2) for n in range(8)}
    rig.enqueue(*(put(two, account, path, data) for (account, path), data in files.items()))
    two.reset_stats()
    # When a worker doing 4 at a time takes them while each account's first batch is held
    with two.holding(FINISH_BATCH):
        thread, reports = working(worker_for_accounts(rig, two))
        two.wait_held(FINISH_BATCH, count=2)  # one batch in flight per account, no more
        # (the files waiting for their batch gave their slots back: all were uploaded)
        wait_for(lambda: calls(two).get(START, 0) == len(files), 30,
                 "every file's bytes uploaded while the first batches wait")
        assert two.held() == {FINISH_BATCH: 2}
    report = finished(thread, reports)
    made = calls(two)
    # Then every file has its .gz, judged by GNU gzip, in its own account
    assert report.compressed == len(files), report.outcomes
    for (account, path), data in files.items():
        assert gunzip_bytes(read(two, account, path + ".gz")[1]) == data
    # and the commits went in batches: no files/upload, no get_metadata for a new file,
    # two calls per file of its own (download + upload_session/start) plus its batch share
    assert made.get("files/upload", 0) == 0 and made.get("files/get_metadata", 0) == 0, made
    assert made["files/download"] == made[START] == len(files), made
    assert 2 <= made[FINISH_BATCH] <= 6 < len(files), made
    assert sum(made.values()) <= 2 * len(files) + made[FINISH_BATCH], made
    assert two.stats()["contention"] == {"rejected_calls": 0, "failed_batch_entries": 0}


def test_entries_refused_for_contention_are_retried_alone(two: EmulatorProcess,
                                                          rig: Rig) -> None:
    # Given two files already compressed
    before = {f"/busy/done-{n}.txt": text_bytes(3_000, seed=n) for n in range(2)}
    rig.enqueue(*(put(two, 1, path, data) for path, data in before.items()))
    assert rig.worker().work(burst=True).compressed == 2
    revs = {path: read(two, 1, path + ".gz")[0].rev for path in before}
    # and another writer holding the account's namespace lock (its upload is held inside)
    later = {f"/busy/new-{n}.txt": text_bytes(3_000, seed=10 + n) for n in range(3)}
    rig.enqueue(*(put(two, 1, path, data) for path, data in later.items()))
    two.reset_stats()
    with two.holding("commit:files/upload", two.account_id):
        other = Call(lambda: two.client().files_upload(b"someone else", "/busy/other.txt"))
        two.wait_held("commit:files/upload")
        # When the worker's batch meets the lock
        thread, reports = working(rig.worker())
        wait_for(lambda: two.stats()["contention"]["failed_batch_entries"] >= len(later), 30,
                 "the batch refused with too_many_write_operations")
    # Then, the lock free again, the refused entries are committed in a later batch
    report = finished(thread, reports)
    made = calls(two)
    assert other.join().name == "other.txt"
    assert report.compressed == len(later) and report.retried == 0, report.outcomes
    for path, data in later.items():
        assert gunzip_bytes(read(two, 1, path + ".gz")[1]) == data
    # without giving a file back to the queue, nor redoing its download or upload
    assert made["files/download"] == made[START] == len(later), made
    assert made[FINISH_BATCH] >= 2, made
    assert two.stats()["contention"]["failed_batch_entries"] % len(later) == 0
    # and what was committed before was not written again
    assert {path: read(two, 1, path + ".gz")[0].rev for path in before} == revs


def test_our_older_gz_is_updated(two: EmulatorProcess, rig: Rig) -> None:
    # Given doc.txt compressed once, then changed
    rig.enqueue(put(two, 1, "/exists/doc.txt", b"first\n" * 500))
    rig.worker().work(burst=True)
    rig.enqueue(put(two, 1, "/exists/doc.txt", b"second\n" * 500))
    two.reset_stats()
    # When the new revision is compressed
    report = rig.worker().work(burst=True)
    made = calls(two)
    # Then the add conflicted, our header was read, and the .gz was replaced by update(rev)
    assert report.compressed == 1, report.outcomes
    assert gunzip_bytes(read(two, 1, "/exists/doc.txt.gz")[1]) == b"second\n" * 500
    assert made["files/download"] == 2 and made["files/get_metadata"] == 1, made
    assert made[FINISH_BATCH] == 2 and made[START] == 1, made


def test_same_gz_delivered_again_is_not_written_again(two: EmulatorProcess, rig: Rig) -> None:
    item = put(two, 1, "/exists/twice.txt", text_bytes(20_000))
    rig.enqueue(item)
    rig.worker().work(burst=True)
    first = read(two, 1, "/exists/twice.txt.gz")[0]
    rig.enqueue(item)
    report = rig.worker().work(burst=True)
    # a repeated delivery is not a second compression: the totals count the revision once
    assert (report.compressed, report.skipped) == (0, 1), report.outcomes
    assert "identical /exists/twice.txt.gz is already there" in report.outcomes[0].reason
    again = read(two, 1, "/exists/twice.txt.gz")[0]
    assert (again.rev, again.content_hash) == (first.rev, first.content_hash)


def test_a_retry_finding_its_own_gz_counts_it_compressed(two: EmulatorProcess,
                                                         rig: Rig) -> None:
    # Given the .gz a first attempt committed before its answer was lost (made here by a
    # first run), and the same message delivered a second time
    item = put(two, 1, "/exists/lost.txt", text_bytes(20_000))
    rig.enqueue(item)
    rig.worker().work(burst=True)
    first = read(two, 1, "/exists/lost.txt.gz")[0]
    rig.enqueue(item)
    [message] = rig.queue.receive(max_messages=1, wait_seconds=5)
    rig.queue.release(message)  # the lost attempt: received, never settled
    # When it is retried
    report = rig.worker().work(burst=True)
    # Then nothing is written again, and the file counts as compressed (the attempt that
    # wrote it reported no compression)
    assert (report.compressed, report.skipped) == (1, 0), report.outcomes
    again = read(two, 1, "/exists/lost.txt.gz")[0]
    assert (again.rev, again.content_hash) == (first.rev, first.content_hash)


@pytest.mark.parametrize(("folder", "existing", "reason"), [
    ("users-gzip", gzip.compress(b"the user's own archive", mtime=0), "not made by dropgz"),
    ("other-fname", ours("other-name.txt", b"same folder, other file"), "not made by dropgz"),
    ("not-gzip", b"not even gzip", "not made by dropgz"),
    ("folder", None, "is not a file"),
])
def test_a_gz_not_ours_is_skipped_untouched(two: EmulatorProcess, rig: Rig, folder: str,
                                            existing: bytes | None, reason: str) -> None:
    # Given report.txt.gz already there, not made by dropgz from report.txt (or a folder)
    dbx = two.client()
    target = f"/taken-{folder}/report.txt.gz"
    if existing is None:
        dbx.files_create_folder_v2(target)
    else:
        before = dbx.files_upload(existing, target)
    rig.enqueue(put(two, 1, target[:-3], b"report\n" * 300))
    # When report.txt is compressed
    report = rig.worker().work(burst=True)
    # Then it is skipped with the reason, and what was there is untouched
    assert report.skipped == 1 and reason in report.outcomes[0].reason, report.outcomes
    if existing is not None:
        md, data = read(two, 1, target)
        assert (md.rev, data) == (before.rev, existing)
    else:
        assert isinstance(dbx.files_get_metadata(target), dropbox.files.FolderMetadata)
    assert rig.queue.stats().dead == 0


def test_a_revision_superseded_while_compressing_is_skipped(two: EmulatorProcess,
                                                            rig: Rig) -> None:
    # Given the worker stopped right after downloading revision one (its upload is held)
    rig.enqueue(put(two, 1, "/race/edit.txt", b"revision one\n" * 300))
    with two.holding(START):
        thread, reports = working(rig.worker())
        two.wait_held(START)
        # When the file changes and that revision's .gz is written meanwhile
        put(two, 1, "/race/edit.txt", b"revision two\n" * 300)
        newer = two.client().files_upload(ours("edit.txt", b"revision two\n" * 300),
                                          "/race/edit.txt.gz")
    report = finished(thread, reports)
    # Then revision one's .gz does not replace it: skipped as superseded
    assert report.skipped == 1 and "superseded" in report.outcomes[0].reason, report.outcomes
    assert read(two, 1, "/race/edit.txt.gz")[0].rev == newer.rev


def test_files_waiting_for_their_batch_give_their_slot_back(two: EmulatorProcess,
                                                            rig: Rig) -> None:
    # Given a worker doing one file at a time, and three small files
    paths = [f"/park/p{n}.txt" for n in range(3)]
    rig.enqueue(*(put(two, 1, path, text_bytes(2_000, seed=n)) for n, path in enumerate(paths)))
    two.reset_stats()
    with two.holding(FINISH_BATCH):
        thread, reports = working(rig.worker(concurrency=1))
        # When the first file's batch is held
        two.wait_held(FINISH_BATCH)
        # Then the others are taken meanwhile, up to their own commit
        wait_for(lambda: calls(two).get(START, 0) == len(paths), 30,
                 "the next files uploaded while the first waits for its commit")
    report = finished(thread, reports)
    assert report.compressed == len(paths)
    assert calls(two)[FINISH_BATCH] <= len(paths) - 1


def test_large_files_keep_their_own_upload_session(two: EmulatorProcess, make_rig) -> None:
    rig = make_rig(two, DROPGZ_COMPRESSION_LEVEL="1")
    data = text_bytes(9 * 1024 * 1024)  # over the 8 MiB single-call limit
    rig.enqueue(put(two, 1, "/large/big.log", data))
    two.reset_stats()
    assert rig.worker().work(burst=True).compressed == 1
    made = calls(two)
    assert made.get("files/upload_session/finish") == 1 and FINISH_BATCH not in made, made
    assert gunzip_bytes(read(two, 1, "/large/big.log.gz")[1]) == data


def test_each_entry_of_a_batch_succeeds_or_fails_on_its_own(two: EmulatorProcess) -> None:
    # Given three closed sessions, the second to be committed with a wrong size
    dbx = two.client()
    committer = BatchCommitter(gather_seconds=30)  # leaves when all three wait
    sessions = [dbx.files_upload_session_start(b"entry %d" % n, close=True).session_id
                for n in range(3)]
    sizes = [7, 3, 7]
    with ExitStack() as files:
        for _ in sessions:
            files.enter_context(committer.working())
        # When the three are committed from three threads
        commits = [Call(lambda n=n: committer.commit(
            dbx, sessions[n], sizes[n], CommitInfo(f"/entries/e{n}.txt"))) for n in range(3)]
        for call in commits:
            call.done.wait(20)
    # Then one batch carried them; the refused entry failed alone, with Dropbox's reason
    assert committer.batches == 1
    assert [commits[n].join().name for n in (0, 2)] == ["e0.txt", "e2.txt"]
    with pytest.raises(ApiError) as refused:
        commits[1].join()
    lookup = refused.value.error.get_lookup_failed()
    assert lookup.get_incorrect_offset().correct_offset == 7
    assert RetryPolicy().decide(refused.value, 1).action == "retry"


def test_contention_past_its_tries_hands_the_file_back_with_a_delay(
        two: EmulatorProcess) -> None:
    dbx = two.client()
    committer = BatchCommitter(max_attempts=2)
    session = dbx.files_upload_session_start(b"waiting", close=True).session_id
    with two.holding("commit:files/upload", two.account_id):
        other = Call(lambda: two.client().files_upload(b"lock holder", "/tries/holder.txt"))
        two.wait_held("commit:files/upload")
        # Given the namespace busy for longer than two tries
        with pytest.raises(RateLimited) as busy:
            committer.commit(dbx, session, 7, CommitInfo("/tries/waiting.txt"))
    other.join()
    # Then the file goes back to the retry policy, which waits before the next delivery
    assert committer.batches == 2
    decision = RetryPolicy().decide(busy.value, 1)
    assert decision.action == "retry" and decision.delay > 0
    # and the session is still good for that retry
    assert committer.commit(dbx, session, 7, CommitInfo("/tries/waiting.txt")).size == 7
