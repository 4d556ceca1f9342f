"""Moderation decisions: their effect on published data and on the audit trail."""

import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, text

from directory import moderation
from directory.extensions import db
from directory.geocoding import Geocoding
from directory.models import AuditEntry, Kind, Listing, Role, Submission, SubmissionStatus
from tests import builders
from tests.conftest import PASSWORD, html, make_app

NEW_PHARMACY = {
    "name": "Magnolia Compounding",
    "street": "100 Main St",
    "city": "Birmingham",
    "region": "US-AL",
    "postal_code": "35233",
    "country": "US",
    "phone": "(205) 555-0142",
    "website": "https://example.org/magnolia",
    "email": None,
    "makes_ldn": True,
    "dosage_forms": ["capsule"],
    "sr_policy": "ir_only",
    "fillers": ["mcc"],
    "price_notes": None,
    "mail_order": False,
    "ships_to": [],
}


def submit_new(data=None) -> Submission:
    sub, created = moderation.submit(
        listing_kind=Kind.PHARMACY,
        data=dict(data or NEW_PHARMACY),
        geocoding=Geocoding(),
        note="I get my LDN here",
        email="patient@example.org",
        relation="patient",
    )
    assert created
    return sub


def audit_actions(listing_id=None):
    stmt = select(AuditEntry.action).order_by(AuditEntry.id)
    if listing_id is not None:
        stmt = stmt.where(AuditEntry.listing_id == listing_id)
    return list(db.session.scalars(stmt))


@pytest.fixture
def mod(auth):
    return auth.create("mod")


@pytest.fixture
def signed_in(client, auth, mod):
    assert auth.login("mod").status_code == 303
    return client


def test_submission_is_pending_until_approved(app, mod) -> None:
    sub = submit_new()
    assert db.session.scalar(select(func.count()).select_from(Listing)) == 0
    assert sub.place is not None and sub.place["precision"] == "postal_code"
    listing = moderation.approve(sub.id, mod, verify_method="phone")
    assert listing.name == "Magnolia Compounding" and listing.lat is not None
    assert listing.verified_on == date.today()
    assert listing.verifications[0].moderator.username == "mod"
    db.session.refresh(sub)
    assert sub.status == SubmissionStatus.APPROVED and sub.handled_by.username == "mod"
    entries = db.session.scalars(
        select(AuditEntry).where(AuditEntry.listing_id == listing.id)
    ).all()
    approve = [e for e in entries if e.action == "approve_new"][0]
    assert approve.actor_label == "mod" and approve.before is None
    assert approve.after["name"] == "Magnolia Compounding"


def test_edit_then_approve_publishes_the_edited_values(app, mod) -> None:
    sub = submit_new()
    listing = moderation.approve(
        sub.id, mod, data={**NEW_PHARMACY, "name": "Magnolia Compounding Pharmacy"}
    )
    assert listing.name == "Magnolia Compounding Pharmacy"


def test_hand_set_pin_wins(app, mod) -> None:
    sub = submit_new()
    listing = moderation.approve(sub.id, mod, pin=(33.5, -86.81))
    assert (listing.lat, listing.lon, listing.geo_precision.value) == (33.5, -86.81, "coordinates")


def test_correction_applies_only_the_chosen_fields(app, mod) -> None:
    p = builders.pharmacy(name="Old Name", phone="(205) 555-0100", sr_policy="unknown")
    data = {
        **moderation.to_data(p),
        "name": "New Name",
        "sr_policy": "ir_only",
        "phone": "(205) 555-0111",
    }
    sub, _ = moderation.submit(
        listing_kind=Kind.PHARMACY,
        listing=p,
        data=data,
        geocoding=Geocoding(),
        problem="wrong_details",
    )
    changed = {f for f, _, _ in moderation.diff(p, sub.data)}
    assert changed == {"name", "sr_policy", "phone"}
    moderation.approve(sub.id, mod, fields=["name", "sr_policy"])
    db.session.refresh(p)
    assert p.name == "New Name" and p.sr_policy.value == "ir_only" and p.phone == "(205) 555-0100"
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "approve_correction")
    ).one()
    assert entry.before["name"] == "Old Name" and entry.after["name"] == "New Name"


def test_reject_needs_a_reason_and_records_it(app, mod) -> None:
    sub = submit_new()
    with pytest.raises(moderation.ModerationError):
        moderation.reject(sub.id, mod, "  ")
    moderation.reject(sub.id, mod, "Not a compounding pharmacy")
    db.session.refresh(sub)
    assert sub.status == SubmissionStatus.REJECTED and sub.reason == "Not a compounding pharmacy"
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "reject")).one()
    assert entry.reason == "Not a compounding pharmacy"
    assert db.session.scalar(select(func.count()).select_from(Listing)) == 0


