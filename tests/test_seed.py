import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from directory import seeding
from directory.extensions import db
from directory.models import AuditEntry, Filler, Kind, Listing, Status


def counts() -> tuple[int, int, int]:
    return (
        db.session.scalar(select(func.count()).select_from(Listing)),
        db.session.scalar(select(func.count()).select_from(AuditEntry)),
        db.session.scalar(select(func.count()).select_from(Filler)),
    )


def test_seed_loads_samples_and_is_idempotent(runner) -> None:
    first = runner.invoke(args=["seed"])
    assert first.exit_code == 0, first.output
    after_first = counts()
    assert after_first[0] >= 80
    second = runner.invoke(args=["seed"])
    assert second.exit_code == 0, second.output
    assert "Sample listings added: 0" in second.output
    assert counts() == after_first


def test_sample_set_covers_every_kind_of_field(seeded) -> None:
    listings = db.session.scalars(select(Listing)).all()
    pharmacies = [x for x in listings if x.kind == Kind.PHARMACY]
    prescribers = [x for x in listings if x.kind == Kind.PRESCRIBER]
    assert len(pharmacies) >= 40 and len(prescribers) >= 40
    assert all(x.is_sample for x in listings)
    assert all("example.org" in (x.website or "https://example.org") for x in listings)
    assert any(x.telehealth_only and x.lat is None for x in prescribers)
    assert any(x.mail_order and x.ships_to for x in pharmacies)
    assert any(x.sr_policy and x.sr_policy.value == "unknown" for x in pharmacies)
    assert any(not x.fillers_known for x in pharmacies)
    assert any(x.is_stale for x in listings) and any(not x.is_stale for x in listings)
    assert {x.status for x in listings} == set(Status)
    assert len({x.country for x in listings}) >= 4
    assert any(f.type.value == "curated_list" for x in listings for f in x.flags)


def test_no_samples_loads_vocabularies_only(runner) -> None:
    result = runner.invoke(args=["seed", "--no-samples"])
    assert result.exit_code == 0, result.output
    assert db.session.scalar(select(func.count()).select_from(Listing)) == 0
    assert db.session.scalar(select(func.count()).select_from(Filler)) >= 6


def _copy_seeds(tmp_path: Path) -> Path:
    target = tmp_path / "seeds"
    shutil.copytree(seeding.SEEDS, target)
    return target


def test_malformed_seed_row_names_file_and_line_and_loads_nothing(runner, tmp_path) -> None:
    seeds = _copy_seeds(tmp_path)
    path = seeds / "sample_pharmacies.jsonl"
    lines = path.read_text().splitlines()
    row = json.loads(lines[2])
    row["sr_policy"] = "sometimes"
    lines[2] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    result = runner.invoke(args=["seed", "--dir", str(seeds)])
    assert result.exit_code == 1
    assert f"{path}:3: unknown sr_policy 'sometimes'" in result.output
    assert "Nothing was loaded" in result.output
    assert db.session.scalar(select(func.count()).select_from(Listing)) == 0


def _break_row(seeds: Path, name: str, number: int, **changes: object) -> Path:
    path = seeds / name
    lines = path.read_text().splitlines()
    row = json.loads(lines[number - 1])
    row.update(changes)
    lines[number - 1] = json.dumps(row)
    path.write_text("\n".join(lines) + "\n")
    return path


def _wrong_check_digit(npi: str) -> str:
    return npi[:9] + str((int(npi[9]) + 1) % 10)


@pytest.mark.parametrize(
    ("name", "changes", "message"),
    [
        (
            "sample_prescribers.jsonl",
            {"npi": _wrong_check_digit("9405235802")},
            "npi: This NPI's last digit doesn't match: please check it for a typo.",
        ),
        (
            "sample_prescribers.jsonl",
            {"street": None, "city": None, "postal_code": None, "telehealth_only": False},
            "city: Give the city or ZIP of the office, or choose 'Telehealth only'.",
        ),
        (
            "sample_pharmacies.jsonl",
            {"phone": None, "website": None, "email": None},
            "phone: Give at least one way to reach the pharmacy: phone, website or email.",
        ),
        (
            "sample_pharmacies.jsonl",
            {"postal_code": "3523"},
            "postal_code: That doesn't look like a postal code for this country: expected a "
            "5-digit ZIP code, like 35233.",
        ),
    ],
)
def test_seed_rows_meet_the_public_forms_rules(runner, tmp_path, name, changes, message) -> None:
    """The rules a person's suggestion meets (forms/listing.py) hold for seed rows too."""
    seeds = _copy_seeds(tmp_path)
    assert json.loads((seeds / name).read_text().splitlines()[0])["country"] == "US"
    if "npi" in changes:
        assert json.loads((seeds / name).read_text().splitlines()[0])["npi"] == "9405235802"
    path = _break_row(seeds, name, 1, **changes)
    # A vocabulary change in the same load: the form's rules run after it is written, and
    # the failure must take it back too.
    fillers = seeds / "fillers.csv"
    text = fillers.read_text()
    assert "mcc,Microcrystalline cellulose (Avicel)," in text
    fillers.write_text(text.replace("mcc,Microcrystalline cellulose (Avicel),", "mcc,Renamed,"))
    result = runner.invoke(args=["seed", "--dir", str(seeds)])
    assert result.exit_code == 1
    assert f"{path}:1: {message}" in result.output
    assert "Nothing was loaded" in result.output
    assert db.session.scalar(select(func.count()).select_from(Listing)) == 0
    assert db.session.scalar(select(Filler.name).where(Filler.code == "mcc")) == (
        "Microcrystalline cellulose (Avicel)"
    )


