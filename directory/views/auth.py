"""Moderator sign-in and sign-out."""

from __future__ import annotations

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
from flask_login import current_user, login_user, logout_user

from .. import moderation
from ..extensions import limiter
from ..forms import LoginForm

bp = Blueprint("auth", __name__)


def _login_limit() -> str:
    return str(current_app.config["LOGIN_RATE_LIMIT"])


def _account_key() -> str:
    return (
        "account:" + (request.form.get("username") or "").strip().lower()[: moderation.USERNAME_MAX]
    )


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


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"], deduct_when=_failed, scope="login-client")
@limiter.limit(
    _login_limit,
    methods=["POST"],
    key_func=_account_key,
    deduct_when=_failed,
    scope="login-account",
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
        form.password.errors = ["That name and password don't match an active moderator account."]
    status = 401 if form.errors and request.method == "POST" else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("public.home"), code=303)
