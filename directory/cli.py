"""Command-line tasks: `flask --app wsgi <command>`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask_migrate import upgrade
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from . import seeding
from .extensions import db
from .models import Role


def _database_problem() -> str | None:
    """A plain sentence about what is wrong with DATABASE_URL, or None."""
    raw = current_app.config["SQLALCHEMY_DATABASE_URI"]
    try:
        url = make_url(raw)
    except ArgumentError:
        return f"DATABASE_URL {raw!r} is not a database URL (e.g. sqlite:///path or postgresql+psycopg://…)."
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        folder = Path(url.database).expanduser().resolve().parent
        if not folder.is_dir():
            return f"The folder for the SQLite database does not exist: {folder}"
        if not os.access(folder, os.W_OK):
            return f"The folder for the SQLite database is not writable: {folder}"
    try:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return f"Cannot open the database at {url.render_as_string(hide_password=True)}: {reason}"
    except ModuleNotFoundError as exc:
        return (
            f"The driver for DATABASE_URL is not installed ({exc.name}); pip install '.[postgres]'."
        )
    return None


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def init_app(app: Flask) -> None:
    @app.cli.command("init-db")
    def init_db() -> None:
        """Create or upgrade the database schema (runs the migrations)."""
        problem = _database_problem()
        if problem:
            _fail(problem)
        try:
            upgrade()
        except SQLAlchemyError as exc:
            _fail(f"Migrating the database failed: {str(getattr(exc, 'orig', exc)).strip()}")
        click.echo("Database is up to date.")

    @app.cli.command("seed")
    @click.option("--no-samples", is_flag=True, help="Load the vocabularies only (for production).")
    @click.option(
        "--dir",
        "seeds_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=seeding.SEEDS,
        show_default=True,
    )
    def seed(no_samples: bool, seeds_dir: Path) -> None:
        """Load the vocabularies and, unless --no-samples, the sample listings. Safe to repeat."""
        problem = _database_problem()
        if problem:
            _fail(problem)
        try:
            report = seeding.load(seeds_dir, samples=not no_samples)
        except seeding.SeedError as exc:
            _fail(f"{exc} Nothing was loaded.")
        except SQLAlchemyError as exc:
            _fail(
                "Loading seeds failed; has the schema been created (flask --app wsgi init-db)? "
                f"{str(getattr(exc, 'orig', exc)).strip().splitlines()[0]}"
            )
        changes = ", ".join(f"{n}: {c}" for n, c in report.vocabulary_changes.items())
        click.echo(f"Vocabulary rows added or changed: {changes}.")
        if not no_samples:
            click.echo(
                f"Sample listings added: {report.listings_added}; "
                f"already present: {report.listings_skipped}."
            )

    @app.cli.command("create-moderator")
    @click.argument("username")
    @click.option("--admin", is_flag=True, help="Admins can also manage moderator accounts.")
    @click.option(
        "--password-stdin", is_flag=True, help="Read the password from standard input (scripts)."
    )
    def create_moderator(username: str, admin: bool, password_stdin: bool) -> None:
        """Create a moderator account, or reset an existing account's password."""
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        from . import moderation

        try:
            user, created = moderation.save_account(
                username, password, Role.ADMIN if admin else None, actor_label="cli"
            )
        except moderation.ModerationError as exc:
            _fail(str(exc))
        click.echo(f"{'Created' if created else 'Updated'} {user.role.value} {username!r}.")
