"""Issue 12's security findings, each with the test that failed before its fix: lockouts,
sessions that end, one submission budget, safe CSV and names, the Host header, password cost,
roles, and a cap on pending submissions."""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from directory import models, moderation
from directory.extensions import db
from directory.models import AuditEntry, Role, Submission
from tests import builders
from tests.conftest import PASSWORD, html, make_app
from tests.test_submit import pharmacy_form, post, sent_reference

# --- lockout ----------------------------------------------------------------------------------


def _login(client, name: str, password: str, addr: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/login",
        data={"username": name, "password": password},
        environ_base={"REMOTE_ADDR": addr},
    )


def test_wrong_passwords_from_many_addresses_dont_lock_out_the_owner(database_url, caplog) -> None:
    app = make_app(database_url, RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="10 per 15 minutes")
    with app.app_context():
        builders.user("mod")
        client = app.test_client()
        with caplog.at_level(logging.WARNING):
            for i in range(12):
                assert (
                    _login(client, "mod", "wrong password!!", f"203.0.113.{i}").status_code == 401
                )
        # The account's count only alerts: the owner, from their own address, still signs in.
        assert _login(app.test_client(), "mod", PASSWORD, "198.51.100.1").status_code == 303
        assert any("failed sign-ins for account" in r.getMessage() for r in caplog.records)
        db.session.remove()
        db.engine.dispose()


def test_failed_logins_are_limited_per_address_and_per_account_and_address(database_url) -> None:
    app = make_app(database_url, RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="3 per hour")
    with app.app_context():
        builders.user("mod")
        builders.user("other")
        client = app.test_client()
        for _ in range(3):
            assert _login(client, "mod", "wrong password!!", "203.0.113.9").status_code == 401
        # That address is paused, whichever account it tries next.
        assert _login(client, "mod", PASSWORD, "203.0.113.9").status_code == 429
        assert _login(client, "other", PASSWORD, "203.0.113.9").status_code == 429
        # Behind a proxy, the forwarded address is the one counted.
        proxied = make_app(
            database_url,
            RATELIMIT_ENABLED=True,
            LOGIN_RATE_LIMIT="3 per hour",
            TRUST_PROXY_HOPS=1,
        )
        pc = proxied.test_client()
        for _ in range(3):
            response = pc.post(
                "/login",
                data={"username": "other", "password": "wrong password!!"},
                headers={"X-Forwarded-For": "192.0.2.50"},
            )
            assert response.status_code == 401
        blocked = pc.post(
            "/login",
            data={"username": "other", "password": PASSWORD},
            headers={"X-Forwarded-For": "192.0.2.50"},
        )
        assert blocked.status_code == 429
        fine = pc.post(
            "/login",
            data={"username": "other", "password": PASSWORD},
            headers={"X-Forwarded-For": "192.0.2.51"},
        )
        assert fine.status_code == 303
        db.session.remove()
        db.engine.dispose()


# --- sessions end server-side -------------------------------------------------------------------


def _copied_cookie(client) -> str:  # type: ignore[no-untyped-def]
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def _with_cookie(app, value: str):  # type: ignore[no-untyped-def]
    other = app.test_client()
    other.set_cookie("session", value)
    return other.get("/moderation/")


def test_a_cookie_copied_before_logout_opens_nothing_after(app, client, auth) -> None:
    auth.sign_in_as("mod")
    copied = _copied_cookie(client)
    assert _with_cookie(app, copied).status_code == 200
    assert auth.logout().status_code == 303
    assert _with_cookie(app, copied).status_code == 302


def test_a_cookie_copied_before_a_password_change_opens_nothing_after(app, client, auth) -> None:
    auth.sign_in_as("mod")
    copied = _copied_cookie(client)
    moderation.save_account("mod", "another long password", None, actor_label="test")
    assert _with_cookie(app, copied).status_code == 302


def test_a_cookie_copied_before_deactivation_opens_nothing_after(app, client, auth) -> None:
    admin = auth.create("boss", Role.ADMIN)
    mod = auth.sign_in_as("mod")
    copied = _copied_cookie(client)
    moderation.set_account_active(mod.id, False, actor=admin)
    moderation.set_account_active(mod.id, True, actor=admin)  # back on: the old cookie stays dead
    assert _with_cookie(app, copied).status_code == 302


