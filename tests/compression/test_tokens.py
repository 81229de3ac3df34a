"""Workers with tokens from the web tier: ``[Service] web_url`` + ``internal_key``.

A real web app (served on loopback) mints tokens from the emulator's token endpoint; a real
worker on a real work queue compresses with them. No Dropbox credential on the worker side.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dropbox
import pytest
import requests

from dropgz.compression.internal_client import InternalClient
from dropgz.compression.tokens import BrokeredCompressors, Token, TokenSource
from dropgz.compression.worker import Worker
from dropgz.core.config import load_settings
from dropgz.core.message import WorkItem
from dropgz.core.retries import RetryPolicy
from dropgz.core.secret import Secret
from dropgz.queues import open_work_queue
from dropgz.web.app import create_app
from tests.compression.conftest import Rig, text_bytes
from tests.fixtures.servers import serve

KEY = "internal-key-for-tests-0123456789abcdef"
FERNET = "pmw4EycR8ci4N1Pl_xFL3rXj6zKGyaAxZ2SxTOwtS-E="


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def web(emulator: Any, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """The web tier serving the emulator's account from its refresh token (seed settings)."""
    settings = load_settings(env={
        "DROPGZ_DROPBOX_REFRESH_TOKEN": emulator.refresh_token,
        "DROPGZ_DROPBOX_APP_KEY": emulator.app_key,
        "DROPGZ_DROPBOX_SECRET": emulator.app_secret,
        "DROPGZ_DROPBOX_API_BASE_URL": emulator.url,
        "DROPGZ_SERVICE_DATA_DIR": str(tmp_path / "web"),
        "DROPGZ_SERVICE_INTERNAL_KEY": KEY,
        "DROPGZ_SERVICE_ENCRYPTION_KEY": FERNET,
    })
    app = create_app(settings)
    with serve(app) as url:
        yield url, app.extensions["dropgz"]


@pytest.fixture
def brokered(emulator: Any, make_rig: Any, web: tuple[str, Any]) -> tuple[Rig, Any]:
    url, _ = web
    # The worker's settings: where the web tier is, the shared key, and no Dropbox token.
    rig = make_rig(emulator, DROPGZ_SERVICE_WEB_URL=url, DROPGZ_SERVICE_INTERNAL_KEY=KEY,
                   DROPGZ_DROPBOX_TOKEN="", DROPGZ_DROPBOX_SECRET="")
    assert not rig.settings.dropbox.has_credentials()
    clock = Clock()
    source = TokenSource(InternalClient(url, Secret(KEY)), clock=clock)
    lookup = BrokeredCompressors(source, rig.settings.dropbox, rig.settings.compression)
    return rig, (lookup, clock)


def work(rig: Rig, lookup: BrokeredCompressors) -> Any:
    return Worker(rig.queue, lookup, concurrency=4, poll_seconds=0.2,
                  visibility_timeout=30).work(burst=True)


def test_files_are_compressed_with_one_token_from_the_web_tier(brokered: Any) -> None:
    rig, (lookup, _) = brokered
    files = {f"/b/{n}.txt": text_bytes(5000, seed=n) for n in range(7)}
    items = [rig.item(rig.upload(p, d)) for p, d in files.items()]
    rig.enqueue(*[WorkItem(i.path, rig.emulator.account_id, i.id, i.rev, i.size)
                  for i in items[1:]])
    rig.enqueue(WorkItem(items[0].path))  # the seed's minimum message: no account named
    report = work(rig, lookup)
    assert report.compressed == 7, report.outcomes
    for path, data in files.items():
        rig.assert_gz_of(path, data)
    # one account's key (named) + the configured account (unnamed): two fetches at most
    assert lookup.source.fetched <= 2


def test_tokens_are_asked_again_shortly_before_they_expire(brokered: Any) -> None:
    rig, (lookup, clock) = brokered
    source = lookup.source
    first = source.token(rig.emulator.account_id)
    assert source.token(rig.emulator.account_id) is first
    clock.now += 30
    assert source.token(rig.emulator.account_id) is first
    clock.now += 31  # a minute later: asked again (a disconnect shows within a minute)
    second = source.token(rig.emulator.account_id)
    assert second is not first and source.fetched == 2
    clock.now = second.expires_at - 60  # inside the expiry margin: not used any more
    third = source.token(rig.emulator.account_id)
    assert third is not second and source.fetched == 3


