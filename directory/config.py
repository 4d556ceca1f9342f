"""Settings, read from the environment once at start-up.

Every setting the app reads is listed in SETTINGS with its default and meaning; README.md
documents each one and tests/test_config.py fails when one is missing there.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message says what to fix."""


# name -> (default, what it does). Defaults are strings as they would appear in the environment.
SETTINGS: dict[str, tuple[str | None, str]] = {
    "DIRECTORY_ENV": (
        "production",
        "`production` or `development`. Development allows a generated SECRET_KEY, plain-HTTP "
        "cookies and no HSTS; never use it on a public server.",
    ),
    "SECRET_KEY": (
        None,
        "Signs sessions and CSRF tokens. Required in production; in development a key is "
        "generated once and kept in instance/secret_key.",
    ),
    "DATABASE_URL": (
        None,
        "SQLAlchemy URL. Default: an SQLite file at instance/directory.db. For PostgreSQL: "
        "postgresql+psycopg://user@host/dbname (install the `postgres` extra).",
    ),
    "GEOCODER": (
        "offline",
        "`offline` (built-in gazetteer, no network) or a geopy service name such as `nominatim`.",
    ),
    "GEOCODER_USER_AGENT": (
        None,
        "User agent sent to the online geocoder (Nominatim requires one).",
    ),
    "GEOCODER_DOMAIN": (None, "Host of a self-hosted online geocoder, e.g. nominatim.example.org."),
    "GEOCODER_TIMEOUT": (
        "5",
        "Seconds to wait for the online geocoder before using the offline one.",
    ),
    "RATELIMIT_STORAGE_URI": (
        "memory://",
        "Where rate-limit counters live. Use redis://host:6379 when running several workers or "
        "servers: an in-memory limit is per process.",
    ),
    "RATELIMIT_ENABLED": (
        "true",
        "`false` switches every rate limit off (Flask-Limiter's own setting). For load tests "
        "only: never on a public server.",
    ),
    "SUBMISSION_RATE_LIMIT": (
        "10 per hour",
        "Public submissions accepted per client address: one budget for new listings and "
        "corrections together; a form sent back with errors costs nothing.",
    ),
    "PENDING_SUBMISSIONS_PER_ADDRESS": (
        "20",
        "Most submissions one client address may have waiting for a moderator; more are "
        "refused with a message (the address is stored only as a keyed hash).",
    ),
    "PENDING_SUBMISSIONS_MAX": (
        "20000",
        "Most submissions waiting for a moderator in all; past it new ones are paused.",
    ),
    "PUBLIC_URL": (
        None,
        "The site's address as the public sees it, e.g. https://ldn.example.org: every absolute "
        "link (API `url`, JSON-LD, print links, open data) uses it, never the request's Host "
        "header. Required in production.",
    ),
    "TRUSTED_HOSTS": (
        None,
        "Comma-separated host names the app answers to (`.example.org` for its subdomains, `*` "
        "for any); any other Host header is a plain 400. Add the name your health checks use. "
        "Default in production: PUBLIC_URL's host; in development: any.",
    ),
    "LOGIN_RATE_LIMIT": (
        "10 per 15 minutes",
        "Failed-login budget, counted per client address and per (account, address). Past it "
        "for one account from all addresses together, a warning is logged; the owner can still "
        "sign in.",
    ),
    "DOWNLOAD_RATE_LIMIT": (
        "20 per hour",
        "Whole-dataset downloads (/data/...) per client address: each streams every listing, so "
        "a loop of them would keep a worker busy. The HSDS API's pages are not limited.",
    ),
    "MAX_CONTENT_LENGTH": ("65536", "Largest request body accepted, in bytes."),
    "MAP_TILE_URL": (
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        "Leaflet tile URL template. Empty turns the map off.",
    ),
    "MAP_TILE_ATTRIBUTION": (
        "© OpenStreetMap contributors",
        "Attribution shown on the map for the tile server.",
    ),
    "CONTACT_EMAIL": (
        None,
        "Address where people may write to the directory's volunteers: shown on the about page "
        "and after a suggestion. Unset: the site shows no address and does not invite people to "
        "write.",
    ),
    "REVIEW_DAYS": (
        "7",
        "What the page after a suggestion promises: a volunteer usually checks it within this "
        "many days.",
    ),
    "INSTANCE_PATH": (
        None,
        "Folder for what the app writes beside its data: the generated secret key, the offline "
        "gazetteer file and the default SQLite database. Default: instance/ in a checkout, "
        "<virtualenv>/var/directory-instance when installed; set it so the code can be "
        "read-only.",
    ),
    "LOG_LEVEL": (
        "INFO",
        "Level of the log on standard error (DEBUG, INFO, WARNING, ERROR). At INFO each request "
        "is one JSON line: request id, method, path, status, milliseconds; no query, form or "
        "full client address.",
    ),
    "TRUST_PROXY_HOPS": (
        "0",
        "How many reverse proxies sit in front of the app (so the client address used for rate "
        "limits is the real one). 0 when the app is reached directly.",
    ),
}


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return SETTINGS[name][0]
    return value


