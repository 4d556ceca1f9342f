"""What a moderator decides is what happens: problem reports resolved in one step, messages
that state what changed, the next item after every decision, and forged choices refused."""

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from directory import moderation
from directory.extensions import db
from directory.geocoding import Geocoding
from directory.listings import to_data
from directory.models import AuditEntry, Kind, Listing, Role, Status, SubmissionStatus
from directory.vocabulary import Resolution
from tests import builders
from tests.conftest import html


@pytest.fixture
def mod(auth):
    return auth.create("mod")


@pytest.fixture
def signed_in(client, auth, mod):
    assert auth.login("mod").status_code == 303
    return client


def report(listing: Listing, problem: str, **changes):
    sub, created = moderation.submit(
        listing_kind=listing.kind,
        listing=listing,
        data={**to_data(listing), **changes},
        geocoding=Geocoding(),
        problem=problem,
    )
    assert created
    return sub


def found_ids(client) -> set[int]:
    body = client.get("/api/v1/search?near=35233").get_json()
    return {r["id"] for r in body["results"]}


def form_values(form) -> list[tuple[str, str]]:
    """What a browser would post for a form as the page shows it."""
    values = []
    for el in form.select("input, select, textarea"):
        name = el.get("name")
        if not name or el.get("type") == "submit":
            continue
        if el.name == "select":
            chosen = el.select_one("option[selected]") or el.select_one("option")
            values.append((name, chosen.get("value", "") if chosen else ""))
        elif el.get("type") in ("checkbox", "radio"):
            if el.has_attr("checked"):
                values.append((name, el.get("value", "y")))
        elif el.name == "textarea":
            values.append((name, el.get_text()))
        else:
            values.append((name, el.get("value", "")))
    return values


def flashes(response) -> str:
    return " ".join(p.get_text(" ", strip=True) for p in html(response).select(".flash, .notice"))


def test_a_closed_report_closes_the_listing_in_one_decision(signed_in) -> None:
    p = builders.pharmacy(name="Gone Pharmacy")
    sub = report(p, "closed")
    assert p.id in found_ids(signed_in)
    review = html(signed_in.get(f"/moderation/submissions/{sub.id}"))
    buttons = review.select("#resolve-form button[name=resolution]")
    # The decision the report asks for is offered first.
    assert [b["value"] for b in buttons][0] == Resolution.CLOSE.value
    assert buttons[0].get_text(strip=True) == "Mark closed and resolve"

    response = signed_in.post(
        f"/moderation/submissions/{sub.id}/resolve",
        data={"resolution": "close"},
        follow_redirects=True,
    )
    assert response.status_code == 200
    said = flashes(response)
    assert f"Closed Gone Pharmacy and resolved {sub.reference}" in said
    assert "live" not in said
    db.session.expire_all()
    assert db.session.get(Listing, p.id).status == Status.CLOSED
    assert moderation.get_submission(sub.id).status == SubmissionStatus.APPROVED
    assert p.id not in found_ids(signed_in)
    page = html(signed_in.get(f"/pharmacies/{p.id}", follow_redirects=True))
    assert "has closed" in page.get_text(" ", strip=True)
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.submission_id == sub.id, AuditEntry.actor_id != None)  # noqa: E711
    ).one()
    assert entry.action == "resolve_close" and entry.listing_id == p.id
    assert entry.reason.startswith(f"{sub.reference} (It has closed). Closed Gone Pharmacy")
    assert (entry.before["status"], entry.after["status"]) == ("open", "closed")


def test_not_making_ldn_takes_a_pharmacy_out_of_search(signed_in, mod) -> None:
    p = builders.pharmacy(name="No LDN Here")
    sub = report(p, "no_ldn")
    decision = moderation.resolve(sub.id, mod, "not_ldn")
    assert decision.changed == ["makes_ldn"]
    assert "no longer appears in search" in decision.message
    assert db.session.get(Listing, p.id).makes_ldn is False
    assert p.id not in found_ids(signed_in)


def test_resolving_what_is_already_so_says_nothing_changed(app, mod) -> None:
    p = builders.pharmacy(status="closed")
    decision = moderation.resolve(report(p, "closed").id, mod, "close")
    assert decision.changed == []
    assert "nothing changed" in decision.message