# --- one budget for accepted submissions --------------------------------------------------------


def test_one_budget_for_new_listings_and_corrections_counting_only_accepted(database_url) -> None:
    app = make_app(database_url, RATELIMIT_ENABLED=True, SUBMISSION_RATE_LIMIT="2 per hour")
    with app.app_context():
        listing = builders.pharmacy(name="Listed Pharmacy")
        client = app.test_client()
        for _ in range(5):  # typos cost nothing
            assert post(client, "pharmacy", pharmacy_form(name="")).status_code == 400
        sent_reference(post(client, "pharmacy", pharmacy_form(name="First Pharmacy")))
        correction = pharmacy_form(name="Listed Pharmacy Renamed", problem="wrong_details")
        sent_reference(client.post(f"/suggest/correction/{listing.id}", data=correction))
        # The budget is shared: a third accepted submission of either kind is refused.
        assert post(client, "pharmacy", pharmacy_form(name="Third Pharmacy")).status_code == 429
        again = {**correction, "name": "Another Name"}
        assert client.post(f"/suggest/correction/{listing.id}", data=again).status_code == 429
        assert db.session.scalar(select(func.count()).select_from(Submission)) == 2
        db.session.remove()
        db.engine.dispose()


def test_ratelimit_enabled_false_switches_every_limit_off(database_url) -> None:
    app = make_app(
        database_url,
        RATELIMIT_ENABLED=False,
        SUBMISSION_RATE_LIMIT="1 per hour",
        LOGIN_RATE_LIMIT="1 per hour",
    )
    with app.app_context():
        builders.user("mod")
        client = app.test_client()
        for i in range(3):
            sent_reference(post(client, "pharmacy", pharmacy_form(name=f"Pharmacy {i}")))
        for _ in range(3):
            assert _login(client, "mod", "wrong password!!", "203.0.113.1").status_code == 401
        assert _login(client, "mod", PASSWORD, "203.0.113.1").status_code == 303
        db.session.remove()
        db.engine.dispose()


# --- CSV cells and names ------------------------------------------------------------------------


def test_every_text_cell_of_the_audit_csv_is_formula_safe(client, auth) -> None:
    admin = auth.sign_in_as("boss", Role.ADMIN)
    for actor, action, reason in (
        ("=cmd|' /C calc'!A0", "+SUM(1)", "-2+3"),
        ("@SUM(A1)", "\tTAB", "\rCR"),
    ):
        db.session.add(
            AuditEntry(actor_id=admin.id, actor_label=actor, action=action, reason=reason)
        )
    db.session.commit()
    rows = list(csv.reader(io.StringIO(client.get("/moderation/audit.csv").get_data(True))))
    header, body = rows[0], rows[1:]
    text_columns = [header.index(c) for c in ("actor", "action", "reason", "before", "after")]
    assert len(body) >= 2
    for row in body:
        for i in text_columns:
            assert not row[i].startswith(("=", "+", "-", "@", "\t", "\r")), (header[i], row[i])


@pytest.mark.parametrize("name", ["=cmd", "bob smith", "al<script>", "ann@example", "é-lise"])
def test_new_usernames_are_letters_digits_and_dot_dash_underscore(app, name: str) -> None:
    with pytest.raises(moderation.InvalidCredentials, match="letters, digits"):
        moderation.save_account(name, PASSWORD, Role.MODERATOR)
    assert moderation.save_account("Ann.B-2_x", PASSWORD, Role.MODERATOR)[1]


def test_an_existing_odd_name_still_signs_in_and_can_be_reset(app, auth, runner) -> None:
    builders.user("old name", PASSWORD)  # made before the rule
    assert auth.login("old name").status_code == 303
    reset = runner.invoke(
        args=["create-moderator", "old name", "--password-stdin"], input="a new long password\n"
    )
    assert reset.exit_code == 0, reset.output
    refused = runner.invoke(
        args=["create-moderator", "new=name", "--password-stdin"], input=PASSWORD
    )
    assert refused.exit_code == 1 and "letters, digits" in refused.output


