"""No pointless .gz (``[Compression] min_savings``): real files through the emulator, every
.gz judged by GNU gzip, every skip stated in the log and counted in the ledger."""

from __future__ import annotations

import gzip
import io
import logging
import random
import zipfile
from pathlib import Path

import dropbox
import pytest

from dropgz.compression.compress import (
    ALREADY_COMPRESSED,
    ALREADY_GZIP,
    SAVES_TOO_LITTLE,
    SINGLE_UPLOAD_MAX_SOURCE,
    FileCompressor,
)
from dropgz.compression.download import CHUNK_SIZE
from dropgz.ops.ledger import Ledger
from dropgz.ops.samples import sample_set
from tests.compression.conftest import Rig, text_bytes

PNG = next(s.data for s in sample_set(0) if s.path.endswith(".png"))
MiB = 1024 * 1024


def noise(size: int, seed: int = 0) -> bytes:
    """Incompressible bytes that start like no known format."""
    return b"noise:" + random.Random(seed).randbytes(size - 6)


def docx() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", text_bytes(200_000).decode())
    return out.getvalue()


def counting_client(emulator) -> tuple[dropbox.Dropbox, list[int]]:
    """A client on the emulator that counts the bytes it reads from download bodies."""
    session = emulator.session()
    read = [0]

    def count(response, **_: object) -> None:
        if response.url.endswith("/files/download"):
            original = response.raw.read

            def counted(*args: object, **kwargs: object) -> bytes:
                data = original(*args, **kwargs)
                read[0] += len(data)
                return data
            response.raw.read = counted
    session.hooks["response"].append(count)
    return emulator.client(session=session), read


