"""Fixtures: a real database per test (SQLite file, or PostgreSQL when TEST_DATABASE_URL is set),
the app, a client and a CLI runner, signing in (`auth`), and a live server for browser tests.
Helpers: `html(response)` and `texts(response, selector)` read a page through real selectors."""

from __future__ import annotations

import contextvars
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from flask import Flask, has_app_context
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, text
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from directory import create_app
from directory.config import SETTINGS
from directory.extensions import db
from directory.models import Role, User

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
if PG_URL.startswith("postgresql://"):
    PG_URL = "postgresql+psycopg://" + PG_URL.removeprefix("postgresql://")

# Tables whose rows tests create; vocabularies (loaded once) and alembic_version stay.
DATA_TABLES = [
    "audit_log",
    "submissions",
    "verifications",
    "reliability_flags",
    "listing_regions",
    "listing_fillers",
    "listing_dosage_forms",
    "listing_conditions",
    "listings",
    "geocode_cache",
    "users",
]

# What the app reads from the environment: its settings, and FLASK_DEBUG (config.py reads it too).
APP_ENVIRONMENT = frozenset([*SETTINGS, "FLASK_DEBUG"])


@pytest.fixture(scope="session", autouse=True)
def no_settings_from_the_shell() -> Iterator[None]:
    """A setting exported in the shell (DIRECTORY_ENV=development after `make run`) must not
    change what a test sees: tests that want a setting set it with monkeypatch."""
    with pytest.MonkeyPatch.context() as mp:
        for name in APP_ENVIRONMENT:
            mp.delenv(name, raising=False)
        yield


def clean_env(**settings: str) -> dict[str, str]:
    """The environment for a child process: this one without the app's settings, plus these."""
    return {k: v for k, v in os.environ.items() if k not in APP_ENVIRONMENT} | settings


BASE_CONFIG: dict[str, Any] = {
    "TESTING": True,
    "SECRET_KEY": "test-secret-key-not-for-production",
    "WTF_CSRF_ENABLED": False,
    "RATELIMIT_ENABLED": False,
    "RATELIMIT_STORAGE_URI": "memory://",
    "SESSION_COOKIE_SECURE": False,
    "REMEMBER_COOKIE_SECURE": False,
    # A quarter of the production scrypt cost (N=2**15, not 2**17): the suite creates hundreds
    # of accounts. test_hardening checks the production cost itself.
    "PASSWORD_HASH_METHOD": "scrypt:32768:8:1",
}


def make_app(database_url: str, **overrides: Any) -> Flask:
    app = create_app({**BASE_CONFIG, "SQLALCHEMY_DATABASE_URI": database_url, **overrides})
    app.test_client_class = IsolatedClient
    return app


def build_schema(database_url: str) -> None:
    """Migrations from empty, then the vocabularies (no samples)."""
    from flask_migrate import upgrade

    from directory import seeding

    app = make_app(database_url)
    with app.app_context():
        upgrade()
        seeding.load(samples=False)
        db.session.remove()
        db.engine.dispose()


def reset_postgres(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
        # PostGIS lived in the schema just dropped; the migrations create it too, but the
        # extension needs a superuser (or a trusted install) that the app's role may not be.
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    engine.dispose()


@pytest.fixture(scope="session")
def template_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    if PG_URL:
        reset_postgres(PG_URL)
        build_schema(PG_URL)
        return PG_URL
    path = tmp_path_factory.mktemp("template") / "template.db"
    build_schema(f"sqlite:///{path}")
    return str(path)


@pytest.fixture
def database_url(template_database: str, tmp_path: Path) -> Iterator[str]:
    if PG_URL:
        yield PG_URL
        engine = create_engine(PG_URL)
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE"))
        engine.dispose()
    else:
        # A copy of the migrated template: a fresh real SQLite file per test, in milliseconds.
        path = tmp_path / "test.db"
        shutil.copyfile(template_database, path)
        yield f"sqlite:///{path}"


@pytest.fixture(scope="module")
def shared_client(
    template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FlaskClient]:
    """One app per module for bad-input cases, which read and write no data: a fresh app
    per case would cost a tenth of a second each."""
    if PG_URL:
        url = PG_URL
    else:
        path = tmp_path_factory.mktemp("shared") / "shared.db"
        shutil.copyfile(template_database, path)
        url = f"sqlite:///{path}"
    app = make_app(url)
    yield app.test_client()
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    app = make_app(database_url)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


class IsolatedClient(FlaskClient):
    """Each request runs in its own app context, as in production: its own database session
    and its own `g` (Flask-Login caches the user there). The test's own session is committed
    first so the request sees the test's data, and expired after so the test sees the request's
    writes."""

    def open(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if has_app_context():
            db.session.commit()
        response = contextvars.Context().run(super().open, *args, **kwargs)
        if has_app_context():
            db.session.expire_all()
        return response


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


PASSWORD = "correct horse battery"


class AuthActions:
    """Accounts and signing in through the real login form, as in Flask's tutorial."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def create(
        self, name: str = "mod", role: Role = Role.MODERATOR, password: str = PASSWORD
    ) -> User:
        from tests import builders

        return builders.user(name, password, role)

    def login(
        self, name: str = "mod", password: str = PASSWORD, next_url: str = ""
    ) -> TestResponse:
        return self.client.post(
            "/login", data={"username": name, "password": password, "next": next_url}
        )

    def logout(self) -> TestResponse:
        return self.client.post("/logout")

    def sign_in_as(self, name: str = "mod", role: Role = Role.MODERATOR) -> User:
        """A new account of this role, signed in on the client."""
        account = self.create(name, role)
        response = self.login(name)
        assert response.status_code == 303, response.get_data(as_text=True)
        return account


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


def html(response: TestResponse) -> BeautifulSoup:
    return BeautifulSoup(response.data, "html.parser")


def texts(response: TestResponse, selector: str) -> list[str]:
    """The text of every element the CSS selector matches, whitespace collapsed."""
    return [" ".join(node.get_text(" ").split()) for node in html(response).select(selector)]


@pytest.fixture
def seeded(app: Flask) -> Flask:
    """The app with the sample data set loaded."""
    from directory import seeding

    seeding.load()
    return app


class LiveServer:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


@pytest.fixture
def live_app(database_url: str) -> Flask:
    """An app for a live server: its own app object, with CSRF on as in production."""
    return make_app(database_url, WTF_CSRF_ENABLED=True, MAP_TILE_URL="")


@pytest.fixture
def live_server(live_app: Flask) -> Iterator[LiveServer]:
    with live_app.app_context():
        from directory import seeding

        seeding.load()
        db.session.remove()
    with LiveServer(live_app) as server:
        yield server
    with live_app.app_context():
        db.engine.dispose()


@pytest.fixture
def sqlite_url(template_database: str, tmp_path: Path) -> str:
    """A migrated SQLite file, on the PostgreSQL run too (a lock is SQLite's failure)."""
    path = tmp_path / "locked.db"
    if PG_URL:
        build_schema(f"sqlite:///{path}")
    else:
        shutil.copyfile(template_database, path)
    return f"sqlite:///{path}"
