"""listings.confirmed_nearby stays right whatever writes: moderators' decisions, upkeep, new
listings and imports as well as call outcomes (moderation/nearby.py), one listing at a time
or, for a bulk write, in one pass over the area it touched. After each step the stored marks
equal the ones worked out the slow way, and `flask check` finds no drift."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from directory import moderation
from directory.extensions import db
from directory.geocoding import Geocoding
from directory.listings import to_data
from directory.models import Kind, Listing, Status
from directory.moderation import calls, nearby
from tests import builders
from tests.test_calls import SEATTLE, SPOKANE, TACOMA, imported, nearby_oracle, stored_nearby
from tests.test_decisions import report

TODAY = date.today()
NEAR_SPOKANE = {**SPOKANE, "lat": SPOKANE["lat"] + 0.1}  # about 7 miles north


@pytest.fixture(params=["one at a time", "bulk: one pass over the area"])
def mode(request, monkeypatch) -> str:
    # Both ways of settling a transaction's changes must give the same marks.
    if request.param.startswith("bulk"):
        monkeypatch.setattr(nearby, "AREA_MIN", 1)
    return request.param


@pytest.fixture
def mod(auth):
    return auth.create("mod")


def right() -> dict[int, bool]:
    """The stored marks, after checking them against the slow way and `flask check`'s."""
    db.session.expire_all()
    stored = stored_nearby()
    assert stored == nearby_oracle()
    assert calls.nearby_drift() == []
    return stored


def test_approving_a_correction_that_confirms_a_pharmacy_marks_its_neighbours(
    app, mod, mode
) -> None:
    seattle = imported(**SEATTLE)  # nobody has asked about LDN yet
    tacoma = imported(**TACOMA)
    spokane = imported(**SPOKANE)
    assert not any(right().values())
    sub = report(seattle, "wrong_details", makes_ldn=True, sr_policy="ir_only")
    moderation.approve(sub.id, mod, verify_method="phone")  # "I also checked"
    marks = right()
    assert marks[seattle.id] and marks[tacoma.id] and not marks[spokane.id]


def test_mark_closed_and_resolve_unmarks_neighbours_left_without_one(
    client, auth, mod, mode
) -> None:
    seattle = builders.pharmacy(**SEATTLE, verified_on=TODAY)
    spokane = builders.pharmacy(**SPOKANE, verified_on=TODAY)
    tacoma = imported(**TACOMA)
    near_spokane = imported(**NEAR_SPOKANE)
    marks = right()  # the builders' commits marked them already
    assert marks[tacoma.id] and marks[near_spokane.id]

    sub = report(seattle, "closed")
    assert auth.login("mod").status_code == 303
    response = client.post(
        f"/moderation/submissions/{sub.id}/resolve", data={"resolution": "close"}
    )
    assert response.status_code == 303
    assert db.session.get(Listing, seattle.id).status == Status.CLOSED
    marks = right()
    assert not marks[tacoma.id] and not marks[seattle.id]
    assert marks[near_spokane.id] and marks[spokane.id]  # Spokane's pharmacy still counts


def test_a_new_listing_published_near_a_confirmed_pharmacy_starts_marked(app, mod, mode) -> None:
    seattle = builders.pharmacy(**SEATTLE, verified_on=TODAY)
    right()
    near, far = [
        moderation.submit(
            listing_kind=Kind.PRESCRIBER,
            data=to_data(builders.prescriber()) | {"name": name},
            geocoding=Geocoding(),
        )[0]
        for name in ("Dr. Near", "Dr. Far")
    ]
    new_near = moderation.approve(near.id, mod, pin=(TACOMA["lat"], TACOMA["lon"])).listing
    new_far = moderation.approve(far.id, mod, pin=(SPOKANE["lat"], SPOKANE["lon"])).listing
    marks = right()
    assert marks[new_near.id] and not marks[new_far.id] and marks[seattle.id]


def test_upkeep_keeps_the_marks(app, mod, mode) -> None:
    seattle = imported(**SEATTLE, makes_ldn=True)
    tacoma = imported(**TACOMA)
    spokane = imported(**SPOKANE)
    moderation.mark_verified(seattle.id, mod, "phone", TODAY)
    assert right()[tacoma.id]
    # The pharmacy's pin moves to Spokane: Tacoma loses it, Spokane gains it.
    moderation.set_pin(seattle.id, mod, NEAR_SPOKANE["lat"], NEAR_SPOKANE["lon"])
    marks = right()
    assert not marks[tacoma.id] and marks[spokane.id]
    moderation.set_status(seattle.id, mod, "closed", "Shut for good")
    assert not any(right().values())
    moderation.set_status(seattle.id, mod, "open", "Reopened")
    assert right()[spokane.id]


def test_a_listing_deleted_takes_its_mark_with_it(app, mode) -> None:
    seattle = builders.pharmacy(**SEATTLE, verified_on=TODAY)
    tacoma = imported(**TACOMA)
    assert right()[tacoma.id]
    db.session.delete(db.session.get(Listing, seattle.id))
    db.session.commit()
    assert not right()[tacoma.id]


def test_a_rolled_back_change_leaves_nothing_to_settle(app) -> None:
    seattle = imported(**SEATTLE)
    tacoma = imported(**TACOMA)
    listing = db.session.get(Listing, seattle.id)
    moderation.add_verification(listing, TODAY, "phone")
    listing.makes_ldn = True
    db.session.flush()
    db.session.rollback()
    builders.prescriber()  # another transaction commits: nothing from the one rolled back
    assert not right()[tacoma.id]


def test_an_import_marks_what_it_adds(app, runner, mode, tmp_path: Path) -> None:
    builders.user("alice")
    builders.pharmacy(**SEATTLE, verified_on=TODAY)
    rows = [
        "kind,name,street,city,region,postal_code,country,lat,lon,phone,makes_ldn",
        f"prescriber,Dr. Tacoma,1 A St,Tacoma,US-WA,98003,US,{TACOMA['lat']},{TACOMA['lon']},"
        "+1 253-555-0100,",
        f"prescriber,Dr. Spokane,1 B St,Spokane,US-WA,99201,US,{SPOKANE['lat']},"
        f"{SPOKANE['lon']},+1 509-555-0100,",
    ]
    path = tmp_path / "few.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = runner.invoke(args=["import", str(path), "--as", "alice"])
    assert result.exit_code == 0, result.output
    names = dict(db.session.execute(select(Listing.name, Listing.confirmed_nearby)).all())
    assert names["Dr. Tacoma"] and not names["Dr. Spokane"]
    right()