def test_handled_items_cannot_be_handled_again(app, mod) -> None:
    sub = submit_new()
    moderation.reject(sub.id, mod, "spam")
    with pytest.raises(moderation.AlreadyHandled):
        moderation.approve(sub.id, mod)
    assert db.session.scalar(select(func.count()).select_from(Listing)) == 0


def test_merge_fills_in_only_missing_values(app, mod) -> None:
    existing = builders.pharmacy(name="Magnolia Compounding", website=None, phone="(205) 555-0142")
    sub = submit_new()
    assert {
        "type": "listing",
        "id": existing.id,
        "reasons": ["same phone", "similar name within 1 km"],
    } in sub.duplicates
    moderation.merge(sub.id, existing.id, mod)
    db.session.refresh(existing)
    assert existing.website == "https://example.org/magnolia"
    assert existing.street != "100 Main St"  # published value kept
    assert db.session.scalar(select(func.count()).select_from(Listing)) == 1


def test_verify_flags_status_and_pin_are_audited(app, mod) -> None:
    p = builders.pharmacy(verified_on=date.today() - timedelta(days=500))
    assert p in moderation.due_for_reverification()
    moderation.mark_verified(p.id, mod, "website", date.today() - timedelta(days=1), "Called them")
    assert p.verified_on == date.today() - timedelta(days=1)
    assert p not in moderation.due_for_reverification()
    with pytest.raises(moderation.ModerationError):
        moderation.mark_verified(p.id, mod, "phone", date.today() + timedelta(days=3))
    flag = moderation.add_flag(
        p.id,
        mod,
        type="curated_list",
        label="On the LDN Science list",
        source="LDN Science",
        as_of=date(2026, 5, 1),
    )
    moderation.remove_flag(p.id, flag.id, mod, "List updated")
    with pytest.raises(moderation.AlreadyHandled):
        moderation.remove_flag(p.id, flag.id, mod, "again")
    moderation.set_status(p.id, mod, "temporarily_closed", "Renovating")
    moderation.set_pin(p.id, mod, 33.51, -86.79)
    assert audit_actions(p.id) == ["verify", "flag_add", "flag_remove", "status", "pin"]
    status = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "status")).one()
    assert status.before == {"status": "open"} and status.after == {"status": "temporarily_closed"}


def test_audit_log_is_append_only_in_the_orm_and_the_database(app, mod) -> None:
    p = builders.pharmacy()
    moderation.set_status(p.id, mod, "closed", "Closed down")
    entry = db.session.scalars(select(AuditEntry)).first()
    entry.reason = "rewritten"
    with pytest.raises(RuntimeError, match="append-only"):
        db.session.commit()
    db.session.rollback()
    with pytest.raises(Exception, match="append-only"):
        db.session.execute(text("DELETE FROM audit_log"))
        db.session.commit()
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 1


def test_concurrent_approvals_exactly_one_wins(database_url) -> None:
    app = make_app(database_url)
    with app.app_context():
        mod_a = builders.user("a", PASSWORD)
        mod_b = builders.user("b", PASSWORD)
        sub_id = submit_new().id
        ids = {"a": mod_a.id, "b": mod_b.id}
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def act(name: str) -> None:
        with app.app_context():
            from directory.models import User

            user = db.session.get(User, ids[name])
            barrier.wait()
            try:
                moderation.approve(sub_id, user)
                outcomes[name] = "approved"
            except moderation.AlreadyHandled:
                outcomes[name] = "already handled"
            finally:
                db.session.remove()

    threads = [threading.Thread(target=act, args=(n,)) for n in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes.values()) == ["already handled", "approved"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Listing)) == 1
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "approve_new")
            )
            == 1
        )
        db.engine.dispose()


# --- through the web pages --------------------------------------------------------------------


def test_queue_shows_counts_and_oldest_first(signed_in) -> None:
    first = submit_new()
    second = submit_new({**NEW_PHARMACY, "name": "Second Pharmacy", "phone": "(205) 555-0177"})
    builders.pharmacy(verified_on=date.today() - timedelta(days=800))
    doc = html(signed_in.get("/moderation/"))
    refs = [a.get_text() for a in doc.select(".queue-table tbody a")]
    assert refs == [first.reference, second.reference]
    counts = doc.select_one(".counts").get_text(" ")
    assert "2 new listings" in " ".join(counts.split())
    assert "1 listings due for re-verification" in " ".join(counts.split())


