"""`flask --app wsgi import-nppes`: the NPI registry's file in (CSV or zip), on a small file in
the real 330-column layout, written by bench/nppes_generate.py; and the "Confirmed to make LDN"
filter that leaves out what the registry brought in until someone confirms it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bench import nppes_generate as gen
from directory import moderation, nppes
from directory.extensions import db
from directory.geocoding.app import geocoder
from directory.listings import to_data
from directory.models import (
    AuditEntry,
    Kind,
    Listing,
    ListingSource,
    Role,
    Status,
    Submission,
    SubmissionStatus,
    User,
)
from directory.moderation import imports
from tests import builders
from tests.conftest import html, texts

SEATTLE = gen.npi(1)
PORTLAND = gen.npi(2)
RETAIL = gen.npi(3)
PERSON = gen.npi(4)
GONE = gen.npi(5)
BROKEN = gen.npi(6)
NO_PHONE = gen.npi(7)
SPOKANE = gen.npi(8)
COMPOUNDING = nppes.COMPOUNDING_PHARMACY


def seattle(**changes: Any) -> list[str]:
    fields: dict[str, Any] = {
        "name": "PIKE PLACE COMPOUNDING LLC",
        "street": "1500 PIKE PL",
        "street2": "STE 200",
        "city": "SEATTLE",
        "state": "WA",
        "postal_code": "981011234",  # ZIP+4
        "phone": "2065550100",
        "taxonomies": ["333600000X", COMPOUNDING],
        "mailing": ("PO BOX 77", "SPOKANE", "WA", "99201"),
    }
    return gen.registry_row(SEATTLE, **{**fields, **changes})


def rows(**seattle_changes: Any) -> list[list[str]]:
    """The small file: line 2 is Seattle, then one of each case."""
    seventh = ["207Q00000X"] * 6 + [COMPOUNDING]
    broken = gen.registry_row(BROKEN, name="HALF ROW RX", taxonomies=[COMPOUNDING])[:200]
    return [
        seattle(**seattle_changes),
        gen.registry_row(
            PORTLAND,
            name="ROSE CITY HEALTH INC",
            dba="Rose City Compounding",
            street="800 SW BROADWAY",
            city="PORTLAND",
            state="OR",
            postal_code="97205",
            phone="5035550111",
            taxonomies=seventh,  # the code in the 7th of 15 slots
        ),
        gen.registry_row(
            RETAIL,
            name="CORNER DRUG",
            city="SEATTLE",
            state="WA",
            postal_code="98101",
            phone="2065550122",
            taxonomies=["3336C0003X"],
        ),
        gen.registry_row(
            PERSON,
            entity="1",
            name="DOE, JANE",
            city="SEATTLE",
            state="WA",
            postal_code="98101",
            phone="2065550133",
            taxonomies=[COMPOUNDING],
        ),
        gen.registry_row(GONE, deactivated="05/14/2025"),
        broken,  # line 7
        gen.registry_row(
            NO_PHONE,
            name="QUIET COMPOUNDING",
            street="1 MAIN ST",
            city="BIRMINGHAM",
            state="AL",
            postal_code="35233",
            taxonomies=[COMPOUNDING],
        ),
        gen.registry_row(
            SPOKANE,
            name="INLAND NW COMPOUNDING",
            street="10 N POST ST",
            city="SPOKANE",
            state="WA",
            postal_code="99201",
            phone="5095550144",
            taxonomies=[COMPOUNDING],
        ),
    ]


FILE = "npidata_pfile_20050523-20261109.csv"
NEWER = "npidata_pfile_20050523-20261207.csv"


def write(tmp_path: Path, data: Sequence[Sequence[str]], name: str = FILE) -> Path:
    return gen.write_csv(tmp_path / name, data)


def run(runner, path: Path, *args: str):  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["import-nppes", str(path), *args])
    db.session.expire_all()
    return result


def listing_for(npi: str) -> Listing:
    source = db.session.scalar(select(ListingSource).where(ListingSource.source_id == npi))
    assert source is not None, f"no listing for NPI {npi}"
    return source.listing


def counts() -> dict[str, int]:
    return {
        model.__tablename__: db.session.scalar(select(func.count()).select_from(model)) or 0
        for model in (Listing, ListingSource, AuditEntry, Submission)
    }


# --- reading the file -------------------------------------------------------------------------


@pytest.mark.parametrize("zipped", [False, True], ids=["csv", "zip"])
def test_imports_compounding_pharmacies_and_nothing_else(
    app, runner, tmp_path: Path, zipped: bool
) -> None:
    path = (
        gen.write_zip(tmp_path / "NPPES_Data_Dissemination_November_2026.zip", rows())
        if zipped
        else write(tmp_path, rows())
    )
    result = run(runner, path)
    assert result.exit_code == 0, result.output
    assert "8 rows read, 4 compounding pharmacies: new 3," in result.output
    assert re.search(r"skipped, malformed row: 1 \(line 7: 200 fields", result.output)
    assert "skipped, not an organization with the compounding-pharmacy taxonomy: 1 (line 5)" in (
        result.output
    )
    assert "refused by the listing rules: 1 (line 8: NPI" in result.output
    assert "way to reach the pharmacy" in result.output

    npis = set(db.session.scalars(select(ListingSource.source_id)))
    assert npis == {SEATTLE, PORTLAND, SPOKANE}
    pike = listing_for(SEATTLE)
    # The practice location (not the Spokane mailing address), ZIP+4 as a ZIP, tidied words.
    assert (pike.name, pike.street, pike.city, pike.region, pike.postal_code) == (
        "Pike Place Compounding LLC",
        "1500 Pike Pl, Ste 200",
        "Seattle",
        "US-WA",
        "98101",
    )
    assert pike.phone == "+12065550100"
    assert pike.phone_digits == "2065550100"  # the trigger kept its copy
    assert pike.npi == SEATTLE and pike.kind == Kind.PHARMACY
    assert pike.makes_ldn is None and pike.status == Status.OPEN and not pike.fillers_known
    # The pin is the ZIP's, offline, and says so.
    assert pike.geo_precision is not None and pike.geo_precision.value == "postal_code"
    assert pike.lat == pytest.approx(47.61, abs=0.1) and pike.lon == pytest.approx(-122.33, abs=0.1)
    assert listing_for(PORTLAND).name == "Rose City Compounding"  # the DBA name

    source = db.session.scalar(select(ListingSource).where(ListingSource.source_id == SEATTLE))
    assert source is not None and source.source == nppes.SOURCE
    assert source.file == FILE and source.as_of.isoformat() == "2026-11-09"
    entries = list(db.session.scalars(select(AuditEntry).where(AuditEntry.listing_id == pike.id)))
    assert [(e.action, e.actor_label) for e in entries] == [("import_new", imports.OPERATOR)]
    assert FILE in (entries[0].reason or "")


def test_a_file_in_another_layout_is_refused_before_anything_is_written(
    app, runner, tmp_path: Path
) -> None:
    header = [c for c in gen.HEADER if c not in (nppes.CITY, nppes.PHONE)]
    drop = [gen.COLUMN[nppes.CITY], gen.COLUMN[nppes.PHONE]]
    data = [[v for i, v in enumerate(row) if i not in drop] for row in rows()]
    path = gen.write_csv(tmp_path / FILE, data, header)
    before = counts()
    result = run(runner, path)
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert f'"{nppes.CITY}"' in result.output and f'"{nppes.PHONE}"' in result.output
    assert counts() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--state", "XX"], "Unknown state code 'XX'"),
        (["--as", " "], "--as needs a name"),
    ],
)
def test_bad_options_fail_with_one_line(app, runner, tmp_path, args, message) -> None:  # type: ignore[no-untyped-def]
    result = run(runner, write(tmp_path, rows()), *args)
    assert result.exit_code == 1 and message in result.output
    assert result.output.count("\n") == 1


def test_a_missing_file_and_a_zip_without_the_main_file(app, runner, tmp_path: Path) -> None:
    missing = run(runner, tmp_path / "nope.csv")
    assert missing.exit_code == 1 and "There is no file" in missing.output
    import zipfile

    odd = tmp_path / "other.zip"
    with zipfile.ZipFile(odd, "w") as archive:
        archive.writestr("readme.txt", "hello")
    result = run(runner, odd)
    assert result.exit_code == 1 and "no npidata_pfile" in result.output


# --- running it again -------------------------------------------------------------------------


def test_importing_the_same_file_again_changes_nothing(app, runner, tmp_path: Path) -> None:
    path = write(tmp_path, rows())
    assert run(runner, path).exit_code == 0
    before = counts()
    stamps = dict(db.session.execute(select(Listing.id, Listing.updated_at)).all())
    again = run(runner, path)
    assert again.exit_code == 0, again.output
    assert "new 0, linked 0, updated 0, queued 0" in again.output and "unchanged 3" in again.output
    assert counts() == before
    assert dict(db.session.execute(select(Listing.id, Listing.updated_at)).all()) == stamps


def test_a_newer_file_updates_listings_nobody_edited(app, runner, tmp_path: Path) -> None:
    assert run(runner, write(tmp_path, rows())).exit_code == 0
    pike = listing_for(SEATTLE)
    newer = write(tmp_path, rows(phone="2065550199", postal_code="98104"), NEWER)
    result = run(runner, newer)
    assert "updated 1" in result.output and "unchanged 2" in result.output
    assert pike.phone == "+12065550199" and pike.postal_code == "98104"
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "import_update")).one()
    assert entry.listing_id == pike.id and NEWER in (entry.reason or "")
    assert entry.before == {"phone": "+12065550100", "postal_code": "98101"} | {
        k: entry.before[k] for k in entry.before if k in ("lat", "lon")
    }
    assert entry.after is not None and entry.after["phone"] == "+12065550199"
    source = db.session.scalar(select(ListingSource).where(ListingSource.listing_id == pike.id))
    assert source is not None and source.file == NEWER and source.data["postal_code"] == "98104"
    # Unchanged rows of the newer file: no audit entry, only the provenance date moves on.
    portland = db.session.scalar(select(ListingSource).where(ListingSource.source_id == PORTLAND))
    assert portland is not None and portland.as_of.isoformat() == "2026-12-07"
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 4


def _moderator_approves(listing: Listing, changes: dict[str, Any]) -> None:
    moderator = builders.user("mod", "correct horse battery", Role.MODERATOR)
    sub, _ = moderation.submit(
        listing_kind=Kind.PHARMACY,
        data={**to_data(listing), **changes},
        geocoding=geocoder(),
        listing=listing,
        problem="wrong_details",
    )
    moderation.approve(sub.id, moderator)
    db.session.expire_all()


def test_a_moderators_edit_turns_the_registrys_change_into_a_queued_correction(
    app, runner, tmp_path: Path
) -> None:
    assert run(runner, write(tmp_path, rows())).exit_code == 0
    pike = listing_for(SEATTLE)
    _moderator_approves(pike, {"name": "Pike Place Compounding (Pharmacy 2)"})
    result = run(runner, write(tmp_path, rows(phone="2065550199"), NEWER))
    assert "queued 1 (1 corrections, 0 problem reports)" in result.output, result.output
    assert pike.phone == "+12065550100"  # not applied
    assert pike.name == "Pike Place Compounding (Pharmacy 2)"
    queued = db.session.scalars(
        select(Submission).where(
            Submission.listing_id == pike.id, Submission.status == SubmissionStatus.PENDING
        )
    ).one()
    assert queued.data == {"phone": "+12065550199"} and NEWER in (queued.note or "")
    audit = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "import_queued"))
    assert [e.submission_id for e in audit] == [queued.id]
    # The same file again queues nothing more.
    again = run(runner, write(tmp_path, rows(phone="2065550199"), NEWER))
    assert "queued 0" in again.output
    # The moderator can take it: the ordinary review applies it.
    moderator = db.session.scalar(select(User).where(User.username == "mod"))
    assert moderator is not None
    moderation.approve(queued.id, moderator)
    db.session.expire_all()
    assert pike.phone == "+12065550199"


def test_ldn_facts_are_never_touched(app, runner, tmp_path: Path) -> None:
    assert run(runner, write(tmp_path, rows())).exit_code == 0
    pike = listing_for(SEATTLE)
    _moderator_approves(
        pike,
        {
            "makes_ldn": True,
            "sr_policy": "ir_only",
            "fillers": ["mcc"],
            "dosage_forms": ["capsule"],
        },
    )
    facts = {k: to_data(pike)[k] for k in ("makes_ldn", "sr_policy", "fillers", "dosage_forms")}
    result = run(runner, write(tmp_path, rows(street="1600 PIKE PL", street2=""), NEWER))
    assert "updated 1" in result.output, result.output
    assert pike.street == "1600 Pike Pl"
    assert {k: to_data(pike)[k] for k in facts} == facts


def test_a_deactivated_npi_closes_an_unconfirmed_listing_and_reports_a_confirmed_one(
    app, runner, tmp_path: Path
) -> None:
    assert run(runner, write(tmp_path, rows())).exit_code == 0
    spokane, portland = listing_for(SPOKANE), listing_for(PORTLAND)
    _moderator_approves(portland, {"makes_ldn": True})
    gone = [
        gen.registry_row(SPOKANE, deactivated="11/30/2026"),
        gen.registry_row(PORTLAND, deactivated="11/30/2026"),
    ]
    result = run(runner, write(tmp_path, gone, NEWER))
    assert "closed 1" in result.output and "(0 corrections, 1 problem reports)" in result.output
    assert spokane.status == Status.CLOSED
    assert portland.status == Status.OPEN
    report = db.session.scalars(
        select(Submission).where(
            Submission.listing_id == portland.id, Submission.status == SubmissionStatus.PENDING
        )
    ).one()
    assert report.problem == "closed" and "Deactivated in the NPI registry" in (report.note or "")
    closing = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "import_close"))
    assert [e.listing_id for e in closing] == [spokane.id]
    again = run(runner, write(tmp_path, gone, NEWER))
    assert "closed 0" in again.output and "(0 corrections, 0 problem reports)" in again.output


def test_a_pharmacy_listed_already_gets_the_registry_entry_not_a_twin(
    app, runner, tmp_path: Path
) -> None:
    known = builders.pharmacy(
        name="Pike Place Compounding",
        city="Seattle",
        region="US-WA",
        postal_code="98101",
        phone="+1 206 555 0100",  # the registry's number, written another way
        makes_ldn=True,
    )
    db.session.commit()
    result = run(runner, write(tmp_path, rows()))
    assert "new 2, linked 1," in result.output, result.output
    assert listing_for(SEATTLE).id == known.id
    assert known.name == "Pike Place Compounding" and known.makes_ldn is True
    assert known.npi == SEATTLE
    link = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "import_link")).one()
    assert link.listing_id == known.id and FILE in (link.reason or "")
    # Its listing is the moderators': the registry's next change waits in the queue.
    newer = run(runner, write(tmp_path, rows(phone="2065550199"), NEWER))
    assert "linked 0, updated 0, queued 1" in newer.output, newer.output


def test_a_sample_listing_is_never_taken_for_the_real_pharmacy(
    seeded, runner, tmp_path: Path
) -> None:
    # The Seattle sample's made-up number is the registry row's number here.
    sample = db.session.scalar(select(Listing).where(Listing.phone_digits == "2065550100"))
    assert sample is not None and sample.is_sample
    result = run(runner, write(tmp_path, rows()))
    assert "new 3, linked 0," in result.output, result.output
    assert listing_for(SEATTLE).id != sample.id


# --- options ----------------------------------------------------------------------------------


def test_a_dry_run_reports_and_writes_nothing(app, runner, tmp_path: Path) -> None:
    before = counts()
    result = run(runner, write(tmp_path, rows()), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would be new 3" in result.output
    assert f"would add NPI {SEATTLE}, Pike Place Compounding LLC" in result.output
    assert "Dry run: nothing was written." in result.output
    assert counts() == before
    # And on changes to listings it holds.
    assert run(runner, write(tmp_path, rows())).exit_code == 0
    held = counts()
    newer = run(runner, write(tmp_path, rows(phone="2065550199"), NEWER), "--dry-run")
    assert "updated 1" in newer.output and f"would update NPI {SEATTLE}: phone" in newer.output
    assert counts() == held and listing_for(SEATTLE).phone == "+12065550100"


def test_state_limits_the_import_and_as_names_the_operator(app, runner, tmp_path: Path) -> None:
    result = run(runner, write(tmp_path, rows()), "--state", "or", "--as", "alice")
    assert result.exit_code == 0, result.output
    assert set(db.session.scalars(select(ListingSource.source_id))) == {PORTLAND}
    assert "skipped, outside the chosen states: 3 (line 2; line 8; line 9)" in result.output
    assert set(db.session.scalars(select(AuditEntry.actor_label))) == {"alice"}


def test_an_interrupted_run_leaves_whole_batches_and_can_be_run_again(app, tmp_path: Path) -> None:
    many = [
        gen.registry_row(
            gen.npi(100 + n),
            name=f"PHARMACY {n}",
            city="SEATTLE",
            state="WA",
            postal_code="98101",
            phone=f"20655501{n:02d}",
            taxonomies=[COMPOUNDING],
        )
        for n in range(7)
    ]
    path = write(tmp_path, many)

    def import_until(stop: int | None) -> imports.Report:
        with nppes.open_registry(path) as registry:
            job = imports.RegistryImport(registry.name, registry.file_date, batch_size=2)
            for n, item in enumerate(nppes.scan(registry, job.held_npis)):
                if n == stop:
                    raise KeyboardInterrupt
                job.feed(item)
            return job.finish()

    with pytest.raises(KeyboardInterrupt):
        import_until(5)
    db.session.rollback()
    assert counts()[Listing.__tablename__] == 4  # two whole batches of two
    assert counts()[ListingSource.__tablename__] == 4
    assert counts()[AuditEntry.__tablename__] == 4
    report = import_until(None)
    assert (report.new, report.unchanged) == (3, 4)
    assert counts()[Listing.__tablename__] == 7


# --- what patients see ------------------------------------------------------------------------


def test_the_confirmed_filter_on_the_page_and_the_api(app, runner, client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert run(runner, write(tmp_path, rows())).exit_code == 0
    confirmed = builders.pharmacy(
        name="Confirmed Seattle Compounding",
        city="Seattle",
        region="US-WA",
        postal_code="98101",
        lat=47.61,
        lon=-122.33,
    )
    db.session.commit()
    near = {"near": "98101", "radius": "10", "kind": "pharmacy"}
    body = client.get("/api/v1/search", query_string=near).get_json()
    by_name = {r["name"]: r for r in body["results"]}
    assert by_name["Pike Place Compounding LLC"]["makes_ldn"] is None
    assert by_name[confirmed.name]["makes_ldn"] is True
    only = client.get("/api/v1/search", query_string={**near, "confirmed": "1"}).get_json()
    assert [r["name"] for r in only["results"]] == [confirmed.name]
    assert only["filters"] == ["confirmed"]

    page = client.get("/search", query_string=near)
    cards = texts(page, ".card")
    pike_card = next(c for c in cards if "Pike Place" in c)
    assert "Not yet confirmed that it makes LDN" in pike_card
    assert html(page).select_one("input#f-confirmed") is not None
    filtered = client.get("/search", query_string={**near, "confirmed": "1"})
    assert not any("Pike Place" in c for c in texts(filtered, ".card"))
    assert html(filtered).select_one("input#f-confirmed").has_attr("checked")


def test_the_listing_page_says_where_it_came_from(app, runner, client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert run(runner, write(tmp_path, rows())).exit_code == 0
    pike = listing_for(SEATTLE)
    page = client.get(f"/pharmacies/{pike.id}-{pike.slug}")
    assert texts(page, ".provenance") == [
        f"In the NPI registry as a compounding pharmacy (NPI {SEATTLE}), file of 2026-11-09."
    ]
    other = builders.pharmacy()
    db.session.commit()
    assert texts(client.get(f"/pharmacies/{other.id}-{other.slug}"), ".provenance") == []


# --- pieces -----------------------------------------------------------------------------------


def test_tidy_keeps_written_case_and_known_capitals() -> None:
    assert nppes.tidy("BEACON  HILL PHARMACY LLC") == "Beacon Hill Pharmacy LLC"
    assert nppes.tidy("1500 NW 1ST AVE") == "1500 NW 1st Ave"
    assert nppes.tidy("McKinley Drug") == "McKinley Drug"


def test_a_quoted_line_break_stays_inside_its_row(app, tmp_path: Path) -> None:
    row = seattle(street2="BLDG A\nSTE 200")
    path = write(tmp_path, [row, rows()[1]])
    with nppes.open_registry(path) as registry:
        found = list(nppes.scan(registry, set()))
    assert [type(r).__name__ for r in found] == ["RegistryRow", "RegistryRow"]
    first, second = found
    assert isinstance(first, nppes.RegistryRow) and isinstance(second, nppes.RegistryRow)
    assert first.values["street"] == "1500 Pike Pl, Bldg A Ste 200"
    assert (first.line, second.line) == (2, 4)
