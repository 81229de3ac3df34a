"""App Engine entry point: ``gunicorn main:app`` (see app.yaml).

Settings come from the environment (``DROPGZ_*``, set in app.yaml); the app is wrapped
with ``wrap_wsgi_app`` so the bundled services (task queues, ndb) work on python3.
"""

from __future__ import annotations

import os

from google.appengine.api import wrap_wsgi_app

from dropgz.core.config import load_settings
from dropgz.core.logs import setup_logging
from dropgz.web.app import create_app

settings = load_settings(env=os.environ)
setup_logging(os.environ.get("DROPGZ_LOG_LEVEL", "INFO"), settings.secrets())
app = wrap_wsgi_app(create_app(settings))
