"""Friendly error pages in the site's layout, and JSON errors under /api/."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)

MESSAGES = {
    400: "Something in that request didn't look right.",
    403: "You don't have permission to see that page.",
    404: "We couldn't find that page.",
    405: "That page can't be used that way.",
    413: "That was more than we can accept in one go.",
    429: "Too many requests from your connection. Please wait a little and try again.",
    500: "Something went wrong on our side. It has been logged; please try again later.",
}


def wants_json() -> bool:
    return request.path.startswith("/api/")


def json_error(status: int, code: str, message: str, **extra: object) -> ResponseReturnValue:
    body: dict[str, object] = {"code": code, "message": message}
    body.update(extra)
    return jsonify(error=body), status


def _render(status: int, message: str | None = None) -> ResponseReturnValue:
    text = message or MESSAGES.get(status, MESSAGES[400])
    if wants_json():
        return json_error(status, f"http_{status}", text)
    template = f"errors/{status}.html" if status in (404, 429, 500) else "errors/generic.html"
    return render_template(template, status=status, message=text), status


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> ResponseReturnValue:
        return _render(
            400,
            "This form had expired or was sent from somewhere else. Nothing was saved. "
            "Please go back, reload the page and send it again.",
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> ResponseReturnValue:
        if isinstance(exc, InternalServerError):
            return _server_error(exc)
        status = exc.code or 500
        message = None
        if status == 429:
            message = (
                "You've sent several things in a short time, so we've paused new ones from your "
                f"connection for a while ({exc.description}). Please try again later."
            )
        return _render(status, message)

    @app.errorhandler(Exception)
    def _server_error(exc: Exception) -> ResponseReturnValue:
        if isinstance(exc, HTTPException) and not isinstance(exc, InternalServerError):
            return _http(exc)
        original = getattr(exc, "original_exception", exc)
        log.exception("Unhandled error on %s %s", request.method, request.path, exc_info=original)
        return _render(500)
