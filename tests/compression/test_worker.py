"""The compression tier against a live emulator and a real work queue.

Every .gz is judged by GNU gzip (``gzip -dc`` must give back the original's bytes).
"""

from __future__ import annotations

import gzip
import os

import pytest

from dropgz.compression.compress import SINGLE_UPLOAD_MAX_SOURCE
from dropgz.core.message import WorkItem
from tests.compression.conftest import Rig, text_bytes
from tests.fixtures.peers import gunzip_bytes, gzip_header_name


def test_compresses_files_beside_the_original(rig: Rig) -> None:
    # Given files with varied names, sizes and folders
    files = {
        "/notes.txt": text_bytes(50_000),
        "/Reports 2026/Q3 Summary.CSV": b"a,b,c\n" * 5000,
        "/deep/er/still/deeper/log.json": b'{"k": "v"}\n' * 3000,
        "/unicode/résumé – ünïcødé 東京.md": "héllo wörld ✓\n".encode() * 2000,
        "/#hash %percent, comma.txt": b"odd name\n" * 100,
    }
    items = [rig.item(rig.upload(p, d)) for p, d in files.items()]
    # When their messages are processed
    rig.enqueue(*items)
    report = rig.worker().work(burst=True)
    # Then each has a name.gz that GNU gzip restores exactly, with the name in its header
    assert report.compressed == len(files), report.outcomes
    for path, data in files.items():
        gz = rig.assert_gz_of(path, data)
        assert gzip_header_name(gz) == path.rsplit("/", 1)[1]
    # and the originals are untouched, the queue is drained, nothing dead-lettered
    for path, data in files.items():
        assert rig.read(path) == data
    stats = rig.queue.stats()
    assert (stats.visible, stats.in_flight, stats.dead) == (0, 0, 0)


def test_header_carries_name_and_mtime_so_gunzip_n_restores_both(rig: Rig, tmp_path) -> None:
    md = rig.upload("/Data Set.tsv", text_bytes(10_000))
    rig.enqueue(rig.item(md))
    rig.worker().work(burst=True)
    gz_file = tmp_path / "x.gz"
    gz_file.write_bytes(rig.read("/Data Set.tsv.gz"))
    os.system(f"cd {tmp_path} && gzip -dN x.gz")  # noqa: S605 - test-controlled path
    restored = tmp_path / "Data Set.tsv"
    assert restored.read_bytes() == text_bytes(10_000)
    assert int(restored.stat().st_mtime) == int(md.client_modified.timestamp())


@pytest.mark.parametrize(("path", "data", "extra", "reason"), [
    ("/archive.tar.GZ", b"not really gzip", {}, "already .gz"),
    ("/sneaky.bin", gzip.compress(b"hello" * 100, mtime=0), {}, "content is already gzip"),
    ("/photo.jpg", b"\xff\xd8\xff" + b"x" * 100, {"DROPGZ_COMPRESSION_EXCLUDE": "*.jpg"},
     "excluded"),
    ("/tiny.txt", b"abc", {"DROPGZ_COMPRESSION_MIN_SIZE": "10"}, "smaller than min_size"),
    ("/huge.txt", b"x" * 2000, {"DROPGZ_COMPRESSION_MAX_SIZE": "1000"}, "larger than max_size"),
    ("/" + "n" * 253 + ".t", b"long name", {}, "name too long"),
])
def test_skip_rules_ack_without_writing(emulator, make_rig, path: str, data: bytes,
                                        extra: dict[str, str], reason: str) -> None:
    rig = make_rig(emulator, **extra)
    md = rig.upload(path, data)
    rig.enqueue(rig.item(md))
    report = rig.worker().work(burst=True)
    assert report.skipped == 1 and report.compressed == 0
    assert reason in report.outcomes[0].reason
    assert not rig.exists(path + ".gz")
    assert rig.queue.stats().dead == 0


def test_folder_gone_and_superseded_are_skipped(rig: Rig) -> None:
    rig.dbx.files_create_folder_v2("/folder.txt")
    old = rig.upload("/changing.txt", b"version one\n" * 100)
    rig.upload("/changing.txt", b"version two\n" * 100)
    gone = rig.upload("/gone.txt", b"bye")
    rig.dbx.files_delete_v2("/gone.txt")
    rig.enqueue(WorkItem(path="/folder.txt"), rig.item(old), rig.item(gone))
    report = rig.worker().work(burst=True)
    reasons = sorted(o.reason for o in report.outcomes)
    assert report.skipped == 3, reasons
    assert reasons[0].startswith("gone")
    assert reasons[1] == "is a folder"
    assert reasons[2].startswith(f"rev {old.rev} superseded")
    assert not rig.exists("/changing.txt.gz")
    assert not rig.exists("/folder.txt.gz")


def test_a_large_file_queued_twice_counts_once(rig: Rig) -> None:
    # Given a file streamed through its own upload session, compressed once
    data = text_bytes(SINGLE_UPLOAD_MAX_SOURCE + 1024 * 1024)
    item = rig.item(rig.upload("/big/twice.log", data))
    rig.enqueue(item)
    assert rig.worker().work(burst=True).compressed == 1
    first = rig.assert_gz_of("/big/twice.log", data)
    # When a second message for the same revision comes
    rig.enqueue(item)
    report = rig.worker().work(burst=True)
    # Then the .gz keeps its bytes, and the repeat is a skip, not a second compression
    assert (report.compressed, report.skipped) == (0, 1), report.outcomes
    assert "already there" in report.outcomes[0].reason
    assert rig.read("/big/twice.log.gz") == first


