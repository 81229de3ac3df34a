"""The operator dashboard in a real browser (Debian chromium + Playwright) over the whole
pipeline as processes: the emulator, ``dropgz web`` and two ``dropgz worker`` processes
reporting to it.

One pipeline serves the module's scenarios, in order: the numbers of a run across two
workers; a file named like a script; a dead letter retried with its button; an account
paused (its new files wait) and resumed; a wrong password; anonymous requests. Screenshots
of every page go to tests/artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from dropgz.web.app import create_app
from tests.compression.conftest import text_bytes
from tests.fixtures.browser import screenshot
from tests.fixtures.emulator import start_emulator
from tests.fixtures.peers import free_port
from tests.reliability.harness import Pipeline, World, list_all, wait_for
from tests.web.conftest import web_settings

PASSWORD = "correct horse battery staple 42"
METRICS_TOKEN = "metrics-token-0123456789abcdef0123"
SCRIPT_PATH = "/<script>window.__xss=1</script>.txt"
N_FILES = 12


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Pipeline, World]]:
    workdir = tmp_path_factory.mktemp("dashboard")
    port = free_port()
    with start_emulator(workdir / "emulator",
                        webhook_url=f"http://127.0.0.1:{port}/webhook") as emulator:
        pipe = Pipeline(emulator, workdir, port,
                        DROPGZ_SERVICE_OPERATOR_PASSWORD=PASSWORD,
                        DROPGZ_SERVICE_METRICS_TOKEN=METRICS_TOKEN,
                        DROPGZ_SERVICE_INTERNAL_KEY="internal-key-0123456789abcdef0123",
                        DROPGZ_SERVICE_WEB_URL=f"http://127.0.0.1:{port}")
        world = World(emulator.client())
        world.put("/before/old.txt", text_bytes(3000, seed=99), eligible=False)
        pipe.start_web()
        pipe.start_worker()
        pipe.start_worker()
        try:
            yield emulator, pipe, world
        finally:
            pipe.close()


@pytest.fixture
def page(browser: Any, stack: tuple[Any, Pipeline, World]) -> Iterator[Any]:
    context = browser.new_context(base_url=stack[1].base_url)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the actions' confirmations
    try:
        yield page
    finally:
        context.close()


def log_in(page: Any, password: str = PASSWORD) -> Any:
    page.goto("/dashboard/")
    assert page.url.endswith("/dashboard/login?next=/dashboard/")
    page.fill("#password", password)
    page.click("button[type=submit]")
    return page


def metrics(pipe: Pipeline) -> dict[str, float]:
    """``{"name{label=value}": value}`` from /metrics, read with prometheus_client's parser."""
    response = requests.get(f"{pipe.base_url}/metrics", timeout=10,
                            headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    found = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            found[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return found


def compressed_total(pipe: Pipeline) -> float:
    return metrics(pipe).get("dropgz_files_total{outcome=compressed}", 0)


def test_the_numbers_match_a_run_across_two_workers(page: Any, stack: Any) -> None:
    _, pipe, world = stack
    # Given N files compressed by two worker processes
    for n in range(N_FILES):
        world.put(f"/run/file-{n:02d}.log", text_bytes(4000 + 613 * n, seed=n))
    world.put(SCRIPT_PATH, b"<b>not markup</b>\n" * 200)
    pipe.settle(world)
    wait_for(lambda: compressed_total(pipe) == N_FILES + 1, what="every file reported")
    files, _ = list_all(world.dbx)
    bytes_in = sum(len(world.files[p]) for p in world.eligible)
    bytes_out = sum(files[(p + ".gz").lower()].size for p in world.eligible)

    # When the operator logs in (chromium keeps the Secure cookie on http://127.0.0.1)
    log_in(page)
    page.wait_for_selector("#chart-files canvas")
    [cookie] = [c for c in page.context.cookies() if c["name"] == "dropgz_session"]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == ""

    # Then the overview shows N files and their bytes, in and out
    assert page.inner_text("#files-compressed") == f"{N_FILES + 1:,}"
    assert page.inner_text("#exact-bytes-in") == f"{bytes_in:,}"
    assert page.inner_text("#exact-bytes-out") == f"{bytes_out:,}"
    screenshot(page, "dashboard-overview")
    # and both workers are live
    page.click("nav >> text=Workers")
    rows = page.locator("table.data tbody tr")
    assert rows.count() == 2
    assert page.locator("table.data tbody tr >> text=live").count() == 2
    screenshot(page, "dashboard-workers")
    # and each file is listed among the recent ones with its ratio
    page.click("nav >> text=Recent files")
    assert page.locator("table.data tbody tr").count() == N_FILES + 1
    screenshot(page, "dashboard-files")


def test_a_file_named_like_a_script_is_text(page: Any, stack: Any) -> None:
    log_in(page)
    page.goto("/dashboard/files")
    # The name is shown as it is, and nothing in it ran
    assert page.locator("td.path", has_text=SCRIPT_PATH).count() == 1
    assert page.evaluate("window.__xss") is None
    assert page.locator("td.path script").count() == 0


def test_retry_a_dead_letter_with_its_button(page: Any, stack: Any) -> None:
    _, pipe, world = stack
    # Given a file whose message was dead-lettered (workers stopped meanwhile, so none
    # takes it before it is buried)
    for worker in pipe.workers:
        pipe.stop(worker)
    data = text_bytes(7000, seed=7)
    md = world.put("/dead/letter.txt", data)
    queue = pipe.queue()
    wait_for(lambda: queue.stats().visible >= 1, what="the delta tier queued the file")
    [message] = queue.receive(max_messages=1, wait_seconds=5)
    queue.dead_letter(message, "failed for the test: <b>reason</b>")
    assert md.path_display == "/dead/letter.txt"
    pipe.start_worker()

    # When the operator retries it with its button
    log_in(page)
    page.goto("/dashboard/queue")
    assert page.locator("td.reason", has_text="failed for the test: <b>reason</b>").count() == 1
    screenshot(page, "dashboard-queue-dead-letter")
    page.click("td.actions-col >> text=Retry")

    # Then it is compressed, and the queue has no dead letter left
    page.wait_for_selector("text=1 dead letter(s) sent back to the queue.")
    pipe.settle(world)
    assert queue.stats().dead == 0
    page.goto("/dashboard/queue")
    assert page.locator("text=No dead letters").count() == 1


def test_pause_an_account_and_its_new_files_wait(page: Any, stack: Any) -> None:
    emulator, pipe, world = stack
    log_in(page)
    page.goto("/dashboard/accounts")
    row = page.locator(f"tr[data-account='{emulator.account_id}']")
    row.locator("text=Pause").click()
    page.wait_for_selector("text=is paused")
    assert row.locator(".badge").inner_text() == "paused"
    screenshot(page, "dashboard-accounts-paused")

    # When a file arrives while paused
    before = metrics(pipe).get("dropgz_delta_runs_total{result=paused}", 0)
    data = text_bytes(5000, seed=5)
    world.put("/paused/new.txt", data)
    wait_for(lambda: metrics(pipe).get("dropgz_delta_runs_total{result=paused}", 0) > before,
             what="the delta run for the paused account")
    # Then its .gz waits
    assert "/paused/new.txt.gz" not in list_all(world.dbx)[0]
    assert pipe.queue().stats().visible == 0

    # And once resumed, it is compressed
    row.locator("text=Resume").click()
    page.wait_for_selector("text=is watched again")
    pipe.settle(world)
    assert row.locator(".badge").inner_text() == "watching"


def dashboard_routes(tmp_path: Path) -> list[tuple[str, str]]:
    """Every route of the dashboard and /metrics, as (method, path), from the app itself."""
    app = create_app(web_settings(tmp_path))
    found = []
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/dashboard") or rule.rule == "/metrics"):
            continue
        if rule.endpoint in ("dashboard.static", "dashboard_auth.login"):
            continue  # the stylesheet and script, and the login page itself
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((method, re.sub(r"<[^>]+>", "x", rule.rule)))
    return found


def test_every_dashboard_route_and_metrics_refuse_anonymous_requests(
        stack: Any, tmp_path: Path) -> None:
    _, pipe, _ = stack
    routes = dashboard_routes(tmp_path)
    assert len(routes) >= 12, routes
    for method, path in routes:
        response = requests.request(method, pipe.base_url + path, allow_redirects=False,
                                    data={"all": "1", "account": "x"}, timeout=10)
        if response.status_code == 302:
            assert "/dashboard/login" in response.headers["Location"], (method, path)
        else:
            assert response.status_code in (400, 401), (method, path, response.status_code)
        assert b"dropgz_files" not in response.content and b"dbid:" not in response.content


def test_a_wrong_password_is_refused_and_attempts_are_limited(page: Any, stack: Any) -> None:
    # (last in the module: the attempts it spends lock this address out for a while)
    log_in(page, "not the password")
    assert page.locator("text=Wrong password.").count() == 1
    screenshot(page, "dashboard-login-refused")
    page.goto("/dashboard/workers")
    assert "/dashboard/login" in page.url
    for _ in range(5):
        page.fill("#password", "still wrong")
        page.click("button[type=submit]")
    assert page.locator("text=Too many failed attempts").count() == 1