def test_the_accounts_form_refuses_odd_names(client, auth) -> None:
    auth.sign_in_as("boss", Role.ADMIN)
    response = client.post(
        "/moderation/accounts",
        data={"username": "=evil", "password": PASSWORD, "role": "moderator"},
    )
    assert response.status_code == 400
    assert "letters, digits" in html(response).select_one("#username-error").get_text()
    assert html(response).select_one("input[name=username]")["value"] == "=evil"


# --- Host header --------------------------------------------------------------------------------


def _production_app(database_url: str, monkeypatch, **env: str):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DIRECTORY_ENV", "production")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return make_app(database_url)


def test_absolute_urls_use_public_url_whatever_the_host_header(database_url, monkeypatch) -> None:
    app = _production_app(
        database_url, monkeypatch, PUBLIC_URL="https://ldn.example.org", TRUSTED_HOSTS="*"
    )
    with app.app_context():
        listing = builders.pharmacy(name="Host Pharmacy")
        client = app.test_client()
        evil = {"Host": "evil.example.com"}
        api = client.get(f"/api/v1/listings/{listing.id}", headers=evil).get_json()
        assert api["url"].startswith("https://ldn.example.org/pharmacies/")
        page = client.get(f"/pharmacies/{listing.id}", headers=evil, follow_redirects=True)
        assert "evil.example.com" not in page.get_data(as_text=True)
        ld = json.loads(html(page).select_one("script[type='application/ld+json']").string)
        assert ld["url"].startswith("https://ldn.example.org/pharmacies/")
        results = client.get("/search?near=35233&radius=50", headers=evil)
        print_links = [a["data-print-url"] for a in html(results).select("a[data-print-url]")]
        assert print_links
        assert all(u.startswith("https://ldn.example.org/") for u in print_links)
        hsds = client.get("/api/hsds/v3/services?per_page=5", headers=evil).get_data(as_text=True)
        assert "evil.example.com" not in hsds and "https://ldn.example.org/" in hsds
        # Outside a request (the CLI's exports) too.
        from directory.listings import detail_url

        assert detail_url(listing, _external=True).startswith("https://ldn.example.org/")
        db.session.remove()
        db.engine.dispose()


def test_unknown_hosts_are_refused_in_production(database_url, monkeypatch) -> None:
    app = _production_app(database_url, monkeypatch, PUBLIC_URL="https://ldn.example.org")
    with app.app_context():
        client = app.test_client()
        assert client.get("/healthz", headers={"Host": "evil.example.com"}).status_code == 400
        assert client.get("/healthz", headers={"Host": "ldn.example.org"}).status_code == 200
        db.session.remove()
        db.engine.dispose()


def test_development_works_on_localhost(database_url, monkeypatch) -> None:
    monkeypatch.setenv("DIRECTORY_ENV", "development")
    app = make_app(database_url)
    with app.app_context():
        client = app.test_client()
        for host in ("127.0.0.1:5000", "localhost:5000", "localhost"):
            assert client.get("/healthz", headers={"Host": host}).status_code == 200
        db.session.remove()
        db.engine.dispose()


