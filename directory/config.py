"""Settings, read from the environment once at start-up.

Every setting the app reads is listed in SETTINGS with its default and meaning; README.md
documents each one and tests/test_config.py fails when one is missing there.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


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
    "SUBMISSION_RATE_LIMIT": ("10 per hour", "Public submissions allowed per client address."),
    "LOGIN_RATE_LIMIT": (
        "10 per 15 minutes",
        "Failed-login budget, counted per client address and per account.",
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
    return {
        "DIRECTORY_ENV": env,
        "SECRET_KEY": _secret_key(instance_path, development or debug or testing),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "GEOCODER": (_env("GEOCODER") or "offline").lower(),
        "GEOCODER_USER_AGENT": _env("GEOCODER_USER_AGENT"),
        "GEOCODER_DOMAIN": _env("GEOCODER_DOMAIN"),
        "GEOCODER_TIMEOUT": _float("GEOCODER_TIMEOUT"),
        "RATELIMIT_STORAGE_URI": _env("RATELIMIT_STORAGE_URI"),
        "RATELIMIT_ENABLED": _bool("RATELIMIT_ENABLED"),
        "SUBMISSION_RATE_LIMIT": _env("SUBMISSION_RATE_LIMIT"),
        "LOGIN_RATE_LIMIT": _env("LOGIN_RATE_LIMIT"),
        "MAX_CONTENT_LENGTH": _int("MAX_CONTENT_LENGTH"),
        "MAP_TILE_URL": _env("MAP_TILE_URL") or "",
        "MAP_TILE_ATTRIBUTION": _env("MAP_TILE_ATTRIBUTION") or "",
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
