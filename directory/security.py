"""Security headers, the login manager's user loader, proxy handling and role checks."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, cast
from urllib.parse import urlsplit

from flask import Flask, Request, Response, abort, request
from flask_login import current_user
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import SecurityError
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import MapAdapter
from werkzeug.wsgi import get_host

from .extensions import db, login_manager
from .models import User


def _csp(app: Flask) -> str:
    img = ["'self'", "data:"]
    tile_url = app.config.get("MAP_TILE_URL") or ""
    if tile_url:
        parts = urlsplit(tile_url.replace("{s}", "a"))
        # Leaflet fetches tiles as <img>; allow the tile host (with subdomains) for images only.
        host = parts.netloc.split(".", 1)[-1] if "{s}" in tile_url else parts.netloc
        img.append(
            f"{parts.scheme}://*.{host}" if "{s}" in tile_url else f"{parts.scheme}://{host}"
        )
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {' '.join(img)}",
            "connect-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class RefuseUnknownHosts:
    """A plain 400 for a Host header not in TRUSTED_HOSTS, before Flask sees the request.
    Flask checks TRUSTED_HOSTS too, but only while it builds the request's URL adapter, and
    its error page then has no adapter to build its links with (a 500)."""

    def __init__(self, wsgi_app: Any, trusted: list[str]) -> None:
        self.wsgi_app = wsgi_app
        self.trusted = trusted

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        try:
            get_host(environ, self.trusted)
        except SecurityError:
            body = b"Unknown host: this site answers only at its own address.\n"
            start_response(
                "400 Bad Request",
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return self.wsgi_app(environ, start_response)


def _public_url_for_links(app: Flask) -> None:
    """With PUBLIC_URL set, every absolute URL built during a request (url_for's _external:
    the API's `url`, JSON-LD, print links, HSDS) uses its scheme and host, never the Host
    header or scheme the client sent. Flask takes the host from SERVER_NAME (config.py sets
    it); the scheme it would take from the request, so it is set here on each request's
    URL adapter. Matching requests doesn't read either, so routing is unchanged."""
    public_url = app.config.get("PUBLIC_URL")
    if not public_url:
        return
    scheme, host = str(public_url).split("://", 1)
    create = app.create_url_adapter

    def create_url_adapter(req: Request | None) -> MapAdapter | None:
        adapter = create(req)
        if adapter is not None:
            adapter.url_scheme = scheme
            adapter.server_name = host
        return adapter

    # An instance attribute, as for wsgi_app above: mypy sees it only as a method.
    cast(Any, app).create_url_adapter = create_url_adapter


def init_app(app: Flask) -> None:
    hops = app.config.get("TRUST_PROXY_HOPS", 0)
    if hops:
        # Flask's documented way to wrap the WSGI app; mypy sees wsgi_app only as a method.
        cast(Any, app).wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    trusted = app.config.get("TRUSTED_HOSTS")
    if trusted:
        # Outside ProxyFix, so X-Forwarded-Host from a trusted proxy is what gets checked.
        cast(Any, app).wsgi_app = RefuseUnknownHosts(app.wsgi_app, list(trusted))
    csp = _csp(app)
    _public_url_for_links(app)

    @app.before_request
    def _refuse_nul_bytes() -> None:
        # No field anywhere has a use for NUL, and PostgreSQL refuses to store it: say so
        # up front (400) rather than fail deep in the database driver.
        sources: list[MultiDict[str, str]] = [request.args]
        if request.mimetype != "application/json":
            sources.append(request.form)
        for values in sources:
            for key, value in values.items(multi=True):
                if "\x00" in key or "\x00" in value:
                    abort(400, "The request contained a character we can't accept (NUL).")

    @app.after_request
    def _headers(response: Response) -> Response:
        h = response.headers
        h.setdefault("Content-Security-Policy", csp)
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Permissions-Policy", "geolocation=(self), camera=(), microphone=()")
        if app.config.get("HSTS"):
            h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        # request.blueprints names the parents too: the call list (moderation.calls) is a
        # moderator's page like the rest.
        if {"auth", "moderation"} & set(request.blueprints):
            h["Cache-Control"] = "no-store"
        return response

    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to see that page."
    login_manager.session_protection = "strong"


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    # The id carries the account's session version, so a password change or deactivation
    # ends every session that was started before it.
    try:
        raw_id, raw_version = user_id.split(":", 1)
        uid, version = int(raw_id), int(raw_version)
    except ValueError:
        return None
    user = db.session.scalar(select(User).where(User.id == uid))
    if user is None or user.session_version != version or not user.active:
        return None
    return user


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    cast(Any, wrapped).admin_only = True  # the route sweep in tests/test_auth.py reads this
    return wrapped
