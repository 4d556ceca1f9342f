"""What an operator relies on: readiness, the request log, and a database that fails gives a
503 that keeps what was typed, never a traceback."""

from __future__ import annotations

import json
import logging
import sqlite3
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from setuptools import find_packages
from sqlalchemy import func, select

from directory import db as directory_db
from directory import geocoding
from directory.extensions import db
from directory.models import Submission
from directory.resources import folder
from tests.conftest import html, make_app
from tests.test_submit import pharmacy_form

ROOT = Path(__file__).resolve().parent.parent


# --- packaging -------------------------------------------------------------------------


def test_every_subpackage_is_in_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set(find_packages(str(ROOT), include=["directory", "directory.*"]))
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    for name, source in config["package-dir"].items():
        assert name in listed and (ROOT / source).is_dir()


def test_a_checkout_reads_the_top_level_folders() -> None:
    for name in ("templates", "seeds", "migrations"):
        assert folder(name) == ROOT / name


# --- readiness -------------------------------------------------------------------------


def test_healthz_is_trivial_and_readyz_checks_database_and_gazetteer(client) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {
        "status": "ready",
        "checks": {"database": {"status": "ok"}, "gazetteer": {"status": "ok"}},
    }


def test_readyz_names_a_database_without_the_schema(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path}/empty.db")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["status"] == "not ready"
    assert response.json["checks"]["database"]["status"] == "failing"
    assert "init-db" in response.json["checks"]["database"]["detail"]
    assert response.json["checks"]["gazetteer"] == {"status": "ok"}


def test_readyz_names_a_database_at_an_older_revision(tmp_path: Path) -> None:
    from flask_migrate import upgrade

    app = make_app(f"sqlite:///{tmp_path}/old.db")
    with app.app_context():
        upgrade(revision="0003")
        db.engine.dispose()
    detail = app.test_client().get("/readyz").json["checks"]["database"]["detail"]
    assert "the schema is at 0003" in detail


def test_readyz_names_a_missing_gazetteer(client, tmp_path: Path) -> None:
    geocoding.set_data_dir(tmp_path)  # an instance folder where nothing was built
    try:
        response = client.get("/readyz")
    finally:
        geocoding.set_data_dir(None)
    assert response.status_code == 503
    assert response.json["checks"]["database"] == {"status": "ok"}
    assert response.json["checks"]["gazetteer"]["status"] == "failing"


def test_readyz_says_when_the_database_is_down() -> None:
    app = make_app(_closed_port_url())
    assert app.test_client().get("/healthz").status_code == 200, "liveness needs no database"
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"]["detail"].startswith("cannot reach the database")


# --- the request log -------------------------------------------------------------------


def _request_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [r.request for r in caplog.records if r.name == "directory.requests"]


def test_each_request_is_one_log_record_without_personal_data(
    client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="directory.requests"):
        search = client.get("/search?near=98101&condition=fibromyalgia")
        sent = client.post(
            "/suggest/pharmacy",
            data=pharmacy_form(name="Very Private Name", submitter_email="me@example.org"),
            environ_base={"REMOTE_ADDR": "203.0.113.77"},
        )
    lines = _request_lines(caplog)
    assert len(lines) == 2
    first, second = lines
    assert set(first) == {"time", "request_id", "method", "path", "status", "ms", "client"}
    assert first["method"] == "GET" and first["path"] == "/search" and first["status"] == 200
    assert first["request_id"] == search.headers["X-Request-ID"]
    assert second["status"] == 303 and second["client"] == "203.0.113.0/24"
    assert second["request_id"] == sent.headers["X-Request-ID"]
    assert first["request_id"] != second["request_id"]
    written = json.dumps(lines)
    for private in ("98101", "fibromyalgia", "Very Private", "me@example.org", "203.0.113.77"):
        assert private not in written


def test_a_sane_incoming_request_id_is_kept_and_a_strange_one_replaced(
    client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="directory.requests"):
        kept = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a9c21.0001"})
        replaced = client.get("/healthz", headers={"X-Request-ID": 'x" onmouseover="y' * 3})
    assert kept.headers["X-Request-ID"] == "lb-7f3a9c21.0001"
    assert len(replaced.headers["X-Request-ID"]) == 32
    assert '"' not in replaced.headers["X-Request-ID"]
    assert [line["request_id"] for line in _request_lines(caplog)] == [
        "lb-7f3a9c21.0001",
        replaced.headers["X-Request-ID"],
    ]


