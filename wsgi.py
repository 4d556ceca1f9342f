"""Entry point for gunicorn (`gunicorn wsgi:app`) and the flask CLI (`flask --app wsgi ...`).

Importing it only builds the app; what gunicorn does as each worker starts is in
gunicorn.conf.py."""

from directory import create_app

app = create_app()
