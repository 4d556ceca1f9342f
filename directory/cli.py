"""Command-line tasks: `flask --app wsgi <command>`."""

from __future__ import annotations

import os
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import click
from flask import Flask, current_app
from flask_migrate import upgrade
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from . import backup, derived, exports, imports, nppes, regions, search, seeding
from .extensions import db
from .forms import SearchForm
from .geocoding import ensure_built
from .geocoding.app import geocoder
from .listings import parse_date
from .models import Role
from .moderation import imports as registry_import


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


def _first_line(exc: SQLAlchemyError) -> str:
    return str(getattr(exc, "orig", exc)).strip().splitlines()[0]


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar over `total` bytes on a terminal; elsewhere nothing (the caller prints
    a summary line)."""
    if not sys.stderr.isatty() or total == 0:
        yield lambda _done: None
        return
    with click.progressbar(length=total, label="Reading", file=sys.stderr) as bar:
        last = 0

        def update(done: int) -> None:
            nonlocal last
            bar.update(done - last)
            last = done

        yield update


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


class ProgressLine:
    """A progress bar on a terminal, redrawn at most a few times a second: how far through the
    file (by bytes), rows read, what was found, the rate and the time left."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.monotonic()
        self.drawn = 0.0

    def __call__(self, p: nppes.Progress) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.drawn < 0.25:
            return
        self.drawn = now
        elapsed = max(now - self.started, 1e-6)
        share = p.bytes_read / p.total_bytes if p.total_bytes else 0.0
        left = elapsed * (1 - share) / share if share else 0.0
        bar = "#" * int(share * 20)
        click.echo(
            f"\r[{bar:<20}] {share:4.0%}  {p.rows:,} rows  {p.found:,} pharmacies  "
            f"{p.rows / elapsed:,.0f} rows/s  {left:,.0f} s left ",
            nl=False,
            err=True,
        )

    def close(self) -> None:
        if self.enabled and self.drawn:
            click.echo(err=True)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


