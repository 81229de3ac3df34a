"""What every user page shares: rendering with safe headers, the 4xx page, the on-switch.

Templates live in ``web/templates`` (Jinja, autoescaped: names from Dropbox are text, never
markup); CSS in ``web/static``. Pages load nothing from elsewhere, and say so to the browser
(Content-Security-Policy), are never framed, never cached, and send no Referer (the callback
URL carries a one-time code).
"""

from __future__ import annotations

from typing import Any

from flask import Response, make_response, render_template

from dropgz.web.services import services

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def page(template: str, status: int = 200, **context: Any) -> Response:
    """``template`` rendered with ``context``, with :data:`PAGE_HEADERS`."""
    response = make_response(render_template(template, **context), status)
    response.headers.update(PAGE_HEADERS)
    return response


def problem(status: int, title: str, detail: str, **context: Any) -> Response:
    """A clear error page (4xx/5xx) with a way to start again."""
    return page("problem.html", status, title=title, detail=detail, code=status, **context)


def pages_enabled() -> Response | None:
    """``before_request`` of the user pages: 404 unless ``[Dropbox] redirect_uri`` is set."""
    if services().cookies is None:
        return problem(404, "Connecting is not enabled here",
                       "The operator has not set [Dropbox] redirect_uri for this service.",
                       disabled=True)
    return None
