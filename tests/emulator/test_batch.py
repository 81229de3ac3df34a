"""upload_session/start_batch and finish_batch_v2, as the SDK sees them."""

from __future__ import annotations

import json

import dropbox
import pytest
import requests
from dropbox import files
from dropbox.content_hash import DropboxContentHasher

from tests.fixtures.emulator import EmulatorProcess

FINISH_BATCH = "files/upload_session/finish_batch_v2"


def content_hash(data: bytes) -> str:
    hasher = DropboxContentHasher()
    hasher.update(data)
    return hasher.hexdigest()


def closed_session(dbx: dropbox.Dropbox, data: bytes) -> str:
    return dbx.files_upload_session_start(data, close=True).session_id


def finish_arg(session_id: str, offset: int, path: str, **commit: object
               ) -> files.UploadSessionFinishArg:
    return files.UploadSessionFinishArg(files.UploadSessionCursor(session_id, offset),
                                        files.CommitInfo(path, **commit))


def test_many_small_files_in_one_commit(dbx: dropbox.Dropbox, server: EmulatorProcess,
                                        folder: str) -> None:
    # Given ten files uploaded each in its own closed session
    blobs = {f"{folder}/f{index}.txt": b"file %d " % index * (index + 1) for index in range(10)}
    sessions = {path: closed_session(dbx, data) for path, data in blobs.items()}
    server.reset_stats()
    # When one finish_batch_v2 commits them all
    result = dbx.files_upload_session_finish_batch_v2(
        [finish_arg(sessions[path], len(data), path) for path, data in blobs.items()])
    # Then each entry succeeded, in order, with the file's metadata
    assert [entry.is_success() for entry in result.entries] == [True] * 10
    for (path, data), entry in zip(blobs.items(), result.entries, strict=True):
        metadata = entry.get_success()
        assert metadata.path_display == path and metadata.size == len(data)
        assert metadata.content_hash == content_hash(data)
        assert dbx.files_download(path)[1].content == data
    assert server.route_statuses(FINISH_BATCH) == {"200": 1}
    # And the sessions are used up
    again = dbx.files_upload_session_finish_batch_v2(
        [finish_arg(sessions[f"{folder}/f0.txt"], len(blobs[f"{folder}/f0.txt"]),
                    f"{folder}/again.txt")])
    failure = again.entries[0].get_failure()
    assert failure.is_lookup_failed() and failure.get_lookup_failed().is_not_found()


def test_each_entry_fails_or_succeeds_on_its_own(dbx: dropbox.Dropbox, folder: str) -> None:
    dbx.files_upload(b"already here", f"{folder}/taken.txt")
    good = closed_session(dbx, b"good")
    open_session = dbx.files_upload_session_start(b"not closed").session_id
    offset_session = closed_session(dbx, b"twelve bytes")
    conflict_session = closed_session(dbx, b"other content")
    hash_session = closed_session(dbx, b"hashed")
    result = dbx.files_upload_session_finish_batch_v2([
        finish_arg(good, 4, f"{folder}/good.txt"),
        finish_arg(open_session, 10, f"{folder}/open.txt"),
        finish_arg(offset_session, 5, f"{folder}/offset.txt"),
        finish_arg("0" * 32, 0, f"{folder}/unknown.txt"),
        finish_arg(conflict_session, 13, f"{folder}/taken.txt", autorename=False),
        files.UploadSessionFinishArg(files.UploadSessionCursor(hash_session, 6),
                                     files.CommitInfo(f"{folder}/hash.txt"),
                                     content_hash=content_hash(b"not it")),
    ])
    entries = result.entries
    assert entries[0].is_success() and entries[0].get_success().name == "good.txt"
    assert entries[1].get_failure().get_lookup_failed().is_not_closed()
    offset = entries[2].get_failure().get_lookup_failed()
    assert offset.is_incorrect_offset() and offset.get_incorrect_offset().correct_offset == 12
    assert entries[3].get_failure().get_lookup_failed().is_not_found()
    path_error = entries[4].get_failure().get_path()
    assert path_error.is_conflict() and path_error.get_conflict().is_file()
    assert entries[5].get_failure().is_content_hash_mismatch()
    # The failed sessions are still there to retry (the not-closed one once closed)
    dbx.files_upload_session_append_v2(b"", files.UploadSessionCursor(open_session, 10),
                                       close=True)
    retried = dbx.files_upload_session_finish_batch_v2([
        finish_arg(open_session, 10, f"{folder}/open.txt"),
        finish_arg(offset_session, 12, f"{folder}/offset.txt"),
        finish_arg(hash_session, 6, f"{folder}/hash.txt")])
    assert all(entry.is_success() for entry in retried.entries)
    assert dbx.files_download(f"{folder}/offset.txt")[1].content == b"twelve bytes"


def test_start_batch_then_closing_appends(dbx: dropbox.Dropbox, folder: str) -> None:
    ids = dbx.files_upload_session_start_batch(3).session_ids
    assert len(set(ids)) == 3
    for index, session_id in enumerate(ids):
        dbx.files_upload_session_append_v2(b"batch %d" % index,
                                           files.UploadSessionCursor(session_id, 0), close=True)
    result = dbx.files_upload_session_finish_batch_v2(
        [finish_arg(session_id, 7, f"{folder}/s{index}.txt")
         for index, session_id in enumerate(ids)])
    assert [entry.get_success().size for entry in result.entries] == [7, 7, 7]
    assert dbx.files_download(f"{folder}/s2.txt")[1].content == b"batch 2"


def test_start_batch_of_concurrent_sessions(dbx: dropbox.Dropbox, folder: str) -> None:
    (session_id,) = dbx.files_upload_session_start_batch(
        1, session_type=files.UploadSessionType.concurrent).session_ids
    dbx.files_upload_session_append_v2(b"last and only piece",
                                       files.UploadSessionCursor(session_id, 0), close=True)
    result = dbx.files_upload_session_finish_batch_v2(
        [finish_arg(session_id, 19, f"{folder}/concurrent.txt")])
    assert result.entries[0].get_success().content_hash == content_hash(b"last and only piece")


def _raw(server: EmulatorProcess, route: str, body: dict) -> requests.Response:
    return requests.post(f"{server.url}/2/{route}", data=json.dumps(body), timeout=30,
                         verify=server.ca_bundle or True,
                         headers={"Authorization": f"Bearer {server.token}",
                                  "Content-Type": "application/json"})


@pytest.mark.parametrize(("route", "body"), [
    (FINISH_BATCH, {"entries": [{"cursor": {"session_id": "x", "offset": 0},
                                 "commit": {"path": f"/f{n}"}} for n in range(1001)]}),
    ("files/upload_session/start_batch", {"num_sessions": 1001}),
    ("files/upload_session/start_batch", {"num_sessions": 0}),
])
def test_batch_limits_are_400(http_server: EmulatorProcess, route: str, body: dict) -> None:
    answer = _raw(http_server, route, body)
    assert answer.status_code == 400, answer.text
    assert "Error in call to API function" in answer.text


def test_a_thousand_entries_are_accepted(http_server: EmulatorProcess) -> None:
    entries = [{"cursor": {"session_id": f"missing{n}", "offset": 0},
                "commit": {"path": f"/thousand/f{n}"}} for n in range(1000)]
    answer = _raw(http_server, FINISH_BATCH, {"entries": entries})
    assert answer.status_code == 200
    decoded = answer.json()["entries"]
    assert len(decoded) == 1000
    assert decoded[0] == {".tag": "failure", "failure": {
        ".tag": "lookup_failed", "lookup_failed": {".tag": "not_found"}}}