def test_production_needs_public_url(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import clean_env

    code = "from directory import create_app; create_app(); print('started')"
    root = Path(__file__).resolve().parent.parent
    env = clean_env(SECRET_KEY="x" * 40, HOME=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "PUBLIC_URL is not set" in result.stderr and "Traceback" not in result.stderr


# --- password hashing ---------------------------------------------------------------------------


def test_passwords_are_hashed_at_owasps_scrypt_cost(app) -> None:
    from directory.moderation.accounts import PASSWORD_HASH_METHOD

    assert PASSWORD_HASH_METHOD == "scrypt:131072:8:1"
    app.config["PASSWORD_HASH_METHOD"] = PASSWORD_HASH_METHOD
    user = builders.user("mod")
    assert user.password_hash.startswith("scrypt:131072:8:1$")


def test_an_old_hash_still_verifies_and_is_upgraded_at_sign_in(app, auth) -> None:
    from werkzeug.security import generate_password_hash

    user = builders.user("mod")
    user.password_hash = generate_password_hash(PASSWORD, method="scrypt:32768:8:1")
    db.session.commit()
    version = user.session_version
    assert auth.login("mod").status_code == 303
    db.session.refresh(user)
    assert user.password_hash.startswith(app.config["PASSWORD_HASH_METHOD"] + "$")
    assert user.check_password(PASSWORD)
    assert user.session_version == version  # an upgrade signs nobody out


# --- roles --------------------------------------------------------------------------------------


def test_an_admin_changes_a_role_and_it_is_audited(client, auth) -> None:
    auth.sign_in_as("boss", Role.ADMIN)
    mod = auth.create("mod")
    page = html(client.get("/moderation/accounts"))
    assert page.select_one(f"form[action='/moderation/accounts/{mod.id}/role'] select[name=role]")
    response = client.post(f"/moderation/accounts/{mod.id}/role", data={"role": "admin"})
    assert response.status_code == 303
    db.session.refresh(mod)
    assert mod.role == Role.ADMIN
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "role_changed"))
    assert entry is not None and entry.actor_label == "boss"
    assert entry.before == {"username": "mod", "role": "moderator"}
    assert entry.after == {"username": "mod", "role": "admin"}


def test_a_moderator_cannot_change_roles(client, auth) -> None:
    auth.sign_in_as("mod")
    other = auth.create("other")
    response = client.post(f"/moderation/accounts/{other.id}/role", data={"role": "admin"})
    assert response.status_code == 403
    db.session.refresh(other)
    assert other.role == Role.MODERATOR


def test_the_last_admin_cannot_demote_themselves(client, auth) -> None:
    boss = auth.sign_in_as("boss", Role.ADMIN)
    response = client.post(f"/moderation/accounts/{boss.id}/role", data={"role": "moderator"})
    assert response.status_code == 400
    assert "last admin" in response.get_data(as_text=True)
    db.session.refresh(boss)
    assert boss.role == Role.ADMIN
    bad = client.post(f"/moderation/accounts/{boss.id}/role", data={"role": "emperor"})
    assert bad.status_code == 400


