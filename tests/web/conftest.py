"""Fixtures for the web tiers: App Engine testbed stubs, state stores, settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dropgz.state.base import StateStore
from tests.fixtures.servers import serve

__all__ = ["serve"]  # re-exported: web suites import it from here

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def gae_testbed() -> Iterator[Any]:
    """App Engine stubs: task queue (reading the repository's queue.yaml), datastore, memcache."""
    from google.appengine.ext import ndb, testbed

    bed = testbed.Testbed()
    bed.activate()
    bed.init_taskqueue_stub(root_path=str(REPO_ROOT))
    bed.init_datastore_v3_stub()
    bed.init_memcache_stub()
    ndb.get_context().clear_cache()
    try:
        yield bed
    finally:
        bed.deactivate()


# A Fernet key for tests (Fernet.generate_key() once): encrypts stored refresh tokens.
ENCRYPTION_KEY = "pmw4EycR8ci4N1Pl_xFL3rXj6zKGyaAxZ2SxTOwtS-E="


@pytest.fixture(params=["sqlite", "ndb"])
def state_store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    """Every state backend, for the one contract suite, encrypting with ENCRYPTION_KEY."""
    from dropgz.core.encryption import TokenCipher
    from dropgz.core.secret import Secret

    cipher = TokenCipher(Secret(ENCRYPTION_KEY))
    if request.param == "ndb":
        request.getfixturevalue("gae_testbed")
        from dropgz.state.ndb import NdbStateStore
        return NdbStateStore(cipher)
    from dropgz.state.sqlite import SqliteStateStore
    return SqliteStateStore(tmp_path / "state.sqlite3", cipher)


APP_SECRET = "webhook-app-secret-for-tests"


def web_settings(tmp_path: Path, **env: str) -> Any:
    """Settings for the web app: a token (unused unless Dropbox is called), the app secret,
    the data folder under ``tmp_path``, and ``env`` on top (``DROPGZ_*`` keys)."""
    from dropgz.core.config import load_settings

    base = {
        "DROPGZ_DROPBOX_TOKEN": "token-not-used-here",
        "DROPGZ_DROPBOX_SECRET": APP_SECRET,
        "DROPGZ_SERVICE_DATA_DIR": str(tmp_path / "data"),
    }
    base.update(env)
    return load_settings(env=base)


def sign_body(body: bytes, secret: str = APP_SECRET) -> str:
    """What Dropbox puts in X-Dropbox-Signature."""
    import hashlib
    import hmac

    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def stub_tasks(bed: Any, queue: str = "delta") -> list[Any]:
    """Tasks the testbed taskqueue stub holds in ``queue``."""
    from google.appengine.ext import testbed

    return bed.get_stub(testbed.TASKQUEUE_SERVICE_NAME).get_filtered_tasks(queue_names=[queue])


def replay(client: Any, task: Any) -> Any:
    """Deliver a stub task to the Flask test client as App Engine would: same method, url,
    body and X-AppEngine-* headers."""
    headers = {k: v for k, v in task.headers.items() if k.lower() not in ("host",
                                                                         "content-length")}
    return client.open(task.url, method=task.method, data=task.payload, headers=headers)


