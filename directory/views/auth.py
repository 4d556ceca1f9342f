"""Moderator sign-in and sign-out."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user
from limits import parse

from .. import moderation
from ..extensions import limiter
from ..forms import LoginForm

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)


def _login_limit() -> str:
    return str(current_app.config["LOGIN_RATE_LIMIT"])


def _account() -> str:
    return (request.form.get("username") or "").strip().lower()[: moderation.USERNAME_MAX]


def _account_at_address_key() -> str:
    return f"{_account()}@{get_remote_address()}"


def note_failed_sign_in(account: str) -> None:
    """Count failures per account, whatever the address, and log a warning when they pass the
    sign-in budget: someone is guessing this account's password. It never refuses anyone."""
    if not current_app.config.get("RATELIMIT_ENABLED", True) or not account:
        return
    limit = parse(_login_limit())
    try:
        within = limiter.limiter.hit(limit, "login-account-alert", account)
    except Exception:  # noqa: BLE001 - an alert that can't be counted must not break sign-in
        log.exception("Could not count failed sign-ins (rate-limit storage)")
        return
    if not within:
        log.warning("Many failed sign-ins for account %r (more than %s)", account, limit)


def _failed(response: Response) -> bool:
    # Only failed attempts use up the budget; a successful sign-in redirects.
    return request.method == "POST" and response.status_code != 303


def safe_next(target: str | None) -> str | None:
    """Only paths on this site: no scheme, no host, no protocol-relative //evil.example."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(ch) < 32 for ch in target):
        return None
    return target


# Failures are refused per address and per (account, address). Never per account alone: ten
# wrong passwords sent from ten addresses would then lock the owner out from everywhere. The
# account's own count only raises an alert (note_failed_sign_in).
@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"], deduct_when=_failed, scope="login-client")
@limiter.limit(
    _login_limit,
    methods=["POST"],
    key_func=_account_at_address_key,
    deduct_when=_failed,
    scope="login-account-address",
)
def login() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(url_for("moderation.queue"))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next"))
    if form.validate_on_submit():
        user = moderation.authenticate(form.username.data or "", form.password.data or "")
        if user is not None:
            session.clear()  # a fresh session: nothing from before sign-in carries over
            login_user(user)
            moderation.record_sign_in(user)
            return redirect(safe_next(form.next.data) or url_for("moderation.queue"), code=303)
        note_failed_sign_in(_account())
        form.password.errors = ["That name and password don't match an active moderator account."]
    status = 401 if form.errors and request.method == "POST" else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    if current_user.is_authenticated:
        # Server-side: a copy of this session's cookie must open nothing afterwards.
        moderation.end_sessions(current_user.id)
    logout_user()
    session.clear()
    flash("You are signed out, on this device and any other.", "info")
    return redirect(url_for("public.home"), code=303)
