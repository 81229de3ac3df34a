"""Upload sessions (the SDK's Uploader included), ranged and streamed downloads."""

from __future__ import annotations

import os
from pathlib import Path

import dropbox
import pytest
from dropbox import file_transfer, files
from dropbox.content_hash import content_hash
from dropbox.exceptions import ApiError, HttpError

from tests.fixtures.emulator import EmulatorProcess

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def payload() -> bytes:
    """20 MiB + a bit: three 8 MiB chunks, the last one partial."""
    return os.urandom(20 * MiB + 12345)


def test_uploader_streams_tens_of_mib(dbx: dropbox.Dropbox, folder: str, payload: bytes,
                                      server: EmulatorProcess, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(payload)
    server.reset_stats()
    result = file_transfer.Uploader(dbx).upload(file_transfer.FileUpload(str(source)),
                                                files.CommitInfo(f"{folder}/big.bin"))
    assert result.metadata.size == len(payload)
    assert result.metadata.content_hash == content_hash(payload)
    routes = server.stats()["routes"]
    assert routes["files/upload_session/start"]["statuses"] == {"200": 1}
    assert routes["files/upload_session/append_v2"]["statuses"] == {"200": 2}
    assert routes["files/upload_session/finish"]["statuses"] == {"200": 1}
    assert (server.root / folder[1:] / "big.bin").read_bytes() == payload


def test_parallel_uploader_uses_a_concurrent_session(dbx: dropbox.Dropbox, folder: str,
                                                     payload: bytes) -> None:
    result = file_transfer.Uploader(dbx).upload(
        file_transfer.BytesUpload(payload), files.CommitInfo(f"{folder}/parallel.bin"),
        file_transfer.UploadOptions(parallel_uploads=3))
    assert result.metadata.content_hash == content_hash(payload)
    _, response = dbx.files_download(f"{folder}/parallel.bin")
    with response:
        assert response.content == payload


def test_session_offsets_and_chunk_hashes_are_checked(dbx: dropbox.Dropbox,
                                                      folder: str) -> None:
    start = dbx.files_upload_session_start(b"abc")
    cursor = files.UploadSessionCursor(start.session_id, 3)

    with pytest.raises(ApiError) as wrong_offset:
        dbx.files_upload_session_append_v2(b"def", files.UploadSessionCursor(start.session_id, 1))
    assert wrong_offset.value.error.get_incorrect_offset().correct_offset == 3

    with pytest.raises(ApiError) as bad_hash:
        dbx.files_upload_session_append_v2(b"def", cursor, content_hash=content_hash(b"xyz"))
    assert bad_hash.value.error.is_content_hash_mismatch()

    dbx.files_upload_session_append_v2(b"def", cursor, content_hash=content_hash(b"def"))
    with pytest.raises(ApiError) as finish_offset:
        dbx.files_upload_session_finish(b"", cursor, files.CommitInfo(f"{folder}/s.txt"))
    lookup = finish_offset.value.error.get_lookup_failed()
    assert lookup.get_incorrect_offset().correct_offset == 6

    done = dbx.files_upload_session_finish(b"gh", files.UploadSessionCursor(start.session_id, 6),
                                           files.CommitInfo(f"{folder}/s.txt"))
    assert done.size == 8 and done.content_hash == content_hash(b"abcdefgh")
    with pytest.raises(ApiError) as finished:  # the session is gone once committed
        dbx.files_upload_session_append_v2(b"x", files.UploadSessionCursor(start.session_id, 8))
    assert finished.value.error.is_not_found()


def test_closed_session_refuses_appends(dbx: dropbox.Dropbox, folder: str) -> None:
    start = dbx.files_upload_session_start(b"all", close=True)
    with pytest.raises(ApiError) as caught:
        dbx.files_upload_session_append_v2(b"more",
                                           files.UploadSessionCursor(start.session_id, 3))
    assert caught.value.error.is_closed()
    done = dbx.files_upload_session_finish(b"", files.UploadSessionCursor(start.session_id, 3),
                                           files.CommitInfo(f"{folder}/closed.txt"))
    assert done.size == 3


def test_finish_conflict_keeps_the_session_for_a_retry(dbx: dropbox.Dropbox,
                                                       folder: str) -> None:
    dbx.files_upload(b"existing", f"{folder}/taken.txt")
    start = dbx.files_upload_session_start(b"new content")
    cursor = files.UploadSessionCursor(start.session_id, 11)
    with pytest.raises(ApiError) as caught:
        dbx.files_upload_session_finish(b"", cursor, files.CommitInfo(f"{folder}/taken.txt"))
    assert caught.value.error.get_path().get_conflict().is_file()
    done = dbx.files_upload_session_finish(
        b"", cursor, files.CommitInfo(f"{folder}/taken.txt", mode=files.WriteMode.overwrite))
    assert dbx.files_download(done.path_lower)[1].content == b"new content"


def test_concurrent_session_rules(dbx: dropbox.Dropbox, folder: str) -> None:
    concurrent = files.UploadSessionType.concurrent
    with pytest.raises(ApiError) as with_data:
        dbx.files_upload_session_start(b"data", session_type=concurrent)
    assert with_data.value.error.is_concurrent_session_data_not_allowed()
    start = dbx.files_upload_session_start(b"", session_type=concurrent)
    block = os.urandom(4 * MiB)
    with pytest.raises(ApiError) as misaligned:
        dbx.files_upload_session_append_v2(b"x", files.UploadSessionCursor(start.session_id, 1))
    assert misaligned.value.error.is_concurrent_session_invalid_offset()
    # Second half first, then the first: order does not matter in a concurrent session.
    dbx.files_upload_session_append_v2(b"tail", files.UploadSessionCursor(start.session_id,
                                                                          4 * MiB), close=True)
    with pytest.raises(ApiError) as missing:
        dbx.files_upload_session_finish(b"", files.UploadSessionCursor(start.session_id,
                                                                       4 * MiB + 4),
                                        files.CommitInfo(f"{folder}/c.bin"))
    assert missing.value.error.is_concurrent_session_missing_data()
    dbx.files_upload_session_append_v2(block, files.UploadSessionCursor(start.session_id, 0))
    done = dbx.files_upload_session_finish(b"", files.UploadSessionCursor(start.session_id,
                                                                          4 * MiB + 4),
                                           files.CommitInfo(f"{folder}/c.bin"))
    assert done.content_hash == content_hash(block + b"tail")


def test_range_downloads(dbx: dropbox.Dropbox, folder: str, server: EmulatorProcess) -> None:
    data = bytes(range(256)) * 40
    dbx.files_upload(data, f"{folder}/r.bin")
    for header, expected in (("bytes=10-19", data[10:20]), ("bytes=10000-", data[10000:]),
                             ("bytes=-5", data[-5:]), ("bytes=0-999999", data)):
        metadata, response = dbx.files_download(f"{folder}/r.bin",
                                                extra_headers={"Range": header})
        with response:
            assert response.status_code == 206, header
            assert response.content == expected, header
            assert response.headers["Content-Range"].endswith(f"/{len(data)}")
        assert metadata.size == len(data)
    with pytest.raises(HttpError) as caught:
        dbx.files_download(f"{folder}/r.bin", extra_headers={"Range": f"bytes={len(data)}-"})
    assert caught.value.status_code == 416


def test_parallel_downloader_reassembles_ranges(dbx: dropbox.Dropbox, folder: str,
                                                payload: bytes, tmp_path: Path) -> None:
    dbx.files_upload(payload[:3 * MiB], f"{folder}/dl.bin")
    target = tmp_path / "dl.bin"
    file_transfer.Downloader(dbx).download(f"{folder}/dl.bin", file_transfer.File(str(target)),
                                           file_transfer.DownloadOptions(parallel_downloads=4))
    assert target.read_bytes() == payload[:3 * MiB]


def test_download_streams_in_chunks(dbx: dropbox.Dropbox, folder: str, payload: bytes) -> None:
    dbx.files_upload(payload[:5 * MiB], f"{folder}/stream.bin")
    _, response = dbx.files_download(f"{folder}/stream.bin")
    with response:
        pieces = list(response.iter_content(64 * 1024))
    assert len(pieces) > 1
    assert b"".join(pieces) == payload[:5 * MiB]
