"""Moderator accounts: the rules for names and passwords (the one place forms, the model and
the CLI read them), creating and resetting accounts, switching them off, and signing in."""

from __future__ import annotations

from sqlalchemy import select
from werkzeug.security import check_password_hash

from ..db import writing
from ..extensions import db
from ..models import Role, User, utcnow
from .audit import record
from .errors import ModerationError, NotFound

USERNAME_MIN = 2
USERNAME_MAX = 60
PASSWORD_MIN = 12
PASSWORD_MAX = 200  # the sign-in form takes no more, so a longer one could never be used
USERNAME_MESSAGE = f"The name must be {USERNAME_MIN} to {USERNAME_MAX} characters."
PASSWORD_SHORT = f"Passwords need at least {PASSWORD_MIN} characters."
PASSWORD_LONG = f"Passwords can have at most {PASSWORD_MAX} characters."

# Hashing a password costs the same whether or not the account exists, so response time does
# not reveal which names are real.
_DUMMY_HASH = "scrypt:32768:8:1$0000000000000000$" + "0" * 128


class InvalidCredentials(ModerationError, ValueError):
    """A name or password the rules refuse (a ValueError too, for User.set_password's callers)."""


def check_credentials(*, username: str | None = None, password: str | None = None) -> None:
    """Raise InvalidCredentials for a name or password (whichever is given) the rules refuse."""
    if username is not None and not USERNAME_MIN <= len(username.strip()) <= USERNAME_MAX:
        raise InvalidCredentials(USERNAME_MESSAGE)
    if password is not None and len(password) < PASSWORD_MIN:
        raise InvalidCredentials(PASSWORD_SHORT)
    if password is not None and len(password) > PASSWORD_MAX:
        raise InvalidCredentials(PASSWORD_LONG)


def save_account(
    username: str,
    password: str,
    role: Role | None,
    *,
    actor: User | None = None,
    actor_label: str | None = None,
    create_only: bool = False,
) -> tuple[User, bool]:
    """Create an account, or (unless create_only) reset an existing one's password and role.
    Returns (user, created)."""
    username = username.strip()
    check_credentials(username=username, password=password)
    with writing():
        user = db.session.scalar(select(User).where(User.username == username))
        created = user is None
        if user is None:
            user = User(username=username, password_hash="", session_version=0)
            db.session.add(user)
        elif create_only:
            raise ModerationError("That name is taken.")
        if role is not None or created:
            user.role = role or Role.MODERATOR
        user.set_password(password)  # also ends the account's existing sessions
        db.session.flush()
        record(
            "account_created" if created else "password_reset",
            actor=actor,
            actor_label=actor_label,
            after={"username": username, "role": user.role.value},
        )
    return user, created


def all_accounts() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.username)))


def get_account(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(f"There is no account number {user_id}.")
    return user


def set_account_active(user_id: int, active: bool, *, actor: User) -> None:
    if not active and user_id == actor.id:
        # An admin locking themself out leaves nobody to undo it.
        raise ModerationError("You can't deactivate your own account.")
    with writing():
        user = db.session.get(User, user_id)
        if user is None:
            raise ModerationError("There is no such account.")
        user.active = active
        user.session_version += 1  # ends the account's sessions
        record(
            "account_activated" if active else "account_deactivated",
            actor=actor,
            after={"username": user.username},
        )


def toggle_active(user_id: int, *, actor: User) -> User:
    """Deactivate an active account or reactivate an inactive one. Raises NotFound."""
    user = get_account(user_id)
    set_account_active(user.id, not user.active, actor=actor)
    return user


def authenticate(username: str, password: str) -> User | None:
    """The active account with this name and password, or None (whichever part was wrong)."""
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if user.check_password(password) and user.active else None


def record_sign_in(user: User) -> None:
    with writing():
        fresh = db.session.get(User, user.id)
        if fresh is not None:
            fresh.last_login_at = utcnow()