def test_a_prescriber_is_never_marked_as_not_making_ldn(signed_in, mod) -> None:
    doc = builders.prescriber()
    sub = report(doc, "other")
    review = html(signed_in.get(f"/moderation/submissions/{sub.id}"))
    assert [b["value"] for b in review.select("#resolve-form button")] == ["close"]
    response = signed_in.post(
        f"/moderation/submissions/{sub.id}/resolve", data={"resolution": "not_ldn"}
    )
    assert response.status_code == 400
    assert "isn't offered" in html(response).select_one("#resolution-error").get_text()
    with pytest.raises(moderation.ModerationError):
        moderation.resolve(sub.id, mod, "not_ldn")
    db.session.expire_all()
    assert moderation.get_submission(sub.id).status == SubmissionStatus.PENDING


def test_approving_an_unchanged_correction_never_claims_it_is_live(signed_in) -> None:
    p = builders.pharmacy(name="Same Pharmacy")
    sub = report(p, "closed")
    response = signed_in.post(
        f"/moderation/submissions/{sub.id}/approve", data={}, follow_redirects=True
    )
    said = flashes(response)
    assert f"Resolved {sub.reference}: nothing on Same Pharmacy changed." in said
    assert "live" not in said


def test_a_correction_message_names_the_fields_it_changed(app, mod) -> None:
    p = builders.pharmacy(name="Old Name")
    sub = report(p, "wrong_details", name="New Name", website="https://example.org/new")
    decision = moderation.approve(sub.id, mod)
    assert decision.changed == ["name", "website"]
    assert decision.message == f"Applied {sub.reference} to New Name: changed Name, Website."


def test_every_decision_opens_the_next_waiting_submission(signed_in) -> None:
    first, second, third = (report(builders.pharmacy(), "other") for _ in range(3))
    to_second = signed_in.post(
        f"/moderation/submissions/{first.id}/reject", data={"reason": "Spam"}
    )
    assert to_second.headers["Location"].endswith(f"/moderation/submissions/{second.id}")
    to_third = signed_in.post(
        f"/moderation/submissions/{second.id}/resolve", data={"resolution": "close"}
    )
    assert to_third.headers["Location"].endswith(f"/moderation/submissions/{third.id}")
    done = signed_in.post(f"/moderation/submissions/{third.id}/approve", data={})
    assert done.headers["Location"].endswith("/moderation/")


def test_edit_then_approve_can_record_a_check_made_today(signed_in) -> None:
    sub, _ = moderation.submit(
        listing_kind=Kind.PHARMACY,
        data=to_data(builders.pharmacy()) | {"name": "Checked Today"},
        geocoding=Geocoding(),
    )
    page = html(signed_in.get(f"/moderation/submissions/{sub.id}/edit"))
    assert page.select_one("label[for=decide-verify_method]").get_text(strip=True) == (
        "I also checked the details today"
    )
    form = form_values(page.select_one("form.listing-form"))
    form = [(k, v) for k, v in form if k != "decide-verify_method"]
    form.append(("decide-verify_method", "phone"))
    response = signed_in.post(f"/moderation/submissions/{sub.id}/edit", data=MultiDict(form))
    assert response.status_code == 303, html(response).select(".error")
    listing = db.session.scalars(select(Listing).where(Listing.name == "Checked Today")).one()
    assert listing.verified_on is not None


# --- forged choices -------------------------------------------------------------------------

FORGED = "not-a-choice"


def _choice_posts(sub_id: int, listing_id: int) -> list[tuple[str, dict[str, str], str]]:
    """(url, form, field) for every choice field of every moderation form, with a forged
    value in that field and sensible values elsewhere."""
    sub_url = f"/moderation/submissions/{sub_id}"
    lst = f"/moderation/listings/{listing_id}"
    return [
        (f"{sub_url}/approve", {"verify_method": FORGED}, "verify_method"),
        (f"{sub_url}/approve", {"fields": FORGED}, "fields"),
        (f"{sub_url}/resolve", {"resolution": FORGED}, "resolution"),
        (f"{sub_url}/resolve", {"resolution": "close", "verify_method": FORGED}, "verify"),
        (f"{sub_url}/edit", {"decide-verify_method": FORGED}, "decide-verify_method"),
        (f"{sub_url}/edit", {"edit-sr_policy": FORGED}, "edit-sr_policy"),
        (f"{sub_url}/edit", {"edit-country": FORGED}, "edit-country"),
        (f"{sub_url}/edit", {"edit-state": "US-ZZ"}, "edit-state"),
        (f"{sub_url}/edit", {"edit-fillers": FORGED}, "edit-fillers"),
        (f"{sub_url}/edit", {"edit-dosage_forms": FORGED}, "edit-dosage_forms"),
        (f"{sub_url}/edit", {"edit-ships_to": FORGED}, "edit-ships_to"),
        (f"{lst}/verify", {"verify-method": FORGED, "verify-verified_on": "2026-01-01"}, "m"),
        (
            f"{lst}/flags",
            {
                "flag-type": FORGED,
                "flag-label": "x",
                "flag-source": "y",
                "flag-as_of": "2026-01-01",
            },
            "flag-type",
        ),
        (f"{lst}/status", {"status-status": FORGED, "status-reason": "why"}, "status"),
        ("/moderation/accounts", {"username": "newmod", "password": "x" * 20, "role": FORGED}, "r"),
    ]


