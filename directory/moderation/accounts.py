"""Moderator accounts: the rules for names and passwords (the one place forms, the model and
the CLI read them), creating and resetting accounts, switching them off, and signing in."""

from __future__ import annotations

import re

from flask import current_app, has_app_context
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

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
# ASCII letters only: names go into CSV exports and the audit log, and a name made of
# look-alike letters from another script could pass for a colleague's.
USERNAME_CHARACTERS = re.compile(r"[A-Za-z0-9._-]+")
USERNAME_CHARACTERS_MESSAGE = "Use only letters, digits, dots, dashes and underscores in the name."
PASSWORD_SHORT = f"Passwords need at least {PASSWORD_MIN} characters."
PASSWORD_LONG = f"Passwords can have at most {PASSWORD_MAX} characters."

# OWASP's current scrypt cost (N=2**17, r=8, p=1): about 128 MB and a few tenths of a second
# per sign-in. The PASSWORD_HASH_METHOD config key overrides it; only the tests do, so that
# creating hundreds of accounts stays quick.
PASSWORD_HASH_METHOD = "scrypt:131072:8:1"


def hash_method() -> str:
    if has_app_context():
        return str(current_app.config.get("PASSWORD_HASH_METHOD") or PASSWORD_HASH_METHOD)
    return PASSWORD_HASH_METHOD


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=hash_method())


def _dummy_hash() -> str:
    # Hashing a password costs the same whether or not the account exists, so response time
    # does not reveal which names are real.
    return f"{hash_method()}$0000000000000000$" + "0" * 128


class InvalidCredentials(ModerationError, ValueError):
    """A name or password the rules refuse (a ValueError too, for User.set_password's callers)."""


def check_credentials(
    *, username: str | None = None, password: str | None = None, new: bool = True
) -> None:
    """Raise InvalidCredentials for a name or password (whichever is given) the rules refuse.
    `new=False` for an existing account's name: one made before the character rule keeps
    working (signing in, a password reset), but no new one is made like it."""
    if username is not None and not USERNAME_MIN <= len(username.strip()) <= USERNAME_MAX:
        raise InvalidCredentials(USERNAME_MESSAGE)
    if username is not None and new and not USERNAME_CHARACTERS.fullmatch(username.strip()):
        raise InvalidCredentials(USERNAME_CHARACTERS_MESSAGE)
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
    check_credentials(username=username, password=password, new=not account_exists(username))
    with writing():
        user = db.session.scalar(select(User).where(User.username == username))
        created = user is None
        if created:
            check_credentials(username=username)
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


def account_exists(username: str) -> bool:
    return db.session.scalar(select(User.id).where(User.username == username.strip())) is not None


def end_sessions(user_id: int) -> None:
    """End every session of the account, on every device (signing out does this).

    Why the account's session_version, not a table of sessions: the version is already part
    of every session (User.get_id) and is bumped by a password change and deactivation, so
    one check in the user loader covers all three events, with no table to prune. The cost is
    that signing out on one device signs out the others too; for a few volunteer moderators
    that is the safer surprise, and the sign-out message says so."""
    with writing():
        user = db.session.get(User, user_id)
        if user is not None:
            user.session_version += 1


def _keep_another_admin(user_id: int) -> None:
    """Raise ModerationError unless an active admin other than `user_id` remains.

    Inside the caller's write transaction. On PostgreSQL the active admins' rows are locked
    first (FOR UPDATE), so two admins demoting or deactivating each other at once queue here:
    the second re-reads after the first commits and finds itself the last admin. (SQLite's
    write lock, taken by writing() before any read, already makes them queue.)"""
    others = db.session.scalars(
        select(User.id)
        .where(User.role == Role.ADMIN, User.active.is_(True))
        .order_by(User.id)
        .with_for_update()
    ).all()
    if not [other for other in others if other != user_id]:
        raise ModerationError("This is the last admin account: make someone else an admin first.")


def set_role(user_id: int, role: Role, *, actor: User) -> User:
    """Make an account a moderator or an admin, audited. Raises NotFound, or ModerationError
    when it would leave no active admin."""
    with writing():
        user = db.session.get(User, user_id)
        if user is None:
            raise NotFound(f"There is no account number {user_id}.")
        before = user.role
        if before == Role.ADMIN and role != Role.ADMIN and user.active:
            _keep_another_admin(user.id)
        if before != role:
            user.role = role
            record(
                "role_changed",
                actor=actor,
                before={"username": user.username, "role": before.value},
                after={"username": user.username, "role": role.value},
            )
    return user


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
        if not active and user.active and user.role == Role.ADMIN:
            _keep_another_admin(user.id)
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
        check_password_hash(_dummy_hash(), password)
        return None
    if not (user.check_password(password) and user.active):
        return None
    if not user.password_hash.startswith(hash_method() + "$"):
        # Hashed at an older cost: rehash now, while we have the password. Not set_password,
        # which would end the account's other sessions.
        with writing():
            fresh = db.session.get(User, user.id)
            if fresh is not None:
                fresh.password_hash = hash_password(password)
        db.session.refresh(user)
    return user


def record_sign_in(user: User) -> None:
    with writing():
        fresh = db.session.get(User, user.id)
        if fresh is not None:
            fresh.last_login_at = utcnow()
