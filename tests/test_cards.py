"""Search-result cards (directory/cards.py) against the ORM listing they summarise."""

from __future__ import annotations

from datetime import date

import pytest
from flask import url_for
from sqlalchemy import select

from directory import cards, search
from directory.extensions import db
from directory.listings import detail_url, json_ld, public_dict
from directory.models import Kind, Listing, ListingFacts

from . import builders

# Every fact ListingFacts derives, so a new one is compared without being listed here; the
# advised-against fillers are objects of different classes, compared by name below.
FACTS = sorted(
    name
    for name, value in vars(ListingFacts).items()
    if isinstance(value, property) and name != "fillers_advised_against"
)


def _all_listings() -> list[Listing]:
    return list(db.session.scalars(select(Listing).order_by(Listing.id)))


def test_cards_say_what_the_listing_says(seeded) -> None:
    """Every sample listing, pharmacies and prescribers: the card's columns, flags and terms,
    and every fact both derive (address, staleness, filler verdict and tone, public pin, slug)
    are the listing's."""
    listings = _all_listings()
    assert len(listings) > 50
    # The samples cover what the derived facts branch on.
    assert {listing.pin_is_approximate_to for listing in listings} >= {None, "town centre"}
    assert any(listing.fillers_advised_against for listing in listings)
    assert {"is_closed", "has_public_pin", "filler_tone"} <= set(FACTS)
    by_id = cards.load(listing.id for listing in listings)
    assert set(by_id) == {listing.id for listing in listings}
    for listing in listings:
        card = by_id[listing.id]
        for name in cards.COLUMN_NAMES:
            assert getattr(card, name) == getattr(listing, name), (listing.name, name)
        for fact in FACTS:
            assert getattr(card, fact) == getattr(listing, fact), (listing.name, fact)
        assert [f.name for f in card.fillers_advised_against] == [
            f.name for f in listing.fillers_advised_against
        ]
        assert [(f.type, f.label, f.source, f.as_of, f.url) for f in card.flags] == [
            (f.type, f.label, f.source, f.as_of, f.url) for f in listing.flags
        ]
        for vocab in ("fillers", "dosage_forms", "conditions"):
            assert [(t.code, t.name) for t in getattr(card, vocab)] == [
                (t.code, t.name) for t in getattr(listing, vocab)
            ], (listing.name, vocab)
        assert [t.guidance for t in card.fillers] == [f.guidance for f in listing.fillers]


def test_summary_agrees_with_the_full_listing(seeded, app) -> None:
    """The API's search result is a subset of /api/v1/listings/<id>, value for value."""
    listings = _all_listings()
    by_id = cards.load(listing.id for listing in listings)
    kinds = set()
    with app.test_request_context("/api/v1/search"):
        for listing in listings:
            full = public_dict(listing, external=True)
            summary = cards.summary(by_id[listing.id], 1.25)
            kinds.add(listing.kind)
            assert summary["distance"] == 1.2  # one decimal, half to even
            shared = set(summary) - {"distance", "filler_guidance"}
            assert shared <= set(full)
            for key in shared:
                assert summary[key] == full[key], (listing.name, key)
            if listing.kind == Kind.PHARMACY:
                worst = listing.worst_filler_guidance
                assert summary["filler_guidance"] == (worst.value if worst else None)
            for left_to_the_full_listing in ("email", "npi", "price_notes", "dosing_notes"):
                assert left_to_the_full_listing not in summary
    assert kinds == {Kind.PHARMACY, Kind.PRESCRIBER}


COMMON_KEYS = {
    "id", "kind", "name", "url", "distance", "address", "street", "city", "region",
    "postal_code", "country", "lat", "lon", "geo_precision", "phone", "website", "status",
    "verified_on", "needs_reconfirming", "is_sample", "flags",
}  # fmt: skip


def test_summary_fields_are_exactly_these(app) -> None:
    """API clients rely on these keys: adding or dropping one is a decision, not a side effect."""
    shipper = builders.pharmacy(mail_order=True, ships_to=["US-GA", "US-AL"])
    doctor = builders.prescriber(telehealth=True, licensed_in=["US-AL", "US-TN"])
    loaded = cards.load([shipper.id, doctor.id])
    with app.test_request_context("/api/v1/search"):
        pharmacy = cards.summary(loaded[shipper.id], 3.04)
        prescriber = cards.summary(loaded[doctor.id])
    assert set(pharmacy) == COMMON_KEYS | {
        "makes_ldn", "sr_policy", "fillers", "filler_guidance", "dosage_forms", "mail_order",
        "ships_to",
    }  # fmt: skip
    assert set(prescriber) == COMMON_KEYS | {
        "credentials", "specialty", "practice", "telehealth", "telehealth_only",
        "accepting_new_patients", "conditions", "licensed_in",
    }  # fmt: skip
    assert pharmacy["ships_to"] == ["US-AL", "US-GA"] and pharmacy["distance"] == 3.0
    assert prescriber["licensed_in"] == ["US-AL", "US-TN"] and prescriber["distance"] is None


