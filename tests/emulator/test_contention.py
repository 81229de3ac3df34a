"""Namespace write contention: overlapping commits in one account get 429
too_many_write_operations, as on Dropbox; a sequential client never does."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import dropbox
import pytest
import requests
from dropbox import files
from dropbox.exceptions import RateLimitError

from tests.emulator.threads import Call
from tests.fixtures.emulator import EmulatorProcess, start_emulator
from tests.fixtures.peers import wait_for

HELD = "commit:files/upload"


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with start_emulator(tmp_path_factory.mktemp("contention"), accounts=2,
                        retry_after=3) as process:
        yield process


def no_retry(emulator: EmulatorProcess, account: int = 1) -> dropbox.Dropbox:
    return emulator.client(account=account, max_retries_on_rate_limit=0,
                           max_retries_on_error=0)


def test_a_commit_meeting_another_gets_429(two: EmulatorProcess) -> None:
    dbx = no_retry(two)
    dbx.files_upload(b"to move", "/c/move-me.txt")
    waiting = dbx.files_upload_session_start(b"session data", close=True).session_id
    two.reset_stats()
    with two.holding(HELD, two.account_id):
        # Given an upload holding account 1's namespace lock
        first = Call(lambda: dbx.files_upload(b"first", "/c/first.txt"))
        two.wait_held(HELD)
        # Then every other commit into that namespace is refused with the 429
        commits = {
            "files/upload": lambda: dbx.files_upload(b"second", "/c/second.txt"),
            "files/create_folder_v2": lambda: dbx.files_create_folder_v2("/c/folder"),
            "files/delete_v2": lambda: dbx.files_delete_v2("/c/move-me.txt"),
            "files/move_v2": lambda: dbx.files_move_v2("/c/move-me.txt", "/c/moved.txt"),
            "files/copy_v2": lambda: dbx.files_copy_v2("/c/move-me.txt", "/c/copy.txt"),
            "files/upload_session/finish": lambda: dbx.files_upload_session_finish(
                b"", files.UploadSessionCursor(waiting, 12), files.CommitInfo("/c/s.txt")),
        }
        for route, commit in commits.items():
            with pytest.raises(RateLimitError) as caught:
                commit()
            assert caught.value.error.reason.is_too_many_write_operations(), route
            assert caught.value.backoff == 3
        # A batch reports it for each of its entries
        batch = dbx.files_upload_session_finish_batch_v2([files.UploadSessionFinishArg(
            files.UploadSessionCursor(waiting, 12), files.CommitInfo("/c/batch.txt"))])
        assert batch.entries[0].get_failure().is_too_many_write_operations()
        # While reads, data uploads and the other account's commits go through
        assert dbx.files_get_metadata("/c/move-me.txt").name == "move-me.txt"
        assert dbx.files_upload_session_start(b"more data", close=True).session_id
        assert no_retry(two, account=2).files_upload(b"other", "/c/other.txt").size == 5
        assert not first.done.is_set()
    # When the first commit is released it completes; nothing refused was written
    assert first.join().name == "first.txt"
    assert not (two.root / "c" / "second.txt").exists()
    stats = two.stats()
    assert stats["routes"]["files/upload"]["statuses"] == {"429": 1, "200": 2}
    assert stats["contention"] == {"rejected_calls": 6, "failed_batch_entries": 1}


def test_the_429_is_what_dropbox_sends(two: EmulatorProcess) -> None:
    with two.holding(HELD):
        first = Call(lambda: no_retry(two).files_upload(b"first", "/c/raw-first.txt"))
        two.wait_held(HELD)
        answer = requests.post(f"{two.url}/2/files/create_folder_v2", json={"path": "/c/raw"},
                               headers={"Authorization": f"Bearer {two.token}"}, timeout=10)
    first.join()
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "3"
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {"error_summary": "too_many_write_operations/..",
                             "error": {"reason": {".tag": "too_many_write_operations"},
                                       "retry_after": 3}}


def test_a_sequential_client_never_meets_it(two: EmulatorProcess) -> None:
    dbx = no_retry(two)
    two.reset_stats()
    for index in range(20):
        dbx.files_upload(b"%d" % index, f"/seq/{index}.txt")
        dbx.files_copy_v2(f"/seq/{index}.txt", f"/seq/{index}.copy")
        dbx.files_delete_v2(f"/seq/{index}.txt")
    sessions = [dbx.files_upload_session_start(b"x", close=True).session_id for _ in range(5)]
    dbx.files_upload_session_finish_batch_v2([files.UploadSessionFinishArg(
        files.UploadSessionCursor(s, 1), files.CommitInfo(f"/seq/b{n}")) for n, s in
        enumerate(sessions)])
    stats = two.stats()
    assert stats["statuses"].get("429", 0) == 0
    assert stats["contention"] == {"rejected_calls": 0, "failed_batch_entries": 0}


def test_the_sdk_waits_out_retry_after_and_succeeds(two: EmulatorProcess) -> None:
    two.configure(retry_after=0)
    two.reset_stats()
    try:
        with two.holding(HELD):
            first = Call(lambda: no_retry(two).files_upload(b"1", "/c/retry-first.txt"))
            two.wait_held(HELD)
            retrying = Call(lambda: two.client(max_retries_on_rate_limit=None).files_upload(
                b"2", "/c/retry-second.txt"))
            wait_for(lambda: two.route_statuses("files/upload").get("429", 0) >= 1,
                     what="the retrying upload to meet the lock")
        first.join()
        assert retrying.join().name == "retry-second.txt"
    finally:
        two.configure(retry_after=3)


def test_without_contention_commits_wait_for_each_other(tmp_path: Path) -> None:
    with start_emulator(tmp_path, no_write_contention=True) as emulator:
        dbx = no_retry(emulator)
        with emulator.holding(HELD):
            first = Call(lambda: dbx.files_upload(b"first", "/first.txt"))
            emulator.wait_held(HELD)
            second = Call(lambda: dbx.files_create_folder_v2("/folder"))
        assert first.join().name == "first.txt"
        assert second.join().metadata.name == "folder"
        assert emulator.stats()["statuses"].get("429", 0) == 0
        assert emulator.configure(write_contention=True)["write_contention"] is True


def test_many_threads_get_through_with_retries(two: EmulatorProcess) -> None:
    # Sixteen writers at once, each retrying on Retry-After (0 here) for as long as it takes:
    # all land (how many met the lock depends on scheduling, so only the outcome is asserted;
    # a writer starved for a minute fails the join below).
    two.configure(retry_after=0)
    try:
        errors: list[BaseException] = []

        def write(index: int) -> None:
            try:
                two.client(max_retries_on_rate_limit=None).files_upload(
                    b"%d" % index, f"/many/{index}.txt")
            except BaseException as exc:
                errors.append(exc)
        threads = [threading.Thread(target=write, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        names = {e.name for e in no_retry(two).files_list_folder("/many").entries}
        assert names == {f"{n}.txt" for n in range(16)}
    finally:
        two.configure(retry_after=3)