def test_the_seed_check_is_the_forms_check(app) -> None:
    """A listing the form refuses is refused by listing_errors with the same message, and
    a listing the form accepts comes back through it unchanged."""
    from directory.forms.listing import listing_errors

    rows = [json.loads(line) for line in (seeding.SEEDS / "sample_prescribers.jsonl").open()]
    assert all(listing_errors(Kind.PRESCRIBER, row) == {} for row in rows)
    bad = {**rows[0], "npi": "12345"}
    assert listing_errors(Kind.PRESCRIBER, bad) == {"npi": ["An NPI has exactly 10 digits."]}


def test_broken_json_and_bad_vocabulary_are_named(runner, tmp_path) -> None:
    seeds = _copy_seeds(tmp_path)
    (seeds / "sample_prescribers.jsonl").write_text('{"key": "x",\n')
    result = runner.invoke(args=["seed", "--dir", str(seeds)])
    assert result.exit_code == 1
    assert "sample_prescribers.jsonl:1: not valid JSON" in result.output
    seeds = _copy_seeds(tmp_path / "b")
    fillers = seeds / "fillers.csv"
    rows = fillers.read_text().rstrip("\n").splitlines()
    fillers.write_text("\n".join([*rows, "talc,Talc,probably,why"]) + "\n")
    result = runner.invoke(args=["seed", "--dir", str(seeds)])
    assert result.exit_code == 1
    assert (
        f"fillers.csv:{len(rows) + 1}: guidance must be fine, caution or advised_against"
        in result.output
    )


def test_seed_against_an_unwritable_database_path_says_what_to_fix(tmp_path) -> None:
    from tests.conftest import make_app

    app = make_app(f"sqlite:///{tmp_path}/no/such/folder/x.db")
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 1
    assert "The folder for the SQLite database does not exist" in result.output


def test_bad_database_url_is_one_clear_line(tmp_path) -> None:
    import subprocess
    import sys

    from tests.conftest import clean_env

    env = clean_env(
        DATABASE_URL="nonsense-url", SECRET_KEY="x" * 40, PUBLIC_URL="https://ldn.example.org"
    )
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "init-db"],
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "DATABASE_URL is not a database URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_search_command_uses_the_search_module(seeded, runner) -> None:
    result = runner.invoke(args=["search", "98101", "--radius", "10", "--filter", "reliable"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].endswith("of Seattle, WA 98101:")
    distances = [
        float(line.split()[0]) for line in lines[1:] if not line.strip().startswith("also")
    ]
    assert distances and distances == sorted(distances) and max(distances) <= 10
    bad = runner.invoke(args=["search", "Xyzzyville"])
    assert bad.exit_code == 1 and "We couldn't find 'Xyzzyville'" in bad.output


def test_export_writes_published_listings_without_private_data(seeded, runner, tmp_path) -> None:
    from directory import moderation
    from directory.geocoding import Geocoding

    moderation.submit(
        listing_kind=Kind.PHARMACY,
        data={"name": "Pending Only", "country": "US", "city": "Seattle", "region": "US-WA"},
        geocoding=Geocoding(),
        email="secret-submitter@example.org",
    )
    out = tmp_path / "listings.jsonl"
    result = runner.invoke(args=["export", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == db.session.scalar(select(func.count()).select_from(Listing))
    text = out.read_text()
    assert "secret-submitter" not in text and "Pending Only" not in text
    listings = {x.id: x for x in db.session.scalars(select(Listing))}
    folder = {Kind.PHARMACY: "pharmacies", Kind.PRESCRIBER: "prescribers"}
    for row in rows:
        listing = listings[row["id"]]
        assert row["url"] == f"/{folder[listing.kind]}/{listing.id}-{listing.slug}"


def test_one_set_of_rules_checks_many_rows_as_fresh_forms_do(app) -> None:
    """ListingRules re-processes one form per kind for every row (imports check thousands):
    nothing a row typed may stay behind for the next, so each answer equals a fresh form's."""
    from directory.forms.listing import ListingRules, listing_errors

    rows = [
        (kind, json.loads(line))
        for kind, name in (
            (Kind.PHARMACY, "sample_pharmacies.jsonl"),
            (Kind.PRESCRIBER, "sample_prescribers.jsonl"),
        )
        for line in (seeding.SEEDS / name).open()
    ]
    breaks = [
        {"npi": "1234567890"},
        {"phone": None, "website": None, "email": None, "fillers": ["talc"]},
        {"postal_code": "3523", "telehealth_only": False, "street": None, "city": None},
        {"licensed_in": ["US-ZZ"], "dosage_forms": ["plutonium"]},
    ]
    rules = ListingRules()
    checked = 0
    for i, (kind, row) in enumerate(rows):
        for data in (row, {**row, **breaks[i % len(breaks)]}):
            assert rules.errors(kind, data) == listing_errors(kind, data), (row["key"], data)
            checked += 1
    assert checked == 2 * len(rows) > 200
    assert any(rules.errors(kind, {**row, **breaks[0]}) for kind, row in rows)