def test_every_moderation_form_refuses_a_forged_choice_with_a_400(client, auth) -> None:
    auth.sign_in_as("boss", Role.ADMIN)
    p = builders.pharmacy()
    sub = report(p, "closed")
    for url, form, name in _choice_posts(sub.id, p.id):
        response = client.post(url, data=form)
        assert response.status_code == 400, (url, name, response.status_code)
        assert html(response).select(".error"), (url, name)
    db.session.expire_all()
    assert moderation.get_submission(sub.id).status == SubmissionStatus.PENDING
    assert db.session.get(Listing, p.id).status == Status.OPEN


# --- the queue at scale ---------------------------------------------------------------------


def test_the_queue_pages_and_counts_in_sql_as_the_rows_say(signed_in, monkeypatch) -> None:
    from directory.moderation import queue as queue_module

    monkeypatch.setattr(queue_module, "QUEUE_PAGE", 4)
    twin = builders.pharmacy(phone="(205) 555-0777")
    base = to_data(twin) | {"city": "Seattle", "region": "US-WA", "postal_code": "98101"}
    names = ["Alder", "Birch", "Cedar", "Dogwood", "Elm", "Fir", "Ginkgo", "Hazel", "Ivy"]
    sent = []
    for i, name in enumerate(names):
        data = base | {"name": f"{name} Apothecary", "phone": f"(206) 555-01{i:02d}"}
        if i % 3 == 0:
            data["phone"] = twin.phone  # a possible duplicate of `twin`
        sub, _ = moderation.submit(listing_kind=Kind.PHARMACY, data=data, geocoding=Geocoding())
        sent.append(sub)
    sent.append(report(builders.pharmacy(), "closed"))
    counts = moderation.queue_counts()
    # The oracle: the rows themselves, counted in Python.
    assert counts["pending"] == 10 and counts["corrections"] == 1 and counts["new"] == 9
    assert counts["duplicates"] == sum(1 for s in sent if s.duplicates) == 3

    page = moderation.queue_page(1, per_page=4)
    assert (page.page, page.pages, page.has_next, page.has_previous) == (1, 3, True, False)
    seen = []
    for number in (1, 2, 3):
        doc = html(signed_in.get(f"/moderation/?page={number}"))
        seen += [a.get_text(strip=True) for a in doc.select("table.queue-table td:first-child a")]
    assert seen == [s.reference for s in sent]  # oldest first, each once
    last = html(signed_in.get("/moderation/?page=3"))
    assert last.select_one("a[rel=prev]") and not last.select_one("a[rel=next]")
    # A page past the end, or not a number, shows a real page rather than an error.
    assert signed_in.get("/moderation/?page=999").status_code == 200
    assert signed_in.get("/moderation/?page=abc").status_code == 200


def test_listings_due_are_counted_up_to_a_cap_and_the_page_says_so(signed_in, monkeypatch) -> None:
    from directory.moderation import queue as queue_module

    for _ in range(3):
        builders.pharmacy()  # never verified: due
    assert moderation.queue_counts()["reverify"] == 3
    monkeypatch.setattr(queue_module, "DUE_COUNT_CAP", 2)
    counts = moderation.queue_counts()
    assert (counts["reverify"], counts["reverify_capped"]) == (2, 1)
    text = html(signed_in.get("/moderation/")).select_one("ul.counts").get_text(" ", strip=True)
    assert "2 or more listings due for re-verification" in text


def test_the_queue_sends_listings_due_for_a_check_to_the_call_list(signed_in) -> None:
    from datetime import date

    stale = builders.pharmacy(name="Old Check Pharmacy", verified_on=date(2020, 1, 2))
    fresh = builders.pharmacy(name="New Check Pharmacy", verified_on=date.today())
    page = html(signed_in.get("/moderation/"))
    link = page.find("a", string="the call list")
    assert link is not None and link["href"].endswith("/moderation/calls/?due=stale")
    listed = signed_in.get(link["href"])
    assert listed.status_code == 200
    assert stale.name in listed.text and fresh.name not in listed.text
