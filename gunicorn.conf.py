"""gunicorn reads ./gunicorn.conf.py on its own when started from the repository root
(`gunicorn wsgi:app`). The settings live in the package, so an installed copy uses the same
ones: `gunicorn -c python:directory.serving 'directory:create_app()'`."""

from directory.serving import accesslog, on_starting, post_worker_init

__all__ = ["accesslog", "on_starting", "post_worker_init"]
