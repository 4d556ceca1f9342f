"""One JSON line per request on standard error, for gunicorn and journald to collect.

Each line: time, request id, method, path, status, milliseconds and the client's network
(an IPv4 address cut to /24, IPv6 to /48). Never the query string: searches carry what a
patient looked for and where (a ZIP, a condition), and the path alone says which page was
used. Never form contents or cookies. The request id is the caller's sane X-Request-ID (a
proxy's) or a new one, and goes back in the response's X-Request-ID to quote in a report.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime

import orjson
from flask import Flask, Response, g, request

log = logging.getLogger("directory.requests")

_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")


def masked(address: str | None) -> str | None:
    """The client's network, not its address: enough to spot a flood, not to find a person."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def request_id() -> str:
    return str(g.get("request_id") or "")


class _JsonLines(logging.Formatter):
    """The request's fields as the whole line; any other record as usual."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "request", None)
        if isinstance(fields, dict):
            return orjson.dumps(fields).decode()
        return super().format(record)


class _StderrLines(logging.StreamHandler):
    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(_JsonLines())


def init_app(app: Flask) -> None:
    log.setLevel(app.config.get("LOG_LEVEL", "INFO"))
    # Tests read the records through pytest's caplog (the root logger) instead.
    if not app.testing and not any(isinstance(h, _StderrLines) for h in log.handlers):
        log.addHandler(_StderrLines())
        # Its own handler writes the JSON line; the root's would write it a second time.
        log.propagate = False

    @app.before_request
    def _start() -> None:
        g.request_started = time.perf_counter()
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _SANE_ID.fullmatch(incoming) else uuid.uuid4().hex

    @app.after_request
    def _log(response: Response) -> Response:
        rid = request_id() or uuid.uuid4().hex
        response.headers["X-Request-ID"] = rid
        started = g.get("request_started")
        elapsed = (time.perf_counter() - started) * 1000 if started else 0.0
        fields = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "request_id": rid,
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "ms": round(elapsed, 1),
            "client": masked(request.remote_addr),
        }
        log.log(
            logging.ERROR if response.status_code >= 500 else logging.INFO,
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={"request": fields},
        )
        return response
