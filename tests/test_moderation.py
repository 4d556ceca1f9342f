"""Moderation decisions: their effect on published data and on the audit trail."""

import re
import threading
from datetime import date, timedelta

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import func, select, text

from directory import moderation
from directory.extensions import db
from directory.geocoding import Geocoding
from directory.listings import to_data
from directory.models import (
    AuditEntry,
    FlagType,
    Kind,
    Listing,
    Role,
    Submission,
    SubmissionStatus,
)
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
    listing = moderation.approve(sub.id, mod, verify_method="phone").listing
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
    ).listing
    assert listing.name == "Magnolia Compounding Pharmacy"


def test_hand_set_pin_wins(app, mod) -> None:
    sub = submit_new()
    listing = moderation.approve(sub.id, mod, pin=(33.5, -86.81)).listing
    assert (listing.lat, listing.lon, listing.geo_precision.value) == (33.5, -86.81, "coordinates")


def test_correction_applies_only_the_chosen_fields(app, mod) -> None:
    p = builders.pharmacy(name="Old Name", phone="(205) 555-0100", sr_policy="unknown")
    data = {
        **to_data(p),
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
    assert p.name == "New Name" and p.sr_policy.value == "ir_only" and p.phone == "+12055550100"
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "approve_correction")
    ).one()
    assert entry.before["name"] == "Old Name" and entry.after["name"] == "New Name"


def test_the_same_phone_number_written_another_way_is_no_change(app) -> None:
    p = builders.pharmacy(phone="+1 205-555-0100")
    for phone, changed in (
        ("(205) 555-0100", False),
        ("205.555.0100", False),
        ("(205) 555-0101", True),
    ):
        proposed = {**to_data(p), "phone": phone}
        assert [f for f, _, _ in moderation.diff(p, proposed)] == (["phone"] if changed else [])


def test_reject_needs_a_reason_and_records_it(app, mod) -> None:
    sub = submit_new()
    with pytest.raises(moderation.ModerationError):
        moderation.reject(sub.id, mod, "  ")
    moderation.reject(sub.id, mod, "Not a compounding pharmacy")
    db.session.refresh(sub)
    assert sub.status == SubmissionStatus.REJECTED and sub.reason == "Not a compounding pharmacy"
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "reject")).one()
    # The trail names the submission and what was decided, then the moderator's own words.
    assert entry.reason == f"{sub.reference} (New listing). Rejected: Not a compounding pharmacy"
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
    data = {**to_data(p), "name": "New Name"}
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
    # Each proposed change is ticked in the approve form; unchanged fields aren't offered.
    ticks = doc.select("#approve-form input[name=fields]")
    assert [(t["value"], t.has_attr("checked")) for t in ticks] == [("name", True)]


def test_the_problem_and_the_senders_relation_are_shown_in_words(signed_in) -> None:
    p = builders.pharmacy(name="Gone Pharmacy")
    sub, _ = moderation.submit(
        listing_kind=Kind.PHARMACY,
        listing=p,
        data=to_data(p),
        geocoding=Geocoding(),
        problem="closed",
        relation="patient",
    )
    review = html(signed_in.get(f"/moderation/submissions/{sub.id}"))
    assert "Problem reported: It has closed" in review.get_text(" ", strip=True)
    assert "“I am a patient there”" in review.get_text(" ", strip=True)
    queue = html(signed_in.get("/moderation/"))
    assert "Problem: It has closed" in queue.get_text(" ", strip=True)


def test_approve_through_the_page_and_a_stale_second_click(signed_in) -> None:
    sub = submit_new()
    response = signed_in.post(
        f"/moderation/submissions/{sub.id}/approve", data={"verify_method": "phone"}
    )
    # Nothing else waits, so the decision goes back to the (empty) queue.
    assert response.status_code == 303 and response.headers["Location"].endswith("/moderation/")
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


def error_next_to(doc: BeautifulSoup, field_id: str) -> str:
    """The error message shown with the field whose input has this id."""
    box = doc.select_one(f"#{field_id}").find_parent(class_="has-error")
    assert box is not None, f"no error shown next to #{field_id}"
    return box.select_one(".error").get_text(" ", strip=True)


def test_bad_pin_is_refused_with_a_message(signed_in) -> None:
    sub = submit_new()
    response = signed_in.post(
        f"/moderation/submissions/{sub.id}/approve", data={"lat": "north", "lon": "1"}
    )
    assert response.status_code == 400
    doc = html(response)
    assert "must both be numbers" in error_next_to(doc, "lat")
    assert doc.select_one("#lat")["value"] == "north"  # what was typed is kept
    assert doc.select_one("#lon")["value"] == "1"
    db.session.refresh(sub)
    assert sub.status == SubmissionStatus.PENDING


