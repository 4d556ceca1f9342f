"""Sign-in, sign-out, throttling, and a sweep proving every moderation route is protected."""

import re

import pytest
from flask import Flask

from directory.models import Role
from directory.views.auth import safe_next
from tests import builders
from tests.conftest import PASSWORD, AuthActions, html, make_app, texts


def _protected_rules(app: Flask):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("moderation."):
            yield rule


def _url_for_rule(rule) -> str:
    # Fill every converter with 1: the check must run before the view looks anything up.
    return re.sub(r"<(?:[^:>]+:)?[^>]+>", "1", rule.rule)


def test_the_sweep_finds_the_routes(app) -> None:
    endpoints = {r.endpoint for r in _protected_rules(app)}
    assert {
        "moderation.queue",
        "moderation.approve",
        "moderation.audit",
        "moderation.accounts",
    } <= endpoints


def test_anonymous_users_are_sent_to_login_from_every_moderation_route(app, client) -> None:
    checked = 0
    for rule in _protected_rules(app):
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = client.open(_url_for_rule(rule), method=method)
            assert response.status_code == 302, (rule.rule, method, response.status_code)
            assert response.headers["Location"].startswith("/login?next="), rule.rule
            checked += 1
    assert checked >= 15


def test_moderators_get_403_on_every_admin_route(app, client, auth) -> None:
    auth.sign_in_as("mod", Role.MODERATOR)
    admin_rules = [
        r
        for r in _protected_rules(app)
        if getattr(app.view_functions[r.endpoint], "admin_only", False)
    ]
    assert {r.endpoint for r in admin_rules} >= {
        "moderation.audit",
        "moderation.audit_csv",
        "moderation.accounts",
    }
    for rule in admin_rules:
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = client.open(_url_for_rule(rule), method=method)
            assert response.status_code == 403, (rule.rule, method)


def test_admins_reach_admin_pages(client, auth) -> None:
    auth.sign_in_as("boss", Role.ADMIN)
    assert client.get("/moderation/audit").status_code == 200
    assert client.get("/moderation/accounts").status_code == 200


def test_login_with_wrong_password_says_so_and_keeps_the_name(auth) -> None:
    auth.create("mod")
    response = auth.login(password="wrong password!!")
    assert response.status_code == 401
    errors = " ".join(texts(response, ".error"))
    assert "That name and password don't match an active moderator account." in errors
    assert html(response).select_one("input[name=username]")["value"] == "mod"


def test_login_redirects_only_within_the_site(auth) -> None:
    auth.create("mod")
    response = auth.login(next_url="https://evil.example/steal")
    assert response.headers["Location"] == "/moderation/"
    assert auth.logout().status_code == 303
    response = auth.login(next_url="/moderation/listings/1")
    assert response.headers["Location"] == "/moderation/listings/1"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/moderation/", "/moderation/"),
        ("//evil.example/", None),
        ("https://evil.example/", None),
        ("/\\evil.example", None),
        ("javascript:alert(1)", None),
        ("moderation", None),
        ("", None),
    ],
)
def test_safe_next(target: str, expected: str | None) -> None:
    assert safe_next(target) == expected


def test_logout_ends_the_session(client, auth) -> None:
    auth.sign_in_as("mod")
    assert client.get("/moderation/").status_code == 200
    assert auth.logout().status_code == 303
    assert client.get("/moderation/").status_code == 302


def test_login_starts_a_fresh_session(client, auth) -> None:
    auth.create("mod")
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
    assert auth.login().status_code == 303
    with client.session_transaction() as sess:
        assert "planted" not in sess


def test_password_change_ends_other_sessions(app, client, auth) -> None:
    from directory import moderation

    auth.sign_in_as("mod")
    assert client.get("/moderation/").status_code == 200
    moderation.save_account("mod", "another long password", Role.MODERATOR, actor_label="test")
    assert client.get("/moderation/").status_code == 302


def test_deactivated_account_cannot_sign_in(auth) -> None:
    from directory import moderation

    admin = auth.create("boss", Role.ADMIN)
    mod = auth.create("mod")
    moderation.set_account_active(mod.id, False, actor=admin)
    assert auth.login().status_code == 401


