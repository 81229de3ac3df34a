"""dropgz: watches a Dropbox account and gzips every new or changed file.

The pipeline, one module (or folder) per tier::

    Dropbox ──webhook──▶ monitoring tier (webhook.py) ──push queue (pushqueue/)──▶
    delta tier (delta.py) ──work queue (queues/)──▶ compression tier (worker.py) ──▶ Dropbox
"""

__version__ = "0.1.0"