def test_review_page_shows_values_pin_duplicates_and_private_contact(signed_in) -> None:
    existing = builders.pharmacy(name="Magnolia Compounding", phone="(205) 555-0142")
    sub = submit_new()
    doc = html(signed_in.get(f"/moderation/submissions/{sub.id}"))
    text = " ".join(doc.get_text(" ").split())
    assert "Magnolia Compounding" in text and "patient@example.org" in text
    assert "I get my LDN here" in text
    assert "postal code area" in text
    assert doc.select_one(f"a[href='/moderation/listings/{existing.id}']") is not None


def test_correction_review_shows_a_side_by_side_diff(signed_in) -> None:
    p = builders.pharmacy(name="Old Name")
    data = {**moderation.to_data(p), "name": "New Name"}
    sub, _ = moderation.submit(
        listing_kind=Kind.PHARMACY,
        listing=p,
        data=data,
        geocoding=Geocoding(),
        problem="wrong_details",
    )
    doc = html(signed_in.get(f"/moderation/submissions/{sub.id}"))
    row = doc.select_one("table.diff tbody tr")
    assert row.select_one("th").get_text(strip=True) == "Name"
    assert row.select_one("td.before").get_text(strip=True) == "Old Name"
    assert row.select_one("td.after").get_text(strip=True) == "New Name"
    assert row.select_one("input[name=fields][value=name]").has_attr("checked")


def test_approve_through_the_page_and_a_stale_second_click(signed_in) -> None:
    sub = submit_new()
    response = signed_in.post(
        f"/moderation/submissions/{sub.id}/approve", data={"verify_method": "phone"}
    )
    assert response.status_code == 303 and "/moderation/listings/" in response.headers["Location"]
    again = signed_in.post(
        f"/moderation/submissions/{sub.id}/approve", data={}, follow_redirects=True
    )
    assert "already approved" in again.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Listing)) == 1


def test_reject_without_reason_shows_message_next_to_field(signed_in) -> None:
    sub = submit_new()
    response = signed_in.post(f"/moderation/submissions/{sub.id}/reject", data={"reason": ""})
    assert response.status_code == 400
    doc = html(response)
    assert "Please give a reason" in doc.select_one(".has-error .error").get_text()
    db.session.refresh(sub)
    assert sub.status == SubmissionStatus.PENDING


def test_unknown_ids_are_404_not_500(signed_in) -> None:
    assert signed_in.get("/moderation/submissions/999").status_code == 404
    assert signed_in.post("/moderation/submissions/999/approve").status_code == 404
    assert signed_in.get("/moderation/listings/999").status_code == 404
    assert signed_in.post("/moderation/listings/999/verify").status_code == 404


def test_bad_pin_is_refused_with_a_message(signed_in) -> None:
    sub = submit_new()
    response = signed_in.post(
        f"/moderation/submissions/{sub.id}/approve",
        data={"lat": "north", "lon": "1"},
        follow_redirects=True,
    )
    assert "must both be numbers" in response.get_data(as_text=True)
    db.session.refresh(sub)
    assert sub.status == SubmissionStatus.PENDING


def test_actions_without_csrf_token_change_nothing(database_url) -> None:
    app = make_app(database_url, WTF_CSRF_ENABLED=True)
    with app.app_context():
        builders.user("mod", PASSWORD)
        sub = submit_new()
        client = app.test_client()
        # Sign in properly, with the token from the form.
        form = html(client.get("/login"))
        token = form.select_one("input[name=csrf_token]")["value"]
        assert (
            client.post(
                "/login", data={"username": "mod", "password": PASSWORD, "csrf_token": token}
            ).status_code
            == 303
        )
        response = client.post(f"/moderation/submissions/{sub.id}/approve", data={})
        assert response.status_code == 400
        assert "Nothing was saved" in response.get_data(as_text=True)
        db.session.refresh(sub)
        assert sub.status == SubmissionStatus.PENDING


def test_listing_history_and_audit_csv(signed_in, auth) -> None:
    from directory.models import User

    admin = auth.create("boss", Role.ADMIN)
    mod = db.session.scalar(select(User).where(User.username == "mod"))
    p = builders.pharmacy(name="History Pharmacy")
    moderation.set_status(p.id, mod, "temporarily_closed", '=HYPERLINK("evil")')
    doc = html(signed_in.get(f"/moderation/listings/{p.id}"))
    assert "temporarily closed" in doc.select_one("ol.history").get_text(" ").replace("_", " ")
    assert auth.logout().status_code == 303
    assert auth.login(admin.username).status_code == 303
    csv_text = signed_in.get("/moderation/audit.csv?action=status").get_data(as_text=True)
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("id,at,actor,action")
    assert len(lines) == 2 and ",mod,status," in lines[1]
    assert "'=HYPERLINK" in lines[1]  # neutralised for spreadsheets