def test_redelivery_gives_one_gz_with_the_same_bytes(rig: Rig) -> None:
    data = text_bytes(300_000)
    item = rig.item(rig.upload("/twice.log", data))
    rig.enqueue(item)
    rig.worker().work(burst=True)
    first = rig.assert_gz_of("/twice.log", data)
    rig.enqueue(item, item)
    report = rig.worker(concurrency=2).work(burst=True)
    # neither delivery writes again, nor counts as a second compression
    assert report.compressed == 0 and report.skipped + report.retried == 2, report.outcomes
    assert all("is already there" in o.reason for o in report.outcomes), report.outcomes
    rig.worker().work(burst=True)  # settle any retried duplicate
    assert rig.read("/twice.log.gz") == first
    names = [e.name for e in rig.dbx.files_list_folder("").entries]
    assert sorted(names) == ["twice.log", "twice.log.gz"]
    assert rig.queue.stats().dead == 0


def test_new_rev_overwrites_our_previous_gz(rig: Rig) -> None:
    rig.enqueue(rig.item(rig.upload("/doc.txt", b"first\n" * 1000)))
    rig.worker().work(burst=True)
    rig.enqueue(rig.item(rig.upload("/doc.txt", b"second\n" * 1000)))
    rig.worker().work(burst=True)
    rig.assert_gz_of("/doc.txt", b"second\n" * 1000)


def test_users_own_gz_is_left_alone(rig: Rig) -> None:
    users = gzip.compress(b"the user's own archive", mtime=0)  # no FNAME of ours
    rig.upload("/report.txt.gz", users)
    rig.enqueue(rig.item(rig.upload("/report.txt", b"report\n" * 100)))
    report = rig.worker().work(burst=True)
    assert report.skipped == 1
    assert "not made by dropgz" in report.outcomes[0].reason
    assert rig.read("/report.txt.gz") == users


@pytest.mark.parametrize(("body", "reason"), [
    ("this is not json", "not JSON"),
    ('{"name": "/x.txt"}', "no 'path'"),
    ('{"path": "relative.txt"}', "must be absolute"),
    ('{"path": "/a/../etc/passwd"}', "'..' component"),
    ('{"path": "/nul\\u0000.txt"}', "NUL"),
    ('{"path": "/' + "p" * 100_000 + '"}', "characters, over"),
    ('{"path": "/x.txt", "account": "dbid:somebody-else"}', "unknown account"),
])
def test_poison_messages_reach_the_dead_letter_queue(rig: Rig, body: str, reason: str) -> None:
    rig.enqueue(body)
    report = rig.worker().work(burst=True)
    assert report.dead_lettered == 1
    dead = rig.queue.dead_letters()
    assert len(dead) == 1 and reason in (dead[0].reason or "")
    assert rig.queue.stats().visible == 0


def test_replace_original_deletes_only_after_verified_upload(emulator, make_rig) -> None:
    rig = make_rig(emulator, DROPGZ_COMPRESSION_REPLACE_ORIGINAL="true")
    data = text_bytes(20_000)
    rig.enqueue(rig.item(rig.upload("/replace-me.txt", data)))
    report = rig.worker().work(burst=True)
    assert report.outcomes[0].original_deleted
    assert not rig.exists("/replace-me.txt")
    assert gunzip_bytes(rig.read("/replace-me.txt.gz")) == data


@pytest.mark.parametrize("compressor", ["gzip", "zlib-ng", "isal"])
def test_every_compressor_writes_gzip_that_gunzip_reads(emulator, make_rig,
                                                        compressor: str) -> None:
    rig = make_rig(emulator, DROPGZ_COMPRESSION_COMPRESSOR=compressor)
    data = text_bytes(2_000_000) + os.urandom(100_000)
    rig.enqueue(rig.item(rig.upload("/mixed.dat", data)))
    assert rig.worker().work(burst=True).compressed == 1
    rig.assert_gz_of("/mixed.dat", data)


@pytest.mark.slow
def test_200_mib_file_goes_through_upload_sessions(emulator, make_rig) -> None:
    rig = make_rig(emulator, DROPGZ_COMPRESSION_LEVEL="1")
    block = text_bytes(1 << 20)
    size = 200 * (1 << 20)
    session = rig.dbx.files_upload_session_start(b"")
    from dropbox.files import CommitInfo, UploadSessionCursor
    for i in range(200):
        rig.dbx.files_upload_session_append_v2(block, UploadSessionCursor(session.session_id,
                                                                          i * len(block)))
    md = rig.dbx.files_upload_session_finish(b"", UploadSessionCursor(session.session_id, size),
                                             CommitInfo(path="/big/huge.log"))
    emulator.reset_stats()
    rig.enqueue(rig.item(md))
    report = rig.worker().work(burst=True)
    assert report.compressed == 1 and report.bytes_in == size
    stats = emulator.stats()
    assert any("upload_session/append" in route for route in stats["routes"]), stats
    gz = rig.read("/big/huge.log.gz")
    assert gunzip_bytes(gz) == block * 200