@pytest.mark.parametrize("change", ["demote", "deactivate"])
def test_two_admins_removing_each_other_at_once_leave_one_admin(database_url, change) -> None:
    """Real threads with their own connections: A demotes (or deactivates) B while B does the
    same to A. Each alone is allowed; together they would leave no admin, so one must fail."""
    from directory.moderation import accounts

    app = make_app(database_url)
    with app.app_context():
        a, b = (builders.user(name, PASSWORD, "admin").id for name in ("ann", "bob"))
    for _round in range(5):  # a race: several rounds, so a lucky interleaving can't hide it
        barrier = threading.Barrier(2)
        refused: list[str] = []

        def act(
            actor_id: int,
            target_id: int,
            barrier: threading.Barrier = barrier,
            refused: list[str] = refused,
        ) -> None:
            with app.app_context():
                actor = db.session.get(models.User, actor_id)
                barrier.wait()
                try:
                    if change == "demote":
                        accounts.set_role(target_id, Role.MODERATOR, actor=actor)
                    else:
                        accounts.set_account_active(target_id, False, actor=actor)
                except moderation.ModerationError as exc:
                    refused.append(str(exc))
                finally:
                    db.session.remove()

        threads = [threading.Thread(target=act, args=pair) for pair in ((a, b), (b, a))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        with app.app_context():
            admins = db.session.scalar(
                select(func.count())
                .select_from(models.User)
                .where(models.User.role == Role.ADMIN, models.User.active.is_(True))
            )
            assert admins == 1, f"{admins} active admins left"
            assert len(refused) == 1 and "admin" in refused[0]
            # Put both back for the next round.
            for user in db.session.scalars(select(models.User)):
                user.role, user.active = Role.ADMIN, True
            db.session.commit()
    with app.app_context():
        db.engine.dispose()


# --- a cap on pending submissions ---------------------------------------------------------------


def test_pending_submissions_are_capped_per_address(database_url) -> None:
    app = make_app(database_url, PENDING_SUBMISSIONS_PER_ADDRESS=2)
    with app.app_context():
        client = app.test_client()
        for i in range(2):
            sent_reference(post(client, "pharmacy", pharmacy_form(name=f"Pharmacy {i}")))
        response = post(client, "pharmacy", pharmacy_form(name="One Too Many"))
        assert response.status_code == 429
        page = html(response)
        assert "waiting for a moderator" in page.select_one(".error-summary").get_text()
        assert page.select_one("input[name=name]")["value"] == "One Too Many"  # nothing lost
        # Another address still gets through; the address itself is never stored.
        other = app.test_client()
        other.environ_base["REMOTE_ADDR"] = "198.51.100.77"
        sent_reference(post(other, "pharmacy", pharmacy_form(name="Elsewhere")))
        stored = db.session.scalars(select(Submission)).all()
        assert len(stored) == 3
        assert all(s.client_hash and "127.0.0.1" not in s.client_hash for s in stored)
        assert len({s.client_hash for s in stored}) == 2
        db.session.remove()
        db.engine.dispose()


def test_pending_submissions_are_capped_in_total(database_url) -> None:
    app = make_app(database_url, PENDING_SUBMISSIONS_MAX=2)
    with app.app_context():
        for i in range(3):
            client = app.test_client()
            client.environ_base["REMOTE_ADDR"] = f"198.51.100.{i}"
            response = post(client, "pharmacy", pharmacy_form(name=f"Pharmacy {i}"))
        assert response.status_code == 429
        assert "waiting for a moderator" in response.get_data(as_text=True)
        assert db.session.scalar(select(func.count()).select_from(Submission)) == 2
        db.session.remove()
        db.engine.dispose()


# --- limits across workers ----------------------------------------------------------------------


def _gunicorn(workers: int, tmp_path: Path, **env: str):  # type: ignore[no-untyped-def]
    import socket
    import subprocess
    import sys

    from tests.conftest import clean_env

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parent.parent
    settings = {
        "SECRET_KEY": "x" * 40,
        "PUBLIC_URL": "http://127.0.0.1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}",
        **env,
    }
    cmd = [sys.executable, "-m", "gunicorn", "--workers", str(workers)]
    cmd += ["--bind", f"127.0.0.1:{port}", "wsgi:app"]
    proc = subprocess.Popen(
        cmd,
        cwd=root,
        env=clean_env(**settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, f"http://127.0.0.1:{port}"


def test_several_workers_on_memory_limits_refuse_to_start(tmp_path: Path) -> None:
    import subprocess

    proc, _url = _gunicorn(2, tmp_path)
    try:
        _out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("gunicorn started several workers on memory:// limits") from None
    assert proc.returncode == 1
    assert "RATELIMIT_STORAGE_URI is memory://" in err and "redis://" in err
    assert "Traceback" not in err


def test_one_worker_on_memory_limits_starts(tmp_path: Path) -> None:
    import time
    import urllib.request

    proc, url = _gunicorn(1, tmp_path)
    status = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
                    status = r.status
                    break
            except OSError:
                time.sleep(0.2)
        stopped = proc.poll() is not None
        assert status == 200, "gunicorn did not answer: " + (proc.stderr.read() if stopped else "")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --- whole-dataset downloads --------------------------------------------------------------------


def test_whole_dataset_downloads_are_rate_limited_per_address(database_url) -> None:
    app = make_app(database_url, RATELIMIT_ENABLED=True, DOWNLOAD_RATE_LIMIT="2 per hour")
    with app.app_context():
        builders.pharmacy(name="Listed Pharmacy")
    client = app.test_client()
    for name in ("ldn-directory-hsds.json", "ldn-directory-hsds.ndjson"):
        response = client.get(f"/data/{name}")
        assert response.status_code == 200 and b"Listed Pharmacy" in response.get_data()
    refused = client.get("/data/ldn-directory-hsds.json")
    assert refused.status_code == 429
    assert "Please wait a little" in refused.get_data(as_text=True)
    other = app.test_client()  # another address has its own budget
    other_env = {"REMOTE_ADDR": "192.0.2.7"}
    assert other.get("/data/ldn-directory-hsds.json", environ_base=other_env).status_code == 200
    # The HSDS API's pages are not limited.
    assert client.get("/api/hsds/v3/services").status_code == 200
