"""The volunteers' call list: what is on it and in which order, claims (also raced by real
threads on the test database), each call outcome's effect on search, and the confirm form."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from directory import moderation
from directory.extensions import db
from directory.geomath import distance_km
from directory.listings import to_data
from directory.models import AuditEntry, CallAttempt, CallClaim, Kind, Listing, Status, User
from directory.moderation import calls
from directory.moderation.calls import CallFilters
from directory.vocabulary import CallDue, CallOutcome
from tests import builders
from tests.conftest import PASSWORD, html, make_app, texts

TODAY = date.today()
OLD = TODAY - timedelta(days=400)
SEATTLE = {
    "city": "Seattle",
    "region": "US-WA",
    "postal_code": "98101",
    "lat": 47.61,
    "lon": -122.33,
}
TACOMA = {
    "city": "Federal Way",
    "region": "US-WA",
    "postal_code": "98003",
    "lat": 47.32,
    "lon": -122.31,
}
SPOKANE = {
    "city": "Spokane",
    "region": "US-WA",
    "postal_code": "99201",
    "lat": 47.66,
    "lon": -117.42,
}


def imported(**overrides) -> Listing:
    """A pharmacy as the registry import leaves it: nobody has asked about LDN."""
    data = {"makes_ldn": None, "sr_policy": None, "fillers": None, "dosage_forms": []}
    data.update(overrides)
    return builders.pharmacy(**data)


def ids(page: calls.CallPage) -> list[int]:
    return [item.id for item in page.items]


def search_ids(client, near: str = "35233", radius: int = 50) -> set[int]:
    page = html(client.get(f"/search?near={near}&radius={radius}"))
    return {int(card["data-id"]) for card in page.select("article.card")}


def nearby_oracle() -> dict[int, bool]:
    """confirmed_nearby worked out the slow way, for every listing."""
    listings = list(db.session.scalars(select(Listing)))
    confirmed = [p for p in listings if calls.is_confirmed_pharmacy(p)]
    return {
        x.id: x.lat is not None
        and any(distance_km(x.lat, x.lon, p.lat, p.lon) <= calls.NEARBY_KM for p in confirmed)
        for x in listings
    }


def stored_nearby() -> dict[int, bool]:
    return dict(db.session.execute(select(Listing.id, Listing.confirmed_nearby)).all())


# --- the list ---------------------------------------------------------------------------------


def test_the_list_holds_unconfirmed_and_stale_listings_only(app) -> None:
    never = imported()
    stale = builders.pharmacy(verified_on=OLD)
    unknown_but_fresh = imported(verified_on=TODAY)
    fresh = builders.pharmacy(verified_on=TODAY)
    closed = imported(status="closed")
    prescriber = builders.prescriber()
    on_list = set(ids(calls.call_list(CallFilters())))
    assert on_list == {never.id, stale.id, unknown_but_fresh.id, prescriber.id}
    assert fresh.id not in on_list and closed.id not in on_list

    assert set(ids(calls.call_list(CallFilters(due=CallDue.NEVER)))) == {never.id, prescriber.id}
    assert ids(calls.call_list(CallFilters(due=CallDue.STALE))) == [stale.id]
    assert ids(calls.call_list(CallFilters(kind=Kind.PRESCRIBER))) == [prescriber.id]
    wa = imported(**SEATTLE)
    assert ids(calls.call_list(CallFilters(region="US-WA"))) == [wa.id]
    assert ids(calls.call_list(CallFilters(region="US-WA", kind=Kind.PRESCRIBER))) == []


def test_places_without_a_confirmed_pharmacy_nearby_come_first(app) -> None:
    mod = builders.user()
    birmingham = [imported() for _ in range(3)]
    seattle = imported(**SEATTLE)
    tacoma = imported(**TACOMA)  # about 20 miles from Seattle
    spokane = imported(**SPOKANE)
    # Oldest first while nobody is confirmed anywhere.
    assert ids(calls.call_list(CallFilters())) == [
        *(b.id for b in birmingham),
        seattle.id,
        tacoma.id,
        spokane.id,
    ]
    calls.record_call(seattle.id, mod, CallOutcome.CONFIRMED, answers={"sr_policy": "ir_only"})
    assert distance_km(47.61, -122.33, 47.32, -122.31) < calls.NEARBY_KM
    order = ids(calls.call_list(CallFilters()))
    # Seattle is confirmed (off the list); Tacoma now has a confirmed pharmacy nearby: last.
    assert order == [*(b.id for b in birmingham), spokane.id, tacoma.id]
    assert stored_nearby() == nearby_oracle()


@pytest.mark.parametrize(
    "walk_max",
    [calls.UNMARKED_WALK_MAX, 0],
    ids=["few unmarked: walk them", "many unmarked: read the box"],
)
def test_confirmed_nearby_follows_confirmations_and_their_undoing(
    app, monkeypatch, walk_max
) -> None:
    # mark_nearby reads either way on SQLite (by how many listings are unmarked): both agree.
    monkeypatch.setattr(calls, "UNMARKED_WALK_MAX", walk_max)
    mod = builders.user()
    a = imported(**SEATTLE)
    b = imported(**TACOMA)
    far = imported(**SPOKANE)
    near_a = imported(**{**SEATTLE, "lat": 47.7})
    prescriber = builders.prescriber(**TACOMA)
    calls.record_call(a.id, mod, CallOutcome.CONFIRMED, answers={})
    calls.record_call(b.id, mod, CallOutcome.CONFIRMED, answers={})
    assert stored_nearby() == nearby_oracle()
    assert stored_nearby()[prescriber.id] and not stored_nearby()[far.id]
    # B stops making LDN: Tacoma's neighbours keep the mark through A; then A closes.
    calls.record_call(b.id, mod, CallOutcome.NO_LDN)
    assert stored_nearby() == nearby_oracle()
    calls.record_call(a.id, mod, CallOutcome.CLOSED)
    assert stored_nearby() == nearby_oracle()
    assert not any(stored_nearby().values())
    # The rebuild agrees with what the outcomes kept.
    calls.record_call(near_a.id, mod, CallOutcome.CONFIRMED, answers={})
    before = stored_nearby()
    assert calls.refresh_nearby() == sum(before.values())
    assert stored_nearby() == before == nearby_oracle()


def test_paging_counts_in_sql_and_caps_the_count(app, monkeypatch) -> None:
    made = [imported() for _ in range(45)]
    page = calls.call_list(CallFilters(page=3))
    assert (page.total, page.pages, page.page, page.capped) == (45, 3, 3, False)
    assert ids(page) == [m.id for m in made[40:]]
    # A page past the end shows the last one.
    assert calls.call_list(CallFilters(page=99)).page == 3
    monkeypatch.setattr(calls, "COUNT_CAP", 30)
    capped = calls.call_list(CallFilters())
    assert (capped.total, capped.capped, capped.pages) == (30, True, 2)
    # Further on, the count reaches further: "Next" always leads somewhere.
    further = calls.call_list(CallFilters(page=2))
    assert (further.total, further.capped, further.pages) == (45, False, 3)


# --- claims -----------------------------------------------------------------------------------


def test_a_claim_holds_for_30_minutes_and_shows_who_holds_it(app) -> None:
    alice, bob = builders.user("alice"), builders.user("bob")
    item = imported()
    now = calls.utcnow()
    calls.claim(item.id, alice, now)
    with pytest.raises(moderation.ModerationError, match="alice is calling this one"):
        calls.claim(item.id, bob, now + timedelta(minutes=29))
    with pytest.raises(moderation.ModerationError, match="alice"):
        calls.record_call(item.id, bob, CallOutcome.NO_ANSWER, now=now + timedelta(minutes=5))
    calls.claim(item.id, alice, now + timedelta(minutes=10))  # her own: renewed
    listed = calls.call_list(CallFilters(), now=now + timedelta(minutes=11)).items[0]
    assert listed.held_by == "alice"
    # Run out: anyone may take it.
    calls.claim(item.id, bob, now + timedelta(minutes=41))
    assert calls.holder(item.id, now + timedelta(minutes=41)).username == "bob"
    calls.release(item.id, alice)  # not hers any more: nothing happens
    assert calls.holder(item.id, now + timedelta(minutes=42)).username == "bob"
    calls.release(item.id, bob)
    assert calls.holder(item.id) is None


def test_claim_next_skips_what_others_hold(app) -> None:
    alice, bob = builders.user("alice"), builders.user("bob")
    first, second, third = imported(), imported(), imported()
    assert calls.claim_next(CallFilters(), alice) == first.id
    assert calls.claim_next(CallFilters(), bob) == second.id
    assert calls.claim_next(CallFilters(), alice, skip=[first.id]) == third.id


@pytest.mark.parametrize("racers", [2, 4])
def test_racing_volunteers_exactly_one_gets_the_item(database_url, racers) -> None:
    """Real threads, each with its own connection, on the test database (the SQLite file, or
    PostgreSQL with TEST_DATABASE_URL)."""
    app = make_app(database_url)
    with app.app_context():
        users = [builders.user(f"v{n}", PASSWORD).id for n in range(racers)]
        item = imported().id
    barrier = threading.Barrier(racers)
    won: list[int] = []
    lost: list[int] = []

    def race(user_id: int) -> None:
        with app.app_context():
            user = db.session.get(User, user_id)
            barrier.wait()
            try:
                calls.claim(item, user)
                won.append(user_id)
            except moderation.ModerationError:
                lost.append(user_id)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=race, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(won) == 1 and len(lost) == racers - 1
    with app.app_context():
        rows = db.session.execute(select(CallClaim.listing_id, CallClaim.moderator_id)).all()
        assert rows == [(item, won[0])]
        db.engine.dispose()


# --- outcomes and search ----------------------------------------------------------------------


def test_confirmed_answers_become_the_listing_facts_and_show_in_search(app, client) -> None:
    mod = builders.user()
    item = imported()
    answers = {
        "sr_policy": "ir_only",
        "fillers": ["mcc"],
        "dosage_forms": ["capsule", "liquid"],
        "mail_order": True,
        "ships_to": ["US-AL", "US-GA"],
        "price_notes": "About $25 a month",
    }
    calls.record_call(item.id, mod, CallOutcome.CONFIRMED, answers=answers, note="Spoke to Sam")
    db.session.expire_all()
    data = to_data(db.session.get(Listing, item.id))
    assert data["makes_ldn"] is True
    assert {k: data[k] for k in answers} == answers
    listing = db.session.get(Listing, item.id)
    assert listing.verified_on == TODAY
    assert listing.verifications[0].method.value == "phone"
    assert listing.verifications[0].moderator.username == "mod"
    assert item.id not in ids(calls.call_list(CallFilters()))
    assert item.id in search_ids(client)
    confirmed_only = html(client.get("/search?near=35233&radius=50&filter=confirmed"))
    assert item.id in {int(c["data-id"]) for c in confirmed_only.select("article.card")}
    actions = set(
        db.session.scalars(select(AuditEntry.action).where(AuditEntry.listing_id == item.id))
    )
    assert {"call", "call_answers", "verify"} <= actions


@pytest.mark.parametrize("outcome", [CallOutcome.NO_LDN, CallOutcome.CLOSED])
def test_no_ldn_and_closed_leave_search_and_the_page_says_so(app, client, outcome) -> None:
    mod = builders.user()
    item = imported()
    assert item.id in search_ids(client)
    calls.record_call(item.id, mod, outcome)
    assert item.id not in search_ids(client)
    assert item.id not in ids(calls.call_list(CallFilters()))
    page = client.get(f"/pharmacies/{item.id}-{item.slug}")
    notices = " ".join(texts(page, ".notice"))
    assert ("has closed" if outcome == CallOutcome.CLOSED else "does not make LDN") in notices


def test_a_prescriber_who_does_not_prescribe_ldn_leaves_search(app, client) -> None:
    mod = builders.user()
    doc = builders.prescriber()
    assert doc.id in search_ids(client)
    calls.record_call(doc.id, mod, CallOutcome.NO_LDN)
    assert doc.id not in search_ids(client)
    page = client.get(f"/prescribers/{doc.id}-{doc.slug}")
    assert "do not prescribe LDN" in " ".join(texts(page, ".notice"))


def test_no_answer_changes_nothing_patients_see(app, client) -> None:
    mod = builders.user()
    item = imported()
    before = to_data(item)
    calls.record_call(item.id, mod, CallOutcome.NO_ANSWER, note="Closed at lunch, call at 2")
    db.session.expire_all()
    listing = db.session.get(Listing, item.id)
    assert to_data(listing) == before and listing.verified_on is None
    assert item.id in ids(calls.call_list(CallFilters()))
    assert item.id in search_ids(client)
    attempt = db.session.scalar(select(CallAttempt))
    assert (attempt.outcome, attempt.note) == (CallOutcome.NO_ANSWER, "Closed at lunch, call at 2")
    page = client.get(f"/pharmacies/{item.id}-{item.slug}").get_data(as_text=True)
    assert "lunch" not in page and "No answer" not in page
    # The list shows the last attempt to volunteers.
    assert calls.call_list(CallFilters()).items[0].last_outcome == CallOutcome.NO_ANSWER


def test_progress_counts_this_week_and_what_is_left_by_state(app) -> None:
    mod = builders.user()
    al = [imported() for _ in range(3)]
    wa = imported(**SEATTLE)
    calls.record_call(al[0].id, mod, CallOutcome.CONFIRMED, answers={})
    calls.record_call(al[1].id, mod, CallOutcome.NO_ANSWER)
    p = calls.progress()
    assert (p.confirmed_this_week, p.left) == (1, 3)
    rows = {r.region: (r.left, r.confirmed_this_week) for r in p.by_state}
    assert rows == {"US-AL": (2, 1), "US-WA": (1, 0)}
    assert calls.progress(TODAY + timedelta(days=7)).confirmed_this_week == 0
    assert wa.id


# --- the pages --------------------------------------------------------------------------------


def test_saving_opens_the_next_item_with_the_filters_kept(app, client, auth) -> None:
    auth.sign_in_as("vol")
    first, second = imported(), imported()
    imported(**SEATTLE)
    page = client.get("/moderation/calls/?state=US-AL")
    assert page.status_code == 200
    assert len(html(page).select(".call-item")) == 2
    claimed = client.post(f"/moderation/calls/{first.id}/claim?state=US-AL")
    assert claimed.status_code == 303
    assert claimed.headers["Location"].endswith(f"/moderation/calls/{first.id}?state=US-AL")
    screen = client.get(claimed.headers["Location"])
    doc = html(screen)
    assert doc.select_one(".call-phone a[href^='tel:']")
    assert "Do you compound low dose naltrexone?" in doc.select_one(".call-script").get_text()
    saved = client.post(
        f"/moderation/calls/{first.id}?state=US-AL",
        data={
            "outcome": "confirmed",
            "sr_policy": "ir_only",
            "fillers": ["mcc"],
            "mail_order": "no",
        },
    )
    assert saved.status_code == 303
    assert saved.headers["Location"].endswith(f"/moderation/calls/{second.id}?state=US-AL")
    db.session.expire_all()
    assert calls.holder(second.id).username == "vol"
    assert db.session.get(Listing, first.id).makes_ldn is True
    last = client.post(f"/moderation/calls/{second.id}?state=US-AL", data={"outcome": "no_answer"})
    # The Seattle one is not in Alabama: the list is done.
    assert last.headers["Location"].endswith("/moderation/calls/?state=US-AL")


@pytest.mark.parametrize(
    "field, value",
    [
        ("outcome", "published"),
        ("sr_policy", "sr_always"),
        ("fillers", "glitter"),
        ("mail_order", "maybe"),
    ],
)
def test_forged_choices_are_a_400_with_a_message(app, client, auth, field, value) -> None:
    auth.sign_in_as("vol")
    item = imported()
    data = {"outcome": "confirmed", field: value}
    response = client.post(f"/moderation/calls/{item.id}", data=data)
    assert response.status_code == 400
    assert texts(response, f"#{field}-error")
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(CallAttempt)) == 0


def test_bad_filters_are_a_400_with_a_message(app, client, auth) -> None:
    auth.sign_in_as("vol")
    response = client.get("/moderation/calls/?kind=robot&state=US-XX")
    assert response.status_code == 400
    assert texts(response, "#kind-error") and texts(response, "#state-error")


def test_others_see_who_is_calling(app, client, auth) -> None:
    alice = builders.user("alice")
    item = imported()
    calls.claim(item.id, alice)
    auth.sign_in_as("bob")
    listed = client.get("/moderation/calls/")
    assert "alice is calling" in " ".join(texts(listed, ".call-item"))
    assert not html(listed).select(f"form[action*='/{item.id}/claim']")
    screen = client.get(f"/moderation/calls/{item.id}")
    assert "alice is calling this one" in " ".join(texts(screen, ".notice"))
    assert not html(screen).select("form.call-form")
    stolen = client.post(f"/moderation/calls/{item.id}", data={"outcome": "closed"})
    assert stolen.status_code == 303
    db.session.expire_all()
    assert db.session.get(Listing, item.id).status == Status.OPEN


def test_the_call_list_is_for_moderators_only(client) -> None:
    assert client.get("/moderation/calls/").status_code in (302, 401)


def test_the_rebuild_agrees_with_distances_measured_one_by_one(app) -> None:
    """Random places over a few degrees (several grid cells, some near 25 miles apart),
    random ones confirmed: the grid rebuild marks exactly what the slow oracle does."""
    import random

    rng = random.Random(11)
    for n in range(80):
        place = {"lat": 46 + rng.random() * 3, "lon": -120 + rng.random() * 4}
        if rng.random() < 0.15:
            builders.pharmacy(**place, verified_on=TODAY - timedelta(days=rng.randrange(600)))
        elif n % 3:
            imported(**place)
        else:
            builders.prescriber(**place)
    assert calls.refresh_nearby() == sum(nearby_oracle().values())
    assert stored_nearby() == nearby_oracle()
    assert 0 < sum(stored_nearby().values()) < 80