@pytest.mark.parametrize(
    ("data", "field_id", "message"),
    [
        ({"lat": "abc", "lon": "-86.8"}, "lat", "must both be numbers"),
        ({"lat": "nan", "lon": "-86.8"}, "lat", "must both be numbers"),
        ({"lat": "95", "lon": "-86.8"}, "lat", "between -90 and 90"),
        ({"lat": "33.5", "lon": ""}, "lon", "both latitude and longitude, or neither"),
        ({"verify_method": "by_carrier_pigeon"}, "verify_method", "Not a valid choice"),
    ],
)
def test_approve_with_bad_input_is_400_with_the_message_by_the_field(
    signed_in, data, field_id, message
) -> None:
    sub = submit_new()
    response = signed_in.post(f"/moderation/submissions/{sub.id}/approve", data=data)
    assert response.status_code == 400
    assert message in error_next_to(html(response), field_id)
    db.session.refresh(sub)
    assert sub.status == SubmissionStatus.PENDING
    assert db.session.scalar(select(func.count()).select_from(Listing)) == 0


def test_approve_with_a_pin_through_the_page(signed_in) -> None:
    sub = submit_new()
    response = signed_in.post(
        f"/moderation/submissions/{sub.id}/approve",
        data={"lat": " 33.5 ", "lon": "-86.81", "verify_method": "website"},
    )
    assert response.status_code == 303
    listing = db.session.scalars(select(Listing)).one()
    assert (listing.lat, listing.lon, listing.geo_precision.value) == (33.5, -86.81, "coordinates")
    assert listing.verifications[0].method.value == "website"


def test_review_page_offers_every_verify_method_from_the_vocabulary(signed_in) -> None:
    from directory.models import VerifyMethod

    sub = submit_new()
    doc = html(signed_in.get(f"/moderation/submissions/{sub.id}"))
    offered = [o["value"] for o in doc.select("#approve-form select[name=verify_method] option")]
    assert offered == ["", *VerifyMethod.values()]


def test_merge_into_a_listing_that_does_not_exist_is_400_by_the_field(signed_in) -> None:
    sub = submit_new()
    for target, message in (("999", "no listing with that number"), ("abc", "listing number")):
        response = signed_in.post(
            f"/moderation/submissions/{sub.id}/merge", data={"listing_id": target}
        )
        assert response.status_code == 400
        doc = html(response)
        assert message in error_next_to(doc, "listing_id")
        assert doc.select_one("#listing_id")["value"] == target
    db.session.refresh(sub)
    assert sub.status == SubmissionStatus.PENDING


def test_merge_through_the_page_offers_the_duplicate(signed_in) -> None:
    existing = builders.pharmacy(name="Magnolia Compounding", website=None, phone="(205) 555-0142")
    sub = submit_new()
    doc = html(signed_in.get(f"/moderation/submissions/{sub.id}"))
    assert doc.select_one("#listing_id")["value"] == str(existing.id)
    assert f"Magnolia Compounding (#{existing.id})" in doc.select_one("#listing_id-hint").get_text()
    response = signed_in.post(
        f"/moderation/submissions/{sub.id}/merge", data={"listing_id": str(existing.id)}
    )
    assert response.status_code == 303
    db.session.refresh(sub)
    assert sub.status == SubmissionStatus.MERGED


def test_review_loads_duplicates_in_two_queries_however_many(app, mod) -> None:
    from sqlalchemy import event

    others = [
        builders.pharmacy(name="Magnolia Compounding", phone="(205) 555-0142") for _ in range(3)
    ]
    earlier = [
        submit_new({**NEW_PHARMACY, "name": n})
        for n in ("Magnolia Compounding Rx", "Magnolia Compounding Inc")
    ]
    sub = submit_new({**NEW_PHARMACY, "name": "Magnolia Compounding LLC"})
    db.session.expire_all()
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        review = moderation.review(sub.id)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert set(review.dup_listings) == {o.id for o in others}
    assert set(review.dup_subs) == {s.id for s in earlier}
    # The submission itself, then one IN query for listings and one for submissions (the
    # listings' own eager loads read other tables, once per batch).
    main_tables = [re.search(r"\bFROM (listings|submissions)\b", s) for s in statements]
    assert [m.group(1) for m in main_tables if m] == ["submissions", "listings", "submissions"]


def test_unknown_status_is_400_by_the_field(signed_in) -> None:
    p = builders.pharmacy()
    response = signed_in.post(
        f"/moderation/listings/{p.id}/status",
        data={"status-status": "demolished", "status-reason": "Gone"},
    )
    assert response.status_code == 400
    doc = html(response)
    assert "Not a valid choice" in error_next_to(doc, "status-status")
    assert doc.select_one("#status-reason").get_text(strip=True) == "Gone"
    db.session.refresh(p)
    assert p.status.value == "open"


def test_an_empty_flag_form_says_what_each_box_needs(signed_in) -> None:
    p = builders.pharmacy()
    bad = signed_in.post(
        f"/moderation/listings/{p.id}/flags",
        data={"flag-type": FlagType.ACCREDITATION, "flag-label": "  ", "flag-source": ""},
    )
    assert bad.status_code == 400
    doc = html(bad)
    assert error_next_to(doc, "flag-label") == "Enter what the list, register or report says."
    assert error_next_to(doc, "flag-source") == "Enter who says so: the list, register or person."
    assert "This field is required" not in doc.get_text()
    assert p.flags == []


