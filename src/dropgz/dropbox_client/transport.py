"""Point the unmodified Dropbox SDK at another server (the emulator) through requests.

The SDK always builds ``https://api.dropboxapi.com/2/...`` and
``https://content.dropboxapi.com/2/...``. A requests ``Session`` with
:class:`RedirectAdapter` mounted on those prefixes sends the same requests to
``base_url`` instead: a public requests mechanism (``Session.mount`` and
``HTTPAdapter.send``), no patching of SDK internals and no import-time environment.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

DROPBOX_HOSTS = ("api.dropboxapi.com", "content.dropboxapi.com", "notify.dropboxapi.com")


class RedirectAdapter(HTTPAdapter):
    """Rewrites each request's scheme and host to ``base_url`` before sending it."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be http(s)://host[:port], got {base_url!r}")
        self._scheme, self._netloc = parts.scheme, parts.netloc
        self._prefix = parts.path.rstrip("/")
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        request.url = urlunsplit((self._scheme, self._netloc, self._prefix + parts.path,
                                  parts.query, parts.fragment))
        return super().send(request, **kwargs)


def make_session(base_url: str | None = None, ca_bundle: str | None = None,
                 pool_size: int = 8) -> requests.Session:
    """A session for ``dropbox.Dropbox(session=...)``.

    ``base_url`` None talks to the real Dropbox with certificate verification;
    otherwise every Dropbox host is redirected to ``base_url``. ``ca_bundle`` is the CA
    file to trust (an emulator's self-signed certificate).
    """
    session = requests.Session()
    session.verify = ca_bundle if ca_bundle else True
    if base_url is not None or ca_bundle:
        # With trust_env, REQUESTS_CA_BUNDLE would override ca_bundle and HTTP(S)_PROXY could
        # route loopback traffic to the emulator through a proxy.
        session.trust_env = False
    if base_url is None:
        session.mount("https://", HTTPAdapter(pool_connections=4, pool_maxsize=pool_size))
        return session
    for host in DROPBOX_HOSTS:
        session.mount(f"https://{host}/",
                      RedirectAdapter(base_url, pool_connections=4, pool_maxsize=pool_size))
    return session