def _int(name: str) -> int:
    raw = _env(name)
    try:
        return int(raw or "0")
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}.") from None


def _float(name: str) -> float:
    raw = _env(name)
    try:
        return float(raw or "0")
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}.") from None


def _bool(name: str) -> bool:
    raw = (_env(name) or "").strip().lower()
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}.")


def _contact_email() -> str | None:
    raw = (_env("CONTACT_EMAIL") or "").strip()
    if not raw:
        return None
    # It goes into a mailto: link on every confirmation: refuse what isn't one plain address.
    local, at, domain = raw.partition("@")
    if not (local and at and "." in domain) or any(c in raw for c in " ,;<>\"'?&/:"):
        raise ConfigError(f"CONTACT_EMAIL must be one email address, got {raw!r}.")
    return raw


def _log_level() -> str:
    level = (_env("LOG_LEVEL") or "INFO").strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}.")
    return level


def _secret_key(instance_path: Path, allow_generated: bool) -> str:
    key = _env("SECRET_KEY")
    if key:
        return key
    if not allow_generated:
        raise ConfigError(
            "SECRET_KEY is not set. Set it to a long random string "
            "(python -c 'import secrets; print(secrets.token_hex(32))'), "
            "or set DIRECTORY_ENV=development on your own machine."
        )
    # Generated once and kept, so sessions survive restarts of the development server.
    key_file = instance_path / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    key = secrets.token_hex(32)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def _public_url(required: bool) -> tuple[str | None, str | None]:
    """(scheme, host[:port]) from PUBLIC_URL, or (None, None) when it is not set."""
    raw = (_env("PUBLIC_URL") or "").strip()
    if not raw:
        if required:
            raise ConfigError(
                "PUBLIC_URL is not set. Set it to the site's address as the public sees it "
                "(e.g. https://ldn.example.org), or set DIRECTORY_ENV=development on your own "
                "machine."
            )
        return None, None
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.path.strip("/"):
        raise ConfigError(
            f"PUBLIC_URL must be an address like https://ldn.example.org (no path), got {raw!r}."
        )
    return parts.scheme, parts.netloc.lower()


def _trusted_hosts(public_host: str | None, development: bool) -> list[str] | None:
    raw = _env("TRUSTED_HOSTS")
    if raw:
        hosts = [h.strip().lower() for h in raw.split(",") if h.strip()]
        return None if hosts == ["*"] else hosts
    if development or public_host is None:
        return None  # a developer's machine answers to 127.0.0.1, localhost, anything
    return [public_host.split(":")[0]]


