"""gunicorn's settings for this app, importable wherever the package is installed:
`gunicorn -c python:directory.serving 'directory:create_app()'` (gunicorn.conf.py at the
repository root imports them, for `gunicorn wsgi:app` from a checkout). Command-line options
(--workers, --bind) apply on top."""

from __future__ import annotations

import threading
from typing import Any

# The request log is the app's own (one JSON line each, directory/requestlog.py); gunicorn's
# access log would repeat every request with its query string.
accesslog = None


def on_starting(server: Any) -> None:
    """Refuse to start several production workers on memory:// rate limits: gunicorn prints
    the RuntimeError as one line ("Error: ...") and exits 1."""
    from directory.config import shared_limits_problem

    problem = shared_limits_problem(int(server.cfg.workers))
    if problem:
        raise RuntimeError(problem)


def post_worker_init(worker: Any) -> None:
    """Open the offline gazetteer (or build it, once, if `init-db` didn't) in the background
    as each worker starts, so the first search a patient makes isn't the slow one. Each
    worker opens its own read-only handle (about 1 MB); a preloaded master shares none."""
    from directory.geocoding import get_offline

    threading.Thread(target=get_offline().preload, name="gazetteer", daemon=True).start()
