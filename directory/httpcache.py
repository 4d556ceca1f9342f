"""HTTP caching of public pages and API answers: ETags from the data version, Cache-Control.

Search pages, the search API and listing pages are the same for every anonymous visitor until
public data changes, so they carry `Cache-Control: public, max-age=60` and a weak ETag made of
the code's fingerprint and the data version (directory/dataversion.py). A request that sends
back the current ETag gets a 304 before the view runs: one indexed read of one row, about what
/healthz costs. Any change a moderator makes raises the version, so the next request that
revalidates gets the new page; a browser or proxy may show a copy up to 60 s old meanwhile.

Static files are addressed by their content: every URL the app writes for one carries `?v=` and
a hash of the file (Flask's url_defaults), and a request with the current hash is answered
`public, max-age=31536000, immutable`, so a later visit fetches no CSS or JS at all; a changed
file gets a new URL. Without the right hash the file is served as Flask does by default
(revalidated each time). Responses are compressed by Flask-Compress (brotli when the client
asks for it, else gzip), static files included.

What a person sees signed in, or a message flashed to them, is theirs: a request that carries
the session (or remember-me) cookie, or a response that sets a cookie, is `private, no-cache`
with no ETag, and every cacheable response says `Vary: Cookie`. Moderation and sign-in pages
are `no-store` (security.py).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request

from . import dataversion, i18n
from .resources import PACKAGE, folder

CACHEABLE = frozenset(
    {
        "public.search",
        "public.pharmacy",
        "public.prescriber",
        "api.search_listings",
        "api.listing",
    }
)
MAX_AGE = 60
PUBLIC = f"public, max-age={MAX_AGE}"
PERSONAL = "private, no-cache"
REMEMBER_COOKIE = "remember_token"  # Flask-Login's default name
IMMUTABLE = "public, max-age=31536000, immutable"
# Brotli first (smaller than gzip for text), then gzip, which every client has. Not zstd: few
# browsers ask for it, and one more encoding is one more variant for caches to hold.
COMPRESS_SETTINGS = {
    "COMPRESS_ALGORITHM": ["br", "gzip"],
    "COMPRESS_ALGORITHM_STREAMING": ["br", "deflate"],
    "COMPRESS_MIMETYPES": [
        "text/html",
        "text/css",
        "text/javascript",
        "application/javascript",
        "application/json",
        "application/geo+json",
        "image/svg+xml",
    ],
}


@lru_cache(maxsize=4)
def code_fingerprint() -> str:
    """A short hash of what shapes a response besides the data: the code, the templates and the
    translations.
    A deploy changes it, so pages cached before it are not taken for current ones."""
    digest = hashlib.blake2b(digest_size=6)
    for base, pattern in (
        (PACKAGE, "**/*.py"),
        (PACKAGE, "translations/*/LC_MESSAGES/*.po"),
        (folder("templates"), "**/*.html"),
    ):
        for path in sorted(base.glob(pattern)):
            digest.update(path.relative_to(base).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@lru_cache(maxsize=256)
def static_hash(folder: str, filename: str) -> str | None:
    try:
        data = (Path(folder) / filename).read_bytes()
    except OSError:
        return None  # not a file: Flask answers the request itself (404)
    return hashlib.blake2b(data, digest_size=6).hexdigest()


def _personal(app: Flask) -> bool:
    cookies = request.cookies
    return app.config["SESSION_COOKIE_NAME"] in cookies or REMEMBER_COOKIE in cookies


def init_app(app: Flask) -> None:
    from .extensions import compress

    for key, value in COMPRESS_SETTINGS.items():
        app.config.setdefault(key, value)
    compress.init_app(app)
    build = code_fingerprint()
    static_folder = str(app.static_folder)

    @app.url_defaults
    def _fingerprint(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint == "static" and "filename" in values:
            digest = static_hash(static_folder, values["filename"])
            if digest:
                values["v"] = digest

    @app.before_request
    def _answer_304() -> Response | None:
        if request.endpoint not in CACHEABLE or request.method not in ("GET", "HEAD"):
            return None
        if _personal(app):
            return None
        # The language is part of the tag: the same URL is English or Spanish (i18n.py).
        tag = g.data_etag = f"{build}-{i18n.select_locale()}-{dataversion.current()}"
        if not request.if_none_match.contains_weak(tag):
            return None
        response = Response(status=304)
        _mark_public(response, tag)
        return response

    @app.after_request
    def _cache_headers(response: Response) -> Response:
        if request.endpoint == "static":
            filename = (request.view_args or {}).get("filename", "")
            if response.status_code in (200, 304) and request.args.get("v") == static_hash(
                static_folder, filename
            ):
                response.headers["Cache-Control"] = IMMUTABLE
            return response
        if request.endpoint not in CACHEABLE or response.status_code == 304:
            return response
        response.vary.add("Cookie")
        tag = g.get("data_etag")
        if tag is None or "Set-Cookie" in response.headers:  # e.g. a first ?lang=es (i18n.py)
            response.headers["Cache-Control"] = PERSONAL
        elif response.status_code == 200:
            _mark_public(response, tag)
        return response


def _mark_public(response: Response, tag: str) -> None:
    response.set_etag(tag, weak=True)
    response.headers["Cache-Control"] = PUBLIC
    response.vary.add("Cookie")
    response.vary.add("Accept-Encoding")
    response.vary.add("Accept-Language")