def test_pointless_gz_are_not_made_and_each_skip_says_why(
        rig: Rig, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Given text beside a PNG, a docx, random bytes, an empty file and a gzip file
    files = {
        "/notes.txt": text_bytes(40_000),
        "/photos/holiday.png": PNG,
        "/letter.docx": docx(),
        "/random.bin": noise(100_000),
        "/empty.txt": b"",
        "/archive.dat": gzip.compress(b"a user's gzip file\n" * 100, mtime=0),
    }
    rig.enqueue(*(rig.item(rig.upload(p, d)) for p, d in files.items()))
    ledger = Ledger.in_dir(tmp_path / "data")
    # When the worker processes them with the default min_savings (5 %)
    with caplog.at_level(logging.INFO, logger="dropgz.compression.worker"):
        report = rig.worker(on_outcome=ledger.record).work(burst=True)
    # Then only the text got a .gz (GNU gzip restores it), and nothing else was written
    assert report.compressed == 1, report.outcomes
    rig.assert_gz_of("/notes.txt", files["/notes.txt"])
    for path, data in files.items():
        assert rig.read(path) == data
        assert path == "/notes.txt" or not rig.exists(path + ".gz")
    # and each skip has its kind and reason, in the outcome and in the log line
    skipped = {o.path: o for o in report.outcomes if o.status == "skipped"}
    assert {p: (o.kind, o.reason) for p, o in skipped.items()} == {
        "/photos/holiday.png": (ALREADY_COMPRESSED, "already compressed: PNG image"),
        "/letter.docx": (ALREADY_COMPRESSED,
                         "already compressed: ZIP archive (docx, xlsx, jar, epub...)"),
        "/random.bin": (SAVES_TOO_LITTLE, skipped["/random.bin"].reason),
        "/empty.txt": (SAVES_TOO_LITTLE, "empty: a .gz would only add bytes (min_savings 5%)"),
        "/archive.dat": (ALREADY_GZIP, "content is already gzip"),
    }
    assert skipped["/random.bin"].reason.startswith("gzip saves -0.")
    assert skipped["/random.bin"].reason.endswith("%, under min_savings 5%")
    assert 'path=/photos/holiday.png' in caplog.text
    assert 'outcome=skipped reason="already compressed: PNG image"' in caplog.text
    # and the ledger behind `dropgz status` counts them by kind
    assert ledger.skips() == {ALREADY_COMPRESSED: 2, SAVES_TOO_LITTLE: 2, ALREADY_GZIP: 1}
    assert ledger.totals().skipped == 5
    ledger.close()


def test_compressed_format_is_skipped_after_one_chunk_of_download(emulator, rig: Rig) -> None:
    # Given a 24 MiB JPEG (its signature, then incompressible bytes)
    data = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + random.Random(2).randbytes(24 * MiB - 11)
    md = rig.upload("/camera/big.jpg", data)
    dbx, read = counting_client(emulator)
    # When it is processed
    outcome = FileCompressor(dbx, rig.settings.compression).run(rig.item(md))
    # Then it is skipped after reading one chunk of the download, which was then closed
    assert (outcome.status, outcome.kind) == ("skipped", ALREADY_COMPRESSED)
    assert outcome.reason == "already compressed: JPEG image"
    assert 0 < read[0] <= CHUNK_SIZE
    assert not rig.exists("/camera/big.jpg.gz")


def test_streamed_file_is_decided_on_its_first_chunk(emulator, rig: Rig) -> None:
    # Given two files too large for one upload: one incompressible throughout, one whose
    # first chunk is incompressible and the rest text (documented: decided on the first chunk)
    size = SINGLE_UPLOAD_MAX_SOURCE + MiB
    files = {"/noise.bin": noise(size, seed=3),
             "/mixed.log": noise(CHUNK_SIZE, seed=4) + text_bytes(size - CHUNK_SIZE)}
    dbx, read = counting_client(emulator)
    compressor = FileCompressor(dbx, rig.settings.compression)
    for path, data in files.items():
        read[0] = 0
        outcome = compressor.run(rig.item(rig.upload(path, data)))
        # Then both are skipped on their first chunk, before any upload
        assert (outcome.status, outcome.kind) == ("skipped", SAVES_TOO_LITTLE), outcome
        assert f"on the first {CHUNK_SIZE:,} bytes, under min_savings 5%" in outcome.reason
        assert read[0] <= CHUNK_SIZE
        assert not rig.exists(path + ".gz")


def test_min_savings_zero_compresses_everything(emulator, make_rig) -> None:
    # Given min_savings = 0 and files gzip cannot shrink
    rig: Rig = make_rig(emulator, DROPGZ_COMPRESSION_MIN_SAVINGS="0")
    files = {"/photos/holiday.png": PNG, "/random.bin": noise(50_000), "/empty.txt": b"",
             "/letter.docx": docx()}
    rig.enqueue(*(rig.item(rig.upload(p, d)) for p, d in files.items()))
    # When they are processed
    report = rig.worker().work(burst=True)
    # Then each has a .gz that GNU gzip restores, as before min_savings existed
    assert report.compressed == len(files), report.outcomes
    for path, data in files.items():
        rig.assert_gz_of(path, data)


def test_min_savings_threshold_is_the_setting(emulator, make_rig) -> None:
    # Given a file gzip shrinks by about half, and a threshold above that
    half = text_bytes(20_000) + noise(20_000, seed=5)
    rig: Rig = make_rig(emulator, DROPGZ_COMPRESSION_MIN_SAVINGS="60%")
    rig.enqueue(rig.item(rig.upload("/half.dat", half)))
    report = rig.worker().work(burst=True)
    [outcome] = report.outcomes
    assert outcome.kind == SAVES_TOO_LITTLE and "under min_savings 60%" in outcome.reason
    assert not rig.exists("/half.dat.gz")
    # and below it the .gz is made
    rig = make_rig(emulator, DROPGZ_COMPRESSION_MIN_SAVINGS="40%")
    rig.enqueue(rig.item(rig.dbx.files_get_metadata("/half.dat")))
    assert rig.worker().work(burst=True).compressed == 1
    rig.assert_gz_of("/half.dat", half)