def _print_import_report(report: registry_import.Report, seconds: float) -> None:
    rate = report.rows / seconds if seconds else 0.0
    click.echo(f"{report.summary()} ({seconds:.1f} s, {rate:,.0f} rows/s)")
    for reason, skipped in sorted(report.skipped.items()):
        click.echo(f"  skipped, {reason}: {skipped.count} ({'; '.join(skipped.examples)})")
    if report.dry_run:
        for change in report.changes:
            click.echo(f"  would {change}")
        if report.changes_total > len(report.changes):
            click.echo(f"  ... and {report.changes_total - len(report.changes)} more")
        click.echo("Dry run: nothing was written.")


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
        # The offline gazetteer is built once into the instance folder (a few seconds); doing
        # it here keeps the first search after deployment from paying for it.
        click.echo(f"Gazetteer: {ensure_built(Path(current_app.instance_path))}")

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

    @app.cli.command("backup")
    @click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--force", is_flag=True, help="Replace PATH if it exists.")
    def backup_command(path: Path, force: bool) -> None:
        """Copy the SQLite database to PATH while the site runs (consistent; checked)."""
        try:
            source = backup.sqlite_file(current_app.config["SQLALCHEMY_DATABASE_URI"])
            done = backup.backup(source, path, overwrite=force)
        except backup.BackupError as exc:
            _fail(str(exc))
        click.echo(
            f"Backed up {source} to {done.path}: {done.bytes / 1e6:,.1f} MB in "
            f"{done.seconds:.1f} s; integrity check ok."
        )

    @app.cli.command("restore")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--yes", is_flag=True, help="Replace the existing database (saved first).")
    def restore_command(path: Path, yes: bool) -> None:
        """Put a backup made by `backup` back as the SQLite database."""
        try:
            target = backup.sqlite_file(current_app.config["SQLALCHEMY_DATABASE_URI"])
            db.engine.dispose()  # this process's own connections: none held across it
            done = backup.restore(path, target, replace=yes)
        except backup.BackupError as exc:
            _fail(str(exc))
        if done.safety_copy:
            click.echo(f"The database it replaced is saved as {done.safety_copy}.")
        click.echo(
            f"Restored {path} to {target} in {done.seconds:.1f} s; integrity check ok. "
            "Next: flask init-db (if the backup is older than this code), then flask check."
        )

    @app.cli.command("search")
    @click.argument("near")
    @click.option(
        "--radius", default=search.format_number(search.DEFAULT_RADIUS), show_default=True
    )
    @click.option("--unit", default=search.DEFAULT_UNIT, show_default=True)
    @click.option("--kind", default=search.BOTH, show_default=True)
    @click.option(
        "--filter",
        "filters",
        multiple=True,
        # A choice: any other name would be ignored by the form (or, like "near", be taken
        # for another of its fields), and the search would quietly run without the filter.
        type=click.Choice(list(search.FLAG_FILTERS)),
        help="Repeatable.",
    )
    @click.option("--dosage-form", default="", help="A dosage form's code, as the API takes it.")
    @click.option("--condition", default="", help="A condition's code, as the API takes it.")
    def search_command(
        near: str,
        radius: str,
        unit: str,
        kind: str,
        filters: tuple[str, ...],
        dosage_form: str,
        condition: str,
    ) -> None:
        """Search from the command line, exactly as the site does."""
        # The options are the search form's fields, under the same names as the page's.
        args = {"near": near, "radius": radius, "unit": unit, "kind": kind}
        args.update(dosage_form=dosage_form, condition=condition)
        args.update({name: "1" for name in filters})
        outcome = search.perform(SearchForm.from_args(args), geocoder())
        result = outcome.result
        if result is None:
            hint = "; ".join(outcome.suggestions)
            _fail(f"{outcome.message} Did you mean: {hint}?" if hint else outcome.message)
            return
        click.echo(f"{result.total} within {radius} {unit} of {result.origin.label}:")
        for hit in result.hits:
            click.echo(
                f"  {hit.distance:6.1f} {unit}  {hit.listing.name}  ({hit.listing.kind.value})"
            )
        for listing in result.also_available:
            click.echo(f"  also available: {listing.name} ({listing.kind.value})")

    @app.cli.command("check")
    def check() -> None:
        """Compare every stored copy (search's derived columns, the R*Tree) with its source."""
        problem = _database_problem()
        if problem:
            _fail(problem)
        with db.engine.connect() as conn:
            found = derived.drift(conn)
        from .moderation.calls import nearby_drift

        # The call list's order (a confirmed pharmacy within 25 miles) is worked out in Python
        # over every listing, as `refresh-call-list` does without writing: about 30 s at 1M.
        stale = nearby_drift()
        found.append(
            derived.Drift(
                "listings.confirmed_nearby (fix: refresh-call-list)",
                len(stale),
                [str(i) for i in stale[: derived.EXAMPLES]],
            )
        )
        db.session.remove()
        for d in found:
            detail = f" (e.g. {', '.join(d.examples)})" if d.count else ""
            click.echo(f"{d.copy}: {d.count} out of step{detail}")
        drifted = sum(d.count for d in found)
        if drifted:
            _fail(f"{drifted} stored values differ from their source.")
        click.echo("Every stored copy agrees with its source.")

    @app.cli.command("refresh-call-list")
    def refresh_call_list() -> None:
        """Work out again which listings have a confirmed pharmacy within 25 miles (the call
        list's order), after an import or moderators' changes outside the call list."""
        problem = _database_problem()
        if problem:
            _fail(problem)
        from .moderation.calls import NEARBY_MILES, refresh_nearby

        marked = refresh_nearby()
        click.echo(f"{marked} listings have a confirmed pharmacy within {NEARBY_MILES} miles.")

    @app.cli.command("export")
    @click.argument("path", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
    @click.option("--format", "format_name", help=f"One of {', '.join(exports.WRITERS)}.")
    def export(path: Path, format_name: str | None) -> None:
        """Write every published listing's public fields (no submitter data), streamed.

        The format is --format, or told by PATH's ending (.jsonl, .csv, .geojson); PATH "-"
        is standard output (JSON lines unless --format says otherwise)."""
        to_stdout = str(path) == "-"
        if format_name is None and to_stdout:
            format_name = "jsonl"
        try:
            chosen = exports.format_of(path, format_name, exports.WRITERS)
        except exports.UnknownFormat as exc:
            _fail(str(exc))
        try:
            # A request context only so each listing's (relative) page address can be built.
            with current_app.test_request_context():
                if to_stdout:
                    count = exports.export(db.session(), chosen, sys.stdout)
                else:
                    with path.open("w", encoding="utf-8", newline="") as fh:
                        count = exports.export(db.session(), chosen, fh)
        except OSError as exc:
            _fail(f"Cannot write {path}: {exc.strerror or exc}.")
        except SQLAlchemyError as exc:
            _fail(f"Reading the listings failed: {_first_line(exc)}")
        click.echo(f"Wrote {count} listings to {path} ({chosen}).", err=to_stdout)

    @app.cli.command("import")
    @click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--as", "operator", help="The moderator account the changes are made as.")
    @click.option("--format", "format_name", help=f"One of {', '.join(imports.READERS)}.")
    @click.option("--source", help="The source of rows that give only a source_id.")
    @click.option(
        "--list-date",
        help="The file is a curated list of this date (YYYY-MM or YYYY-MM-DD), named by "
        "--source: every listing on it gets a curated-list flag.",
    )
    @click.option("--list-url", help="Where the curated list is published (on its flags).")
    @click.option(
        "--by-id",
        is_flag=True,
        help="The file is this directory's own export, edited: each row updates its id's listing.",
    )
    @click.option("--dry-run", is_flag=True, help="Check every row and report; write nothing.")
    def import_command(
        path: Path,
        operator: str | None,
        format_name: str | None,
        source: str | None,
        list_date: str | None,
        list_url: str | None,
        by_id: bool,
        dry_run: bool,
    ) -> None:
        """Add or update listings from a CSV, JSON lines or GeoJSON file (the exports' fields)."""
        from .moderation import ModerationError, bulk

        problem = _database_problem()
        if problem:
            _fail(problem)
        if not operator:
            _fail("Give --as NAME: the moderator account the import is made as.")
        try:
            actor = bulk.operator(operator)
        except ModerationError as exc:
            _fail(str(exc))
        curated = None
        if list_date is not None:
            try:
                as_of = parse_date(list_date)
            except ValueError:
                as_of = None
            if as_of is None or not source:
                _fail("--list-date needs a date (YYYY-MM or YYYY-MM-DD) and --source NAME.")
            curated = imports.CuratedList(source, as_of, list_url)
        size = path.stat().st_size if path.is_file() else 0
        try:
            with _progress(size) as progress:
                report = imports.run(
                    path,
                    actor=actor,
                    format_name=format_name,
                    default_source=source,
                    curated=curated,
                    by_id=by_id,
                    dry_run=dry_run,
                    progress=progress,
                )
        except imports.ImportFailure as exc:
            _fail(f"{path.name}: {exc} Nothing was imported.")
        except SQLAlchemyError as exc:
            _fail(f"Importing failed, nothing was imported: {_first_line(exc)}")
        for where, reason in report.refused:
            click.echo(f"{path.name}, {where}: refused: {reason}.", err=True)
        done = "Checked (dry run, nothing written)" if dry_run else "Imported"
        click.echo(f"{done} {path.name}: {report.summary()}")

    @app.cli.command("import-nppes")
    @click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
    @click.option(
        "--state", "states", multiple=True, help="Repeatable: only these states (e.g. WA)."
    )
    @click.option(
        "--as",
        "operator",
        default=registry_import.OPERATOR,
        show_default=True,
        help="The operator named in the audit trail.",
    )
    def import_nppes(path: Path, dry_run: bool, states: tuple[str, ...], operator: str) -> None:
        """Import the compounding pharmacies of the NPI registry's file (CSV or monthly zip)."""
        problem = _database_problem()
        if problem:
            _fail(problem)
        unknown = [s for s in states if f"US-{s.strip().upper()}" not in regions.us_states()]
        if unknown:
            _fail(f"Unknown state code {unknown[0]!r}: use the two letters, like WA.")
        if not operator.strip():
            _fail("--as needs a name for the audit trail.")
        progress = ProgressLine(sys.stderr.isatty())
        try:
            with nppes.open_registry(path) as registry:
                run = registry_import.RegistryImport(
                    registry.name,
                    registry.file_date,
                    operator=operator.strip(),
                    states=[s.strip() for s in states],
                    dry_run=dry_run,
                )
                counts = nppes.Progress()
                for item in nppes.scan(
                    registry, run.held_npis, progress=counts, on_progress=progress
                ):
                    run.feed(item)
                run.report.rows = counts.rows
                report = run.finish()
        except nppes.LayoutError as exc:
            progress.close()
            _fail(f"{exc} Nothing was imported.")
        except KeyboardInterrupt:
            progress.close()
            _fail(
                "Interrupted. Every batch written so far is whole; run the same command "
                "again to carry on."
            )
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            progress.close()
            _fail(
                f"Reading {path.name} failed: {exc}. Batches written so far are whole; "
                "run the command again once the file is readable."
            )
        except SQLAlchemyError as exc:
            progress.close()
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            _fail(
                f"The database refused a write: {reason}. "
                "Batches written before it are whole; run the command again to carry on."
            )
        progress.close()
        _print_import_report(report, progress.seconds)

    @app.cli.command("create-moderator")
    @click.argument("username")
    @click.option("--admin", is_flag=True, help="Admins can also manage moderator accounts.")
    @click.option(
        "--password-stdin", is_flag=True, help="Read the password from standard input (scripts)."
    )
    def create_moderator(username: str, admin: bool, password_stdin: bool) -> None:
        """Create a moderator account, or reset an existing account's password."""
        from . import moderation

        def checked(password: str) -> str:
            # Asked again, with the reason, rather than failing after the confirmation.
            try:
                moderation.check_credentials(password=password)
            except moderation.InvalidCredentials as exc:
                raise click.BadParameter(str(exc)) from None
            return password

        try:
            # An existing account made before the name rule can still have its password reset.
            moderation.check_credentials(
                username=username, new=not moderation.account_exists(username)
            )
        except moderation.InvalidCredentials as exc:
            _fail(str(exc))
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = click.prompt(
                "Password", hide_input=True, confirmation_prompt=True, value_proc=checked
            )
        try:
            user, created = moderation.save_account(
                username, password, Role.ADMIN if admin else None, actor_label="cli"
            )
        except moderation.ModerationError as exc:
            _fail(str(exc))
        click.echo(f"{'Created' if created else 'Updated'} {user.role.value} {username!r}.")