def test_passwords_are_hashed_and_at_least_12_characters(app) -> None:
    user = builders.user("mod")
    assert user.password_hash.startswith("scrypt:")
    assert PASSWORD not in user.password_hash
    with pytest.raises(ValueError):
        user.set_password("short")


def test_name_and_password_rules_have_one_home(app, client, auth) -> None:
    """The model, save_account (so the CLI) and the accounts form all refuse the same things."""
    from directory import moderation
    from directory.models import Role

    assert (moderation.USERNAME_MIN, moderation.PASSWORD_MIN) == (2, 12)
    eleven, twelve = "x" * 11, "x" * 12
    with pytest.raises(moderation.InvalidCredentials, match="at least 12"):
        moderation.save_account("alice", eleven, Role.MODERATOR)
    with pytest.raises(moderation.InvalidCredentials, match="2 to 60"):
        moderation.save_account(" a ", twelve, Role.MODERATOR)
    with pytest.raises(moderation.InvalidCredentials, match="at most 200"):
        moderation.save_account("alice", "x" * 201, Role.MODERATOR)
    assert moderation.save_account("al", twelve, Role.MODERATOR)[1]

    builders.user("boss", PASSWORD, "admin")
    auth.login("boss")
    for name, password, message in (
        ("a", PASSWORD, moderation.USERNAME_MESSAGE),
        ("carol", eleven, moderation.PASSWORD_SHORT),
    ):
        response = client.post(
            "/moderation/accounts", data={"username": name, "password": password, "role": "admin"}
        )
        assert response.status_code == 400
        assert message in response.get_data(as_text=True).replace("&#39;", "'")
    response = client.post(
        "/moderation/accounts", data={"username": "carol", "password": twelve, "role": "nobody"}
    )
    assert response.status_code == 400


def test_sign_in_records_the_time(auth) -> None:
    user = builders.user("mod")
    assert user.last_login_at is None
    assert auth.login().status_code == 303
    from directory.extensions import db

    db.session.refresh(user)
    assert user.last_login_at is not None


def test_failed_logins_are_throttled_per_client(database_url) -> None:
    # Per account alone is never refused: see tests/test_hardening.py for the lockout.
    app = make_app(database_url, RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="3 per hour")
    with app.app_context():
        builders.user("mod")
        auth = AuthActions(app.test_client())
        for _ in range(3):
            assert auth.login(password="wrong password!!").status_code == 401
        assert auth.login(password="wrong password!!").status_code == 429
        # The same account from another address is not paused.
        response = app.test_client().post(
            "/login",
            data={"username": "mod", "password": PASSWORD},
            environ_base={"REMOTE_ADDR": "203.0.113.9"},
        )
        assert response.status_code == 303


def test_create_moderator_command_reads_password_from_stdin(runner) -> None:
    from sqlalchemy import select

    from directory.extensions import db
    from directory.models import User

    result = runner.invoke(
        args=["create-moderator", "alice", "--admin", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.username == "alice"))
    assert user is not None and user.is_admin and user.check_password(PASSWORD)
    short = runner.invoke(args=["create-moderator", "bob", "--password-stdin"], input="short\n")
    assert short.exit_code == 1
    assert "at least 12 characters" in short.output


def test_create_moderator_command_applies_the_same_rules(runner) -> None:
    from sqlalchemy import select

    from directory.extensions import db
    from directory.models import User

    short_name = runner.invoke(args=["create-moderator", "a", "--password-stdin"], input=PASSWORD)
    assert short_name.exit_code == 1 and "2 to 60 characters" in short_name.output
    # Typed at the prompt, a short password is explained and asked for again.
    typed = runner.invoke(
        args=["create-moderator", "dora"], input=f"short\n{PASSWORD}\n{PASSWORD}\n"
    )
    assert typed.exit_code == 0, typed.output
    assert "at least 12 characters" in typed.output
    user = db.session.scalar(select(User).where(User.username == "dora"))
    assert user is not None and user.check_password(PASSWORD)


def test_session_cookie_flags_outside_development(database_url) -> None:
    app = make_app(database_url, SESSION_COOKIE_SECURE=True)
    with app.app_context():
        builders.user("mod")
        response = AuthActions(app.test_client()).login()
        cookie = response.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
