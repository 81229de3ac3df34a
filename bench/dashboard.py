"""Benchmark 8: the dashboard stays fast as the service grows.

Two stores in the same run: a small service (100 accounts) and a large one (10,000
accounts), both with the 1,000 recent files a store keeps at most and a month of rollups. Each page
is requested ``requests`` times through the Flask app (logged in) and timed; the figure is
the large service's page time over the small one's, per page (target ≤ 1.5: pages read one
page of a list, never the whole list).
"""

from __future__ import annotations

import re
import statistics
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.common import BenchResult
from dropgz.core.config import load_settings
from dropgz.state.reports import FileRecord, utcnow
from dropgz.web.app import create_app

NAME = "dashboard"
TITLE = "8. Dashboard page time: 10,000 accounts and 1,000 recent files vs 100 accounts"
PRESETS = {
    "tiny": {"small_accounts": 100, "large_accounts": 1000, "recent_files": 1000,
             "requests": 20},
    "full": {"small_accounts": 100, "large_accounts": 10_000, "recent_files": 1000,
             "requests": 60},
}
TARGET = 1.5
PAGES = ("/dashboard/", "/dashboard/accounts", "/dashboard/accounts?page=2",
         "/dashboard/files", "/dashboard/files?page=2", "/dashboard/workers",
         "/dashboard/api/overview?range=month")
PASSWORD = "bench operator password"


def _service(workdir: Path, accounts: int, recent: int) -> Any:
    settings = load_settings(env={
        "DROPGZ_DROPBOX_TOKEN": "not-used", "DROPGZ_DROPBOX_SECRET": "bench-app-secret",
        "DROPGZ_SERVICE_DATA_DIR": str(workdir), "DROPGZ_SERVICE_OPERATOR_PASSWORD": PASSWORD})
    app = create_app(settings)
    svc = app.extensions["dropgz"]
    now = utcnow()
    for n in range(accounts):
        svc.state.add_account(f"dbid:bench{n:06d}", watch_start=now)
    spread = 30 * 24 * 60 // max(recent, 1)  # a month of activity in either service
    batch = [FileRecord(f"dbid:bench{n % accounts:06d}", f"/docs/file-{n:05d}.{ext}",
                        "compressed", now - timedelta(minutes=n * spread), 10_000 + n,
                        2_500 + n, 0.1)
             for n, ext in zip(range(recent), ["csv", "log", "json", "txt"] * recent,
                               strict=False)]
    for start in range(0, len(batch), 500):
        svc.reports.add_files(batch[start:start + 500])
    return app


def _client(app: Any) -> Any:
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"',
                      client.get("/dashboard/login").text).group(1)
    answer = client.post("/dashboard/login", data={"csrf_token": token, "password": PASSWORD})
    assert answer.status_code == 302, answer.status_code
    return client


def _time(clients: dict[str, Any], path: str, count: int) -> dict[str, float]:
    """Median seconds of ``count`` requests of ``path`` per service, the services' requests
    interleaved (so a drift of the machine hits both alike), after one warm-up each."""
    samples: dict[str, list[float]] = {name: [] for name in clients}
    for name, client in clients.items():
        assert client.get(path).status_code == 200, (name, path)
    for _ in range(count):
        for name, client in clients.items():
            started = time.perf_counter()
            response = client.get(path)
            samples[name].append(time.perf_counter() - started)
            assert response.status_code == 200
    return {name: statistics.median(values) for name, values in samples.items()}


def run(size: str, workdir: Path, **overrides: object) -> BenchResult:
    params = {**PRESETS[size], **overrides}
    result = BenchResult(NAME, TITLE, size, params,
                         columns=["page", "small ms", "large ms", "large / small"])
    # Both keep a busy month: the 1,000 recent files (the most a store keeps) and a month of
    # rollups; what grows between the two is the number of accounts, 100 times over.
    small = _service(workdir / "small", int(params["small_accounts"]),
                     int(params["recent_files"]))
    large = _service(workdir / "large", int(params["large_accounts"]),
                     int(params["recent_files"]))
    clients = {"small": _client(small), "large": _client(large)}
    large_svc = large.extensions["dropgz"]
    result.check("the large service holds every account",
                 large_svc.state.count_accounts() == int(params["large_accounts"]))
    result.check("the large service keeps 1,000 recent files",
                 large_svc.reports.recent_count() == min(int(params["recent_files"]), 1000))
    result.check("a page lists 50 accounts",
                 clients["large"].get("/dashboard/accounts").text.count("data-account=") == 50)
    worst = 0.0
    for path in PAGES:
        timed = _time(clients, path, int(params["requests"]))
        small_s, large_s = timed["small"], timed["large"]
        ratio = large_s / small_s
        worst = max(worst, ratio)
        result.rows.append({"page": path, "small ms": small_s * 1000,
                            "large ms": large_s * 1000, "large / small": ratio})
    result.figure("slowest page: large service / small service", worst, TARGET, op="<=")
    return result