def test_disconnected_and_refused_accounts_are_acked_with_the_reason(brokered: Any,
                                                                      web: Any) -> None:
    rig, (lookup, _) = brokered
    _, svc = web
    svc.state.connect_account("dbid:AArevokedAccount", refresh_token=Secret("gone"),
                              email=None, display_name=None,
                              watch_start=datetime.now(UTC), cursor=None)
    rig.enqueue(WorkItem("/x.txt", account="dbid:AAnotConnected"),
                WorkItem("/y.txt", account="dbid:AArevokedAccount"),
                WorkItem("/z.txt", account="dbid:AArevokedAccount"))
    report = work(rig, lookup)
    reasons = sorted(o.reason for o in report.outcomes)
    assert reasons == ["account disconnected", "needs reconnect", "needs reconnect"]
    assert (report.skipped, report.retried, report.dead_lettered) == (3, 0, 0)
    stats = rig.queue.stats()
    assert (stats.visible, stats.in_flight, stats.dead) == (0, 0, 0)
    assert svc.state.get("dbid:AArevokedAccount").status == "needs_reconnect"


def test_a_token_dropbox_refuses_is_replaced_and_the_file_retried(brokered: Any) -> None:
    rig, (lookup, clock) = brokered
    account = rig.emulator.account_id
    data = text_bytes(3000)
    item = rig.item(rig.upload("/retry.txt", data))
    # The worker holds a token Dropbox no longer accepts.
    lookup.source._tokens[account] = Token(Secret("sl.revoked-token"), clock.now + 9000,
                                           clock.now)
    rig.enqueue(WorkItem(item.path, account, item.id, item.rev, item.size))
    worker = Worker(rig.queue, lookup, concurrency=1, poll_seconds=0.2, visibility_timeout=30,
                    policy=RetryPolicy(max_receives=3, base_delay=0.1))
    first = worker.work(max_jobs=1)
    assert (first.retried, first.dead_lettered) == (1, 0), first
    second = worker.work(max_jobs=1)  # waits for the message to come back
    assert second.compressed == 1, second
    assert lookup.source.token(account).value != Secret("sl.revoked-token")
    rig.assert_gz_of("/retry.txt", data)


def test_a_disconnected_accounts_queued_files_are_acked_not_compressed(tmp_path: Path) -> None:
    from tests.fixtures.multiuser import INTERNAL_KEY, start_site

    with start_site(tmp_path, accounts=2) as site:
        browser = requests.Session()
        assert site.connect(2, browser=browser).status_code == 200
        account, user = site.account_id(2), site.client(2)
        settings = load_settings(env={
            "DROPGZ_DROPBOX_API_BASE_URL": site.emulator.url,
            "DROPGZ_SERVICE_WEB_URL": site.url, "DROPGZ_SERVICE_INTERNAL_KEY": INTERNAL_KEY,
            "DROPGZ_SERVICE_DATA_DIR": str(tmp_path / "worker")})
        source = TokenSource(InternalClient(site.url, Secret(INTERNAL_KEY)))
        lookup = BrokeredCompressors(source, settings.dropbox, settings.compression)
        queue = open_work_queue(settings)
        try:
            def send(path: str) -> None:
                md = user.files_upload(text_bytes(2000), path)
                queue.send([WorkItem(md.path_display, account, md.id, md.rev,
                                     md.size).to_json()])

            def work() -> Any:
                return Worker(queue, lookup, concurrency=2, poll_seconds=0.2,
                              visibility_timeout=30).work(burst=True)

            send("/before.txt")
            assert work().compressed == 1  # the worker now holds a token for the account
            send("/after.txt")
            # The user disconnects on their account page (the grant is revoked at Dropbox).
            page = browser.get(f"{site.url}/accounts/{account}", timeout=10).text
            token = page.split('name="csrf_token" value="')[1].split('"')[0]
            done = browser.post(f"{site.url}/accounts/{account}/disconnect",
                                data={"csrf_token": token}, timeout=10)
            assert done.status_code == 200
            report = work()
            assert [o.reason for o in report.outcomes] == ["account disconnected"]
            assert (report.skipped, report.retried, report.dead_lettered) == (1, 0, 0)
            assert queue.stats().dead == 0
            assert not _exists(user, "/after.txt.gz")
        finally:
            queue.close()


def _exists(dbx: Any, path: str) -> bool:
    try:
        dbx.files_get_metadata(path)
    except dropbox.exceptions.ApiError:
        return False
    return True