def from_environment(instance_path: Path, *, testing: bool = False) -> dict[str, object]:
    env = (_env("DIRECTORY_ENV") or "production").lower()
    if env not in {"production", "development"}:
        raise ConfigError(f"DIRECTORY_ENV must be 'production' or 'development', got {env!r}.")
    development = env == "development"
    debug = os.environ.get("FLASK_DEBUG", "") not in {"", "0", "false"}
    database_url = _env("DATABASE_URL") or f"sqlite:///{instance_path / 'directory.db'}"
    if database_url.startswith(
        "postgres://"
    ):  # Heroku-style URLs name a dialect SQLAlchemy dropped
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgres://")
    elif database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    secret_key = _secret_key(instance_path, development or debug or testing)
    scheme, public_host = _public_url(required=not (development or debug or testing))
    return {
        "DIRECTORY_ENV": env,
        "PUBLIC_URL": f"{scheme}://{public_host}" if public_host else None,
        # Flask's own: absolute URLs outside a request (the CLI's exports) use these too.
        "SERVER_NAME": public_host,
        "PREFERRED_URL_SCHEME": scheme or "http",
        "TRUSTED_HOSTS": _trusted_hosts(public_host, development),
        "PENDING_SUBMISSIONS_PER_ADDRESS": _int("PENDING_SUBMISSIONS_PER_ADDRESS"),
        "PENDING_SUBMISSIONS_MAX": _int("PENDING_SUBMISSIONS_MAX"),
        "SECRET_KEY": secret_key,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "GEOCODER": (_env("GEOCODER") or "offline").lower(),
        "GEOCODER_USER_AGENT": _env("GEOCODER_USER_AGENT"),
        "GEOCODER_DOMAIN": _env("GEOCODER_DOMAIN"),
        "GEOCODER_TIMEOUT": _float("GEOCODER_TIMEOUT"),
        "RATELIMIT_STORAGE_URI": _env("RATELIMIT_STORAGE_URI"),
        "RATELIMIT_ENABLED": _bool("RATELIMIT_ENABLED"),
        "SUBMISSION_RATE_LIMIT": _env("SUBMISSION_RATE_LIMIT"),
        "LOGIN_RATE_LIMIT": _env("LOGIN_RATE_LIMIT"),
        "DOWNLOAD_RATE_LIMIT": _env("DOWNLOAD_RATE_LIMIT"),
        "MAX_CONTENT_LENGTH": _int("MAX_CONTENT_LENGTH"),
        "MAP_TILE_URL": _env("MAP_TILE_URL") or "",
        "MAP_TILE_ATTRIBUTION": _env("MAP_TILE_ATTRIBUTION") or "",
        "CONTACT_EMAIL": _contact_email(),
        "REVIEW_DAYS": _int("REVIEW_DAYS"),
        "TRUST_PROXY_HOPS": _int("TRUST_PROXY_HOPS"),
        "LOG_LEVEL": _log_level(),
        # Cookies: HttpOnly and SameSite always; Secure whenever we are not on a developer's laptop.
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": not development,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SECURE": not development,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": 8 * 3600,
        "WTF_CSRF_TIME_LIMIT": 4 * 3600,
        "HSTS": not development,
    }


def shared_limits_problem(workers: int) -> str | None:
    """Why this server must not start with `workers` processes, or None. In production each
    worker would keep its own memory:// counters, so every limit would be `workers` times
    looser than it says (and a lockout would depend on which worker answers)."""
    env = (_env("DIRECTORY_ENV") or "production").lower()
    storage = (_env("RATELIMIT_STORAGE_URI") or "").strip()
    if env != "production" or workers <= 1 or not storage.startswith("memory://"):
        return None
    if not _bool("RATELIMIT_ENABLED"):
        return None  # limits are off (load tests): nothing to share
    return (
        f"LDN Directory cannot start: {workers} workers would each keep their own rate limits "
        "(RATELIMIT_STORAGE_URI is memory://). Set RATELIMIT_STORAGE_URI=redis://host:6379/0 "
        "so they share one count, or run one worker."
    )