def test_unknown_and_repeated_ids(app) -> None:
    listing = builders.pharmacy()
    assert cards.load([]) == {}
    assert list(cards.load([listing.id, listing.id, 10**9])) == [listing.id]


def test_a_closed_listings_card_still_loads_but_search_never_shows_it(app) -> None:
    # Loading by id is not the place for visibility rules: search's conditions are.
    shown = builders.pharmacy(name="Open Pharmacy")
    hidden = builders.pharmacy(name="Closed Pharmacy", status="closed")
    assert set(cards.load([shown.id, hidden.id])) == {shown.id, hidden.id}
    params = search.Params(lat=33.5062, lon=-86.8003)
    names = [h.listing.name for h in search.run(params, _geocoder(app)).hits]
    assert names == ["Open Pharmacy"]


def _geocoder(app):  # type: ignore[no-untyped-def]
    from directory.geocoding.app import geocoder

    return geocoder()


@pytest.mark.parametrize("script_root", ["", "/ldn"])
@pytest.mark.parametrize("external", [False, True])
def test_detail_url_is_the_routes_url(app, script_root: str, external: bool) -> None:
    """detail_url builds addresses without url_for per listing; it must give url_for's answer,
    under a prefix too."""
    made = [builders.pharmacy(name="Zürich Apotheke & Co."), builders.prescriber(name="Dr. O'Neil")]
    environ = {"SCRIPT_NAME": script_root}
    with app.test_request_context("/", base_url="https://ldn.example.org", environ_base=environ):
        for listing in made:
            endpoint = "public.pharmacy" if listing.is_pharmacy else "public.prescriber"
            expected = url_for(
                endpoint, listing_id=listing.id, slug=listing.slug, _external=external
            )
            assert detail_url(listing, _external=external) == expected
            card = cards.load([listing.id])[listing.id]
            assert detail_url(card, _external=external) == expected
    assert made[0].slug == "zurich-apotheke-co"


def test_criteria_are_shared_by_equal_searches() -> None:
    """Statements are cached per criteria key: equal searches share one, different filters
    or another day (for "verified") do not."""
    a = search.conditions(search.Params(near="x", filters=frozenset({"reliable"})))
    b = search.conditions(search.Params(near="y", radius=5, filters=frozenset({"reliable"})))
    assert a is b
    c = search.conditions(search.Params(near="x", filters=frozenset({"ir_only"})))
    assert c != a
    verified = search.Params(near="x", filters=frozenset({"verified"}))
    day1 = search.conditions(verified, today=date(2026, 1, 1))
    day2 = search.conditions(verified, today=date(2026, 1, 2))
    assert day1 != day2
    assert search.conditions(search.Params(near="x"), distance_list=True) != search.conditions(
        search.Params(near="x")
    )


def test_a_card_shows_values_by_their_tone_and_pins_only_public_places(app, client) -> None:
    from bs4 import BeautifulSoup

    unsure = builders.pharmacy(
        name="Unsure Pharmacy", makes_ldn=None, sr_policy="sr_on_request", fillers=["lactose"]
    )
    remote = builders.prescriber(
        name="Dr. Remote", telehealth=True, telehealth_only=True, flags=["curated_list"]
    )
    page = BeautifulSoup(client.get("/search?near=35233&radius=5").data, "html.parser")
    by_name = {c.select_one(".card-title").get_text(strip=True): c for c in page.select(".card")}
    card = by_name[unsure.name]
    assert {b.get_text(" ", strip=True): b["class"] for b in card.select(".badge")} == {
        "Not yet confirmed that it makes LDN: call first": ["badge", "tone-unknown"],
        "Makes slow-release LDN only when a prescription asks for it": ["badge", "tone-warn"],
        "Fillers: take care (Lactose (milk sugar))": ["badge", "tone-warn"],
    }
    assert card["data-lat"] == "33.50620"
    remote_card = by_name["Dr. Remote, MD"]
    assert "data-lat" not in remote_card.attrs
    flag = remote_card.select_one(".badge")
    assert flag["class"] == ["badge", "tone-good"]
    assert flag.get_text(strip=True) == "Test curated_list flag (May 2026)"
    with app.test_request_context():
        assert "geo" not in json_ld(remote) and json_ld(unsure)["geo"]["latitude"] == 33.5062
