"""One contract for every report store (sqlite, ndb): totals, rollups, recent files,
per-account and per-type sums, heartbeats, and their bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dropgz.state import reports
from dropgz.state.reports import FileRecord, Heartbeat, ReportStore, file_type, skip_kind

NOW = datetime.now(UTC).replace(second=30, microsecond=0)


@pytest.fixture(params=["sqlite", "ndb"])
def report_store(request: pytest.FixtureRequest, tmp_path: Path) -> ReportStore:
    if request.param == "ndb":
        request.getfixturevalue("gae_testbed")
        from dropgz.state.reports_ndb import NdbReportStore
        return NdbReportStore()
    from dropgz.state.reports_sqlite import SqliteReportStore
    return SqliteReportStore(tmp_path / "reports.sqlite3")


def record(outcome: str = "compressed", path: str = "/a/report.csv", account: str = "dbid:a",
           at: datetime = NOW, **kw: object) -> FileRecord:
    values: dict = {"bytes_in": 1000, "bytes_out": 250, "seconds": 0.2} \
        if outcome == "compressed" else {}
    values.update(kw)
    return FileRecord(account, path, outcome, at, **values)


def test_totals_count_files_bytes_skips_and_the_seconds_histogram(
        report_store: ReportStore) -> None:
    report_store.add_files([
        record(), record(seconds=3.0, bytes_in=500, bytes_out=100),
        record("skipped", reason="excluded by pattern '*.skip'"),
        record("skipped", reason="rev 0f1 superseded by 0f2"),
        record("retried", reason="TransientError: 503"), record("failed", reason="bad"),
    ])
    report_store.add_counts({"webhooks:accepted": 3, "delta_runs:done": 1})
    report_store.add_counts({"webhooks:accepted": 2})
    totals = report_store.totals()
    assert totals["files:compressed"] == 2 and totals["files:skipped"] == 2
    assert totals["files:retried"] == 1 and totals["files:failed"] == 1
    assert (totals["bytes_in"], totals["bytes_out"]) == (1500, 350)
    assert totals["skipped:excluded"] == 1 and totals["skipped:superseded"] == 1
    assert totals["seconds_le:0.25"] == 1 and totals["seconds_le:5.0"] == 1
    assert totals["seconds_sum_ms"] == 3200
    assert totals["webhooks:accepted"] == 5 and totals["delta_runs:done"] == 1


def test_series_by_minute_and_by_hour(report_store: ReportStore) -> None:
    earlier = NOW - timedelta(minutes=5)
    report_store.add_files([record(at=earlier), record(at=NOW), record(at=NOW),
                            record("skipped", at=NOW, reason="gone")])
    points = report_store.series(NOW - timedelta(hours=1))
    assert [p.at.timestamp() // 60 for p in points] == [earlier.timestamp() // 60,
                                                        NOW.timestamp() // 60]
    assert points[1].sums.compressed == 2 and points[1].sums.skipped == 1
    assert points[1].sums.bytes_saved == 1500
    hourly = report_store.series(NOW - timedelta(days=1), hourly=True)
    assert sum(p.sums.compressed for p in hourly) == 3
    assert report_store.series(NOW + timedelta(hours=2)) == []


def test_recent_files_newest_first_paged_and_bounded(report_store: ReportStore,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports, "RECENT_FILES", 5)
    monkeypatch.setattr(f"{type(report_store).__module__}.RECENT_FILES", 5)
    for n in range(8):
        report_store.add_files([record(path=f"/f{n}.txt", at=NOW + timedelta(seconds=n))])
    assert report_store.recent_count() == 5
    page = report_store.recent_files(0, 3)
    assert [r.path for r in page] == ["/f7.txt", "/f6.txt", "/f5.txt"]
    assert [r.path for r in report_store.recent_files(3, 3)] == ["/f4.txt", "/f3.txt"]
    assert page[0].ratio == 0.25 and page[0].at == NOW + timedelta(seconds=7)
    assert report_store.totals()["files:compressed"] == 8  # totals are not trimmed


def test_names_are_kept_verbatim(report_store: ReportStore) -> None:
    name = "/<script>alert(1)</script> ünï \"q\".txt"
    report_store.add_files([record(path=name, account="dbid:<b>")])
    assert report_store.recent_files()[0].path == name
    assert report_store.account_sums(["dbid:<b>"])["dbid:<b>"].compressed == 1


def test_sums_per_account_and_per_type(report_store: ReportStore) -> None:
    report_store.add_files([record(account="dbid:a", path="/x.CSV"),
                            record(account="dbid:a", path="/y.log"),
                            record(account="dbid:b", path="/z.csv"),
                            record("skipped", account="dbid:b", path="/w", reason="folder")])
    sums = report_store.account_sums(["dbid:a", "dbid:b", "dbid:none"])
    assert set(sums) == {"dbid:a", "dbid:b"}
    assert (sums["dbid:a"].compressed, sums["dbid:a"].bytes_saved) == (2, 1500)
    assert (sums["dbid:b"].compressed, sums["dbid:b"].skipped) == (1, 1)
    types = report_store.type_sums()
    assert types["csv"].compressed == 2 and types["csv"].ratio == 0.25
    assert types["log"].compressed == 1 and types["(none)"].skipped == 1


def test_heartbeats_keep_the_latest_per_worker(report_store: ReportStore) -> None:
    def beat(worker: str, seen: datetime, in_flight: int) -> Heartbeat:
        return Heartbeat(worker, "host1", 42, "0.1.0", NOW - timedelta(hours=1), 8,
                         in_flight, seen, reports_dropped=3)
    report_store.heartbeat(beat("w1", NOW - timedelta(minutes=5), 1))
    report_store.heartbeat(beat("w2", NOW - timedelta(seconds=5), 2))
    report_store.heartbeat(beat("w1", NOW - timedelta(seconds=90), 7))
    report_store.heartbeat(beat("w3", NOW - timedelta(days=2), 0))  # long gone: forgotten
    workers = report_store.workers()
    assert [(w.worker, w.in_flight) for w in workers] == [("w2", 2), ("w1", 7)]
    assert workers[1].stale(NOW) and not workers[0].stale(NOW)
    assert workers[0].started_at == NOW - timedelta(hours=1) and workers[0].reports_dropped == 3


def test_bad_records_are_refused(report_store: ReportStore) -> None:
    with pytest.raises(ValueError, match="outcome"):
        report_store.add_files([record("exploded")])
    with pytest.raises(ValueError, match="negative"):
        report_store.add_files([record(bytes_in=-1)])
    with pytest.raises(ValueError, match="only grow"):
        report_store.add_counts({"webhooks:accepted": -1})
    assert report_store.totals() == {}


def test_skip_kinds_and_file_types_are_bounded_labels() -> None:
    assert skip_kind("/a/x.txt.gz exists and was not made by dropgz from x.txt") == \
        ".gz not ours"
    assert skip_kind("something new") == "other"
    assert file_type("/a/b.tar.GZ") == "gz"
    assert file_type("/a/.bashrc") == "(none)" and file_type("/a/x.<script>") == "(none)"