def test_an_empty_account_form_says_what_each_box_needs(client, auth) -> None:
    builders.user("boss", PASSWORD, "admin")
    auth.login("boss")
    bad = client.post("/moderation/accounts", data={"username": "", "password": ""})
    assert bad.status_code == 400
    doc = html(bad)
    assert error_next_to(doc, "username") == moderation.USERNAME_MESSAGE
    assert error_next_to(doc, "password") == moderation.PASSWORD_SHORT
    assert "This field is required" not in doc.get_text()


def test_pin_form_on_the_listing_page(signed_in) -> None:
    p = builders.pharmacy()
    bad = signed_in.post(f"/moderation/listings/{p.id}/pin", data={"pin-lat": "91", "pin-lon": ""})
    assert bad.status_code == 400
    doc = html(bad)
    assert "between -90 and 90" in error_next_to(doc, "pin-lat")
    assert "Enter the longitude" in error_next_to(doc, "pin-lon")
    ok = signed_in.post(
        f"/moderation/listings/{p.id}/pin", data={"pin-lat": "33.51", "pin-lon": "-86.79"}
    )
    assert ok.status_code == 303
    db.session.refresh(p)
    assert (p.lat, p.lon) == (33.51, -86.79)


def test_audit_filter_form(signed_in) -> None:
    from directory.models import User

    builders.user("boss", PASSWORD, "admin")
    mod = db.session.scalar(select(User).where(User.username == "mod"))
    a, b = builders.pharmacy(), builders.pharmacy()
    moderation.set_status(a.id, mod, "closed", "Closed down")
    moderation.set_status(b.id, mod, "closed", "Closed too")
    signed_in.post("/logout")
    signed_in.post("/login", data={"username": "boss", "password": PASSWORD})
    doc = html(signed_in.get(f"/moderation/audit?listing={b.id}&action=status"))
    assert [td.get_text() for td in doc.select("tbody tr td:nth-of-type(6)")] == ["Closed too"]
    assert doc.select_one("#action option[selected]")["value"] == "status"
    for query, field_id in (("since=2026-13-45", "since"), ("listing=abc", "listing")):
        bad = signed_in.get(f"/moderation/audit?{query}")
        assert bad.status_code == 400
        assert error_next_to(html(bad), field_id)
        assert signed_in.get(f"/moderation/audit.csv?{query}").status_code == 400


def test_the_log_its_filter_and_a_history_name_an_action_in_the_same_words(signed_in) -> None:
    from directory.models import User

    boss = builders.user("boss", PASSWORD, "admin")
    mod = db.session.scalar(select(User).where(User.username == "mod"))
    p = builders.pharmacy()
    moderation.set_status(p.id, mod, "closed", "Closed down")
    flag = moderation.add_flag(
        p.id,
        mod,
        type=FlagType.CURATED_LIST,
        label="On a list",
        source="A list",
        as_of=date.today(),
    )
    moderation.remove_flag(p.id, flag.id, mod, "Taken off the list")
    history = html(signed_in.get(f"/moderation/listings/{p.id}")).select_one("ol.history")
    words = AuditEntry.words("flag_remove")
    assert words == "removed a reliability flag"
    assert words in history.get_text(" ") and "flag_remove" not in history.get_text()
    signed_in.post("/logout")
    signed_in.post("/login", data={"username": boss.username, "password": PASSWORD})
    doc = html(signed_in.get("/moderation/audit?action=flag_remove"))
    assert [td.get_text() for td in doc.select("tbody tr td:nth-of-type(3)")] == [words]
    chosen = doc.select_one("#action option[selected]")
    assert (chosen["value"], chosen.get_text()) == ("flag_remove", words)


def test_an_admin_cannot_deactivate_themself(client) -> None:
    boss = builders.user("boss", PASSWORD, "admin")
    with pytest.raises(moderation.ModerationError, match="your own account"):
        moderation.set_account_active(boss.id, False, actor=boss)
    client.post("/login", data={"username": "boss", "password": PASSWORD})
    response = client.post(f"/moderation/accounts/{boss.id}/active")
    assert response.status_code == 400
    assert "can't deactivate your own account" in html(response).get_text()
    db.session.refresh(boss)
    assert boss.active
    assert client.post("/moderation/accounts/999/active").status_code == 404


def test_an_admin_can_deactivate_someone_else(client) -> None:
    builders.user("boss", PASSWORD, "admin")
    other = builders.user("other", PASSWORD)
    client.post("/login", data={"username": "boss", "password": PASSWORD})
    assert client.post(f"/moderation/accounts/{other.id}/active").status_code == 303
    db.session.refresh(other)
    assert not other.active


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
    assert "Open → Temporarily closed" in doc.select_one("ol.history").get_text(" ")
    assert auth.logout().status_code == 303
    assert auth.login(admin.username).status_code == 303
    csv_text = signed_in.get("/moderation/audit.csv?action=status").get_data(as_text=True)
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("id,at,actor,action")
    assert len(lines) == 2 and ",mod,status," in lines[1]
    assert "'=HYPERLINK" in lines[1]  # neutralised for spreadsheets