def test_log_level_warning_drops_the_request_lines(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(database_url, LOG_LEVEL="WARNING")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("directory.requests").setLevel(logging.WARNING)
        app.test_client().get("/healthz")
    assert _request_lines(caplog) == []
    logging.getLogger("directory.requests").setLevel(logging.INFO)


def test_the_client_address_is_cut_to_its_network() -> None:
    from directory.requestlog import masked

    assert masked("198.51.100.23") == "198.51.100.0/24"
    assert masked("2001:db8:1234:5678::1") == "2001:db8:1234::/48"
    assert masked("not an address") is None


# --- the database fails ----------------------------------------------------------------


def _closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens there now: connecting is refused at once, as when PostgreSQL is down.
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/nothing?connect_timeout=2"


@pytest.fixture
def locked(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The app, with another connection holding the database's write lock throughout."""
    monkeypatch.setattr(directory_db, "BUSY_TIMEOUT_MS", 300)  # not 10 s per request
    app = make_app(sqlite_url)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield app
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        with app.app_context():
            db.engine.dispose()


def test_a_locked_database_answers_503_and_keeps_what_was_typed(locked: Flask) -> None:
    typed = pharmacy_form(name="Locked Out Pharmacy", note="Call before noon, ask for Sam")
    response = locked.test_client().post("/suggest/pharmacy", data=typed)
    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    page = html(response)
    assert "Traceback" not in response.text
    assert "try again" in page.h1.text.lower()
    resend = page.select_one("form.resend")
    assert resend is not None and resend["action"] == "/suggest/pharmacy"
    hidden = [(i["name"], i["value"]) for i in resend.select("input[type=hidden]")]
    assert ("name", "Locked Out Pharmacy") in hidden
    assert ("note", "Call before noon, ask for Sam") in hidden
    assert ("ships_to", "US-AL") in hidden and ("ships_to", "US-GA") in hidden
    assert [n for n, _ in hidden].count("csrf_token") == 1
    assert "Call before noon, ask for Sam" in page.select_one("dl.typed").text


def test_the_resend_button_sends_it_once_the_lock_is_gone(sqlite_url, monkeypatch) -> None:
    monkeypatch.setattr(directory_db, "BUSY_TIMEOUT_MS", 300)
    app = make_app(sqlite_url)
    client = app.test_client()
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    failed = client.post("/suggest/pharmacy", data=pharmacy_form(name="Second Try Pharmacy"))
    holder.execute("ROLLBACK")
    holder.close()
    assert failed.status_code == 503
    form = html(failed).select_one("form.resend")
    data: dict[str, list[str]] = {}
    for field in form.select("input[type=hidden]"):
        data.setdefault(field["name"], []).append(field["value"])
    again = client.post(form["action"], data=data)
    assert again.status_code == 303
    with app.app_context():
        names = [s.data["name"] for s in db.session.scalars(select(Submission))]
        db.engine.dispose()
    assert names == ["Second Try Pharmacy"]


def test_a_password_is_never_written_back(locked: Flask) -> None:
    from directory.errors import _NOT_RESENT

    assert "password" in _NOT_RESENT
    with locked.test_request_context(
        "/login", method="POST", data={"username": "mod", "password": "secret words"}
    ):
        from directory.errors import _typed_fields

        assert _typed_fields() == [("username", "mod")]


def test_the_database_down_under_the_api_is_a_json_503() -> None:
    response = make_app(_closed_port_url()).test_client().get("/api/v1/search?near=98101")
    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    assert response.json["error"]["code"] == "unavailable"
    assert set(response.json) == {"error"} and response.json["error"]["message"]


def test_postgresql_down_is_a_503_page_not_a_traceback() -> None:
    client = make_app(_closed_port_url()).test_client()
    page = client.get("/search?near=98101")
    assert page.status_code == 503
    assert page.headers["Retry-After"].isdigit()
    assert "Traceback" not in page.text and "psycopg" not in page.text
    assert html(page).h1.text.strip() == "Please try again in a minute"
    posted = client.post("/suggest/pharmacy", data=pharmacy_form(name="While Down"))
    assert posted.status_code == 503
    assert "While Down" in html(posted).select_one("dl.typed").text


def test_nothing_is_stored_by_a_post_that_got_a_503(locked: Flask, sqlite_url: str) -> None:
    locked.test_client().post("/suggest/pharmacy", data=pharmacy_form(name="Never Half"))
    app = make_app(sqlite_url)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Submission)) == 0
        db.engine.dispose()
