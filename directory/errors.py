"""Friendly error pages in the site's layout, and JSON errors under /api/."""

from __future__ import annotations

import logging
import re

from flask import Flask, Response, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError

from .i18n import N_, translated

log = logging.getLogger(__name__)

MESSAGES = {
    400: N_("Something in that request didn't look right."),
    403: N_("You don't have permission to see that page."),
    404: N_("We couldn't find that page."),
    405: N_("That page can't be used that way."),
    413: N_("That was more than we can accept in one go."),
    429: N_("Too many requests from your connection. Please wait a little and try again."),
    500: N_("Something went wrong on our side. It has been logged; please try again later."),
    503: N_(
        "The directory is busy or its database is out of reach for a moment. Nothing was "
        "saved; please try again in a minute."
    ),
}

# Seconds a client is told to wait after a 503: a locked SQLite file frees within seconds,
# and a restarting PostgreSQL within a minute or so.
RETRY_AFTER_SECONDS = 30
# Never written back into a page: what a moderator typed as a password, and the old token.
_NOT_RESENT = ("csrf_token", "password")


def wants_json() -> bool:
    return request.path.startswith("/api/")


def json_error(status: int, code: str, message: str, **extra: object) -> ResponseReturnValue:
    body: dict[str, object] = {"code": code, "message": message}
    body.update(extra)
    return jsonify(error=body), status


def _render(status: int, message: str | None = None) -> ResponseReturnValue:
    text = message or translated(MESSAGES.get(status, MESSAGES[400]))
    if wants_json():
        return json_error(status, f"http_{status}", text)
    template = f"errors/{status}.html" if status in (404, 429, 500) else "errors/generic.html"
    return render_template(template, status=status, message=text), status


def _typed_fields() -> list[tuple[str, str]]:
    """What a failed POST carried, to put back into a form on the 503 page."""
    if request.method != "POST":
        return []
    return [
        (name, value)
        for name, value in request.form.items(multi=True)
        if not any(word in name for word in _NOT_RESENT)
    ]


_CODE = re.compile(r"[a-z][a-z0-9_]*|[A-Z]{2}(-[A-Z0-9]{1,3})?")


def _typed_text(fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The copy to keep: what looks typed, not the codes behind ticked boxes and choices
    (`ir_only`, `mcc`, `US-WA`, `y`), which would read as noise. The resend keeps them all."""
    return [(name, value) for name, value in fields if value and not _CODE.fullmatch(value)]


def _unavailable() -> ResponseReturnValue:
    """503 with Retry-After. After a POST the page holds what was typed, and a button to send
    it again (with a fresh CSRF token), so a database hiccup never silently loses it."""
    if wants_json():
        response: Response = jsonify(
            error={"code": "unavailable", "message": translated(MESSAGES[503])}
        )
    else:
        try:
            fields = _typed_fields()
            page = render_template(
                "errors/503.html",
                message=translated(MESSAGES[503]),
                fields=fields,
                typed=_typed_text(fields),
            )
        except Exception:  # the layout itself needed the database (a moderator's session)
            log.warning("503 page rendered without the layout", exc_info=True)
            page = (
                "<!doctype html><title>Please try again in a minute</title>"
                f"<h1>Please try again in a minute</h1><p>{MESSAGES[503]}</p>"
                "<p>Go back: what you typed should still be in the form.</p>"
            )
        response = Response(page, mimetype="text/html")
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeout)
    def _database_unavailable(exc: Exception) -> ResponseReturnValue:
        # Locked past the busy timeout, the server down, the pool exhausted: the request did
        # not happen, and trying again later will work. Whatever was half done is rolled back.
        from .extensions import db

        try:
            db.session.rollback()
        except Exception:
            log.debug("rollback after a database failure failed too", exc_info=True)
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
        log.error("database unavailable on %s %s: %s", request.method, request.path, reason)
        return _unavailable()

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> ResponseReturnValue:
        return _render(
            400,
            _(
                "This form had expired or was sent from somewhere else. Nothing was saved. "
                "Please go back, reload the page and send it again."
            ),
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> ResponseReturnValue:
        if isinstance(exc, InternalServerError):
            return _server_error(exc)
        status = exc.code or 500
        message = None
        if status == 429:
            message = _(
                "You've sent several things in a short time, so we've paused new ones from your "
                "connection for a while (%(limit)s). Please try again later.",
                limit=exc.description,
            )
        return _render(status, message)

    @app.errorhandler(Exception)
    def _server_error(exc: Exception) -> ResponseReturnValue:
        if isinstance(exc, HTTPException) and not isinstance(exc, InternalServerError):
            return _http(exc)
        original = getattr(exc, "original_exception", exc)
        log.exception("Unhandled error on %s %s", request.method, request.path, exc_info=original)
        return _render(500)
