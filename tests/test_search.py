"""Search (issue 3): distances, radius edges, pagination, filters, "also available", the page."""

from __future__ import annotations

import random
import re
from datetime import date, timedelta
from typing import Any

import pytest
from bs4 import BeautifulSoup
from geopy.distance import great_circle
from sqlalchemy import event, func, insert, select

from directory import search, spatial
from directory.extensions import db
from directory.forms import SearchForm
from directory.geocoding.app import geocoder
from directory.models import Kind, Listing, Status
from tests import builders
from tests.conftest import html, make_app

KM_PER_MI = 1.609344
ORIGIN = (33.5062, -86.8003)  # ZIP 35233, Birmingham, AL

PAGE_MESSAGE = f"The page must be a whole number from 1 to {search.MAX_PAGE}."


def run(**args: Any) -> search.Result:
    form = SearchForm.from_args({k: str(v) for k, v in args.items()})
    assert form.validate(), form.messages()
    return search.run(form.params(), geocoder())


def hit_names(result: search.Result) -> list[str]:
    return [h.listing.name for h in result.hits]


def also_names(result: search.Result) -> set[str]:
    return {listing.name for listing in result.also_available}


def at(km: float, bearing: float = 40.0, origin: tuple[float, float] = ORIGIN) -> dict[str, float]:
    point = great_circle(kilometers=km).destination(origin, bearing)
    return {"lat": point.latitude, "lon": point.longitude}


def insert_pharmacies(points: list[tuple[float, float]]) -> list[int]:
    rows = [
        {"kind": Kind.PHARMACY, "name": f"Bulk {i}", "country": "US", "lat": a, "lon": b}
        for i, (a, b) in enumerate(points)
    ]
    ids = db.session.scalars(insert(Listing).returning(Listing.id), rows).all()
    db.session.commit()
    return list(ids)


def cards(page: BeautifulSoup) -> list[BeautifulSoup]:
    return page.select("ol.results > li > article.card")


def card_texts(page: BeautifulSoup, part: str | None = None) -> dict[str, str]:
    """Each result's title -> the text of the whole card, or of one part of it."""
    return {
        c.select_one(".card-title").get_text(strip=True): (
            c.select_one(part) if part else c
        ).get_text(" ", strip=True)
        for c in cards(page)
    }


# --- distances and the radius -----------------------------------------------------------------


def test_seeded_results_are_nearest_first_with_geopy_distances(seeded, client) -> None:
    lat, lon, radius_mi = 47.6062, -122.3321, 30
    page = html(client.get(f"/search?lat={lat}&lon={lon}&radius={radius_mi}&unit=mi"))
    found = cards(page)
    # The oracle: every open listing with an office within the radius, by geopy.
    expected = []
    for listing in db.session.scalars(select(Listing)):
        if listing.lat is None or listing.telehealth_only or listing.status == Status.CLOSED:
            continue
        miles = great_circle((lat, lon), (listing.lat, listing.lon)).miles
        if miles <= radius_mi:
            expected.append((miles, listing.id))
    expected.sort()
    assert 5 <= len(expected) <= 20  # realistic: the Seattle samples, all on one page
    assert [int(c["data-id"]) for c in found] == [i for _, i in expected]
    shown = []
    for card, (miles, _) in zip(found, expected, strict=True):
        text = card.select_one(".distance").get_text(strip=True)
        assert re.fullmatch(r"\d+\.\d mi", text), text
        assert float(text.split()[0]) == pytest.approx(miles, abs=0.05 + miles * 1e-3)
        shown.append(float(text.split()[0]))
    assert shown == sorted(shown)
    summary = page.select_one(".result-summary").get_text(" ", strip=True)
    assert summary.startswith(f"{len(expected)} within 30 mi")


def test_distances_agree_with_geopy_within_a_tenth_of_a_percent(app) -> None:
    rng = random.Random(12)
    for _ in range(15):
        builders.pharmacy(**at(rng.uniform(0.2, 39), rng.uniform(0, 360)))
    for unit, per, radius in (("mi", KM_PER_MI, 25), ("km", 1.0, 40)):
        result = run(lat=ORIGIN[0], lon=ORIGIN[1], radius=radius, unit=unit)
        assert len(result.hits) == 15
        for hit in result.hits:
            geo = great_circle(ORIGIN, (hit.listing.lat, hit.listing.lon)).km / per
            assert hit.distance == pytest.approx(geo, rel=1e-3)
        assert [h.distance for h in result.hits] == sorted(h.distance for h in result.hits)


def test_just_inside_the_radius_is_found_and_just_outside_is_not(app) -> None:
    for radius, unit in ((10, "mi"), (10, "km"), (1, "mi"), (500, "mi")):
        radius_km = radius * (KM_PER_MI if unit == "mi" else 1.0)
        inside = builders.pharmacy(name="Just inside", **at(radius_km * 0.999, 75))
        outside = builders.pharmacy(name="Just outside", **at(radius_km * 1.001, 255))
        result = run(lat=ORIGIN[0], lon=ORIGIN[1], radius=radius, unit=unit)
        assert hit_names(result) == ["Just inside"], (radius, unit)
        assert result.total == 1
        assert result.hits[0].listing.id == inside.id
        assert result.hits[0].distance == pytest.approx(radius * 0.999, rel=1e-3)
        db.session.delete(inside)
        db.session.delete(outside)
        db.session.commit()


def test_miles_and_kilometres_are_different_radii(app) -> None:
    builders.pharmacy(name="Fifteen km", **at(15))
    builders.pharmacy(name="Seventeen km", **at(17))
    assert hit_names(run(lat=ORIGIN[0], lon=ORIGIN[1], radius=10, unit="mi")) == ["Fifteen km"]
    assert hit_names(run(lat=ORIGIN[0], lon=ORIGIN[1], radius=10, unit="km")) == []
    assert hit_names(run(lat=ORIGIN[0], lon=ORIGIN[1], radius=16, unit="km")) == ["Fifteen km"]
    both = run(lat=ORIGIN[0], lon=ORIGIN[1], radius=11, unit="mi")
    assert hit_names(both) == ["Fifteen km", "Seventeen km"]
    assert [round(h.distance, 2) for h in both.hits] == [
        round(15 / KM_PER_MI, 2),
        round(17 / KM_PER_MI, 2),
    ]


# --- pagination and totals against the full-scan oracle ---------------------------------------


@pytest.mark.parametrize("seed", [31, 32])
def test_pages_equal_the_full_scan_oracle(app, seed: int) -> None:
    rng = random.Random(seed)
    points = []
    for _ in range(130):
        spot = at(rng.choice([2, 10, 60]) * rng.random(), rng.uniform(0, 360))
        points.append((spot["lat"], spot["lon"]))
    insert_pharmacies(points)
    for _ in range(6):
        origin = at(rng.uniform(0, 20), rng.uniform(0, 360))
        radius = rng.choice([3, 12, 40])
        oracle = spatial.full_scan_nearest(
            origin["lat"], origin["lon"], radius * KM_PER_MI, limit=10**6
        )
        seen: list[tuple[int, float]] = []
        total = min(len(oracle), spatial.TOTAL_CAP)
        pages = max(1, -(-total // search.PAGE_SIZE))
        for page in range(1, pages + 1):
            result = run(**origin, radius=radius, page=page)
            assert result.total == total
            assert result.total_capped == (len(oracle) > spatial.TOTAL_CAP)
            assert result.pages == pages
            seen += [(h.listing.id, h.distance * KM_PER_MI) for h in result.hits]
        assert [i for i, _ in seen] == [i for i, _ in oracle[:total]]  # page 2 continues 1...
        for (_, got), (_, want) in zip(seen, oracle[:total], strict=True):
            assert got == pytest.approx(want, rel=1e-9)
        if pages < search.MAX_PAGE:
            with pytest.raises(search.SearchError) as beyond:
                run(**origin, radius=radius, page=pages + 1)
            assert f"only {pages} page" in beyond.value.errors["page"]


def test_the_total_is_capped(app, client) -> None:
    cap = spatial.TOTAL_CAP
    rng = random.Random(2)
    points = []
    for _ in range(cap + 3):
        spot = at(rng.uniform(0, 1.5), rng.uniform(0, 360))
        points.append((spot["lat"], spot["lon"]))
    insert_pharmacies(points)
    result = run(lat=ORIGIN[0], lon=ORIGIN[1], radius=10)
    assert (result.total, result.total_capped, result.pages) == (cap, True, search.MAX_PAGE)
    last = run(lat=ORIGIN[0], lon=ORIGIN[1], radius=10, page=search.MAX_PAGE)
    oracle = spatial.full_scan_nearest(*ORIGIN, 10 * KM_PER_MI, limit=cap)
    assert [h.listing.id for h in last.hits] == [i for i, _ in oracle[cap - 20 : cap]]
    page = html(client.get(f"/search?lat={ORIGIN[0]}&lon={ORIGIN[1]}&radius=10"))
    assert (
        page.select_one(".result-summary")
        .get_text(" ", strip=True)
        .startswith(f"{cap}+ within 10 mi")
    )
    assert f"Page 1 of {search.MAX_PAGE}" in page.select_one("nav.pager").get_text(" ", strip=True)


def test_html_pager_links_continue_the_list(app, client) -> None:
    for i in range(25):
        builders.pharmacy(name=f"Pharmacy {i:02d}", **at(0.5 + i))
    first = html(client.get("/search?near=35233&radius=50"))
    next_link = first.select_one("nav.pager a[rel=next]")
    assert next_link is not None
    second = html(client.get(next_link["href"]))
    ids = [int(c["data-id"]) for c in cards(first) + cards(second)]
    assert len(ids) == 25 and len(set(ids)) == 25
    distances = [float(c.select_one(".distance").get_text().split()[0]) for c in cards(second)]
    assert distances == sorted(distances) and len(distances) == 5
    assert second.select_one("nav.pager a[rel=prev]") is not None


# --- the edges of the map ---------------------------------------------------------------------


def test_listings_across_the_antimeridian_are_found_from_both_sides(app) -> None:
    builders.pharmacy(name="West of the line", lat=-16.8, lon=179.9, country="FJ", region=None)
    builders.pharmacy(name="East of the line", lat=-16.8, lon=-179.9, country="FJ", region=None)
    builders.pharmacy(name="Far west", lat=-16.8, lon=179.0, country="FJ", region=None)
    for lon, order in (
        (179.95, ["West of the line", "East of the line"]),
        (-179.95, ["East of the line", "West of the line"]),
    ):
        result = run(lat=-16.8, lon=lon, radius=20, unit="km")
        assert hit_names(result) == order
        for hit in result.hits:
            geo = great_circle((-16.8, lon), (hit.listing.lat, hit.listing.lon)).km
            assert hit.distance == pytest.approx(geo, rel=1e-3)


def test_listings_around_a_pole_are_found(app) -> None:
    for lon in (-150, -60, 30, 120):
        builders.pharmacy(name=f"Ring {lon}", lat=89.7, lon=lon, country="", region=None)
    builders.pharmacy(name="Too far", lat=88.0, lon=0, country="", region=None)
    result = run(lat=89.9, lon=-100, radius=50, unit="km")
    assert sorted(hit_names(result)) == ["Ring -150", "Ring -60", "Ring 120", "Ring 30"]
    assert [h.distance for h in result.hits] == sorted(h.distance for h in result.hits)


# --- filters ----------------------------------------------------------------------------------


@pytest.fixture
def mixed(app) -> None:
    """One of each kind of listing, all a few hundred metres from ZIP 35233."""
    today = date.today()
    spots = iter(range(1, 40))

    def near() -> dict[str, float]:
        return at(0.1 * next(spots))

    builders.pharmacy(
        name="P reliable",
        flags=["curated_list"],
        verified_on=today - timedelta(days=30),
        dosage_forms=["capsule", "liquid"],
        **near(),
    )
    builders.pharmacy(
        name="P slow-release",
        sr_policy="sr_default",
        verified_on=today - timedelta(days=366),
        **near(),
    )
    builders.pharmacy(name="P SR on request", sr_policy="sr_on_request", **near())
    builders.pharmacy(name="P SR unknown", sr_policy="unknown", **near())
    builders.pharmacy(name="P fillers unknown", fillers=None, **near())
    builders.pharmacy(name="P calcium carbonate", fillers=["mcc", "calcium_carbonate"], **near())
    builders.pharmacy(name="P hypromellose", fillers=["hypromellose"], **near())
    builders.pharmacy(
        name="P sucrose", fillers=["sucrose"], verified_on=today - timedelta(days=365), **near()
    )
    builders.pharmacy(name="P no fillers", fillers=[], dosage_forms=["cream"], **near())
    builders.pharmacy(name="P accredited", flags=["accreditation"], **near())
    builders.pharmacy(name="P closed", status="closed", flags=["curated_list"], **near())
    builders.pharmacy(name="P temporarily closed", status="temporarily_closed", **near())
    builders.prescriber(name="D office", conditions=["fibromyalgia"], **near())
    builders.prescriber(
        name="D telehealth",
        telehealth=True,
        accepting_new_patients=None,
        conditions=["me_cfs"],
        flags=["curated_list"],
        verified_on=today,
        **near(),
    )
    builders.prescriber(name="D not accepting", accepting_new_patients=False, **near())
    builders.prescriber(
        name="D telehealth only",
        telehealth=True,
        telehealth_only=True,
        licensed_in=["US-GA"],
        **near(),
    )
    builders.prescriber(name="D closed", status="closed", **near())


PHARMACIES_SHOWN = {
    "P reliable",
    "P slow-release",
    "P SR on request",
    "P SR unknown",
    "P fillers unknown",
    "P calcium carbonate",
    "P hypromellose",
    "P sucrose",
    "P no fillers",
    "P accredited",
    "P temporarily closed",
}
PRESCRIBERS_SHOWN = {"D office", "D telehealth", "D not accepting"}
IR_ONLY = PHARMACIES_SHOWN - {"P slow-release", "P SR on request", "P SR unknown"}


FILTER_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({}, PHARMACIES_SHOWN | PRESCRIBERS_SHOWN),
    ({"kind": "pharmacy"}, PHARMACIES_SHOWN),
    ({"kind": "prescriber"}, PRESCRIBERS_SHOWN),
    ({"reliable": 1}, {"P reliable", "D telehealth"}),
    ({"verified": 1}, {"P reliable", "P sucrose", "D telehealth"}),
    ({"ir_only": 1}, IR_ONLY | PRESCRIBERS_SHOWN),
    ({"ir_only": 1, "kind": "pharmacy"}, IR_ONLY),
    ({"ir_only": 1, "kind": "prescriber"}, PRESCRIBERS_SHOWN),
    # Unknown fillers are not "safe"; advised-against ones are out; caution is fine.
    (
        {"safe_fillers": 1, "kind": "pharmacy"},
        PHARMACIES_SHOWN - {"P fillers unknown", "P calcium carbonate", "P hypromellose"},
    ),
    (
        {"safe_fillers": 1},
        PHARMACIES_SHOWN - {"P fillers unknown", "P calcium carbonate", "P hypromellose"}
        | PRESCRIBERS_SHOWN,
    ),
    ({"dosage_form": "liquid"}, {"P reliable"} | PRESCRIBERS_SHOWN),
    ({"dosage_form": "cream", "kind": "pharmacy"}, {"P no fillers"}),
    ({"dosage_form": "capsule", "kind": "prescriber"}, PRESCRIBERS_SHOWN),
    ({"telehealth": 1}, PHARMACIES_SHOWN | {"D telehealth"}),
    ({"telehealth": 1, "kind": "prescriber"}, {"D telehealth"}),
    ({"accepting": 1}, PHARMACIES_SHOWN | {"D office"}),
    ({"accepting": 1, "kind": "pharmacy"}, PHARMACIES_SHOWN),
    ({"condition": "me_cfs"}, PHARMACIES_SHOWN | {"D telehealth"}),
    ({"condition": "fibromyalgia", "kind": "prescriber"}, {"D office", "D not accepting"}),
    ({"reliable": 1, "ir_only": 1, "accepting": 1}, {"P reliable"}),
]


def test_each_filter(mixed) -> None:
    # One data set, every case: building the listings once keeps the suite fast.
    wrong = []
    for args, expected in FILTER_CASES:
        result = run(near="35233", radius=5, **args)
        got = set(hit_names(result))
        if got != expected or result.total != len(expected):
            wrong.append(
                f"{args}: missing {sorted(expected - got)}, unexpected {sorted(got - expected)},"
                f" total {result.total}"
            )
    assert not wrong, "\n".join(wrong)


def test_filters_work_through_the_page_by_get(mixed, client) -> None:
    page = html(client.get("/search?near=35233&radius=5"))
    form = page.select_one("form#search-form")
    assert form["method"] == "get"
    # Fill in the form the way a browser would and send it.
    fields: list[tuple[str, str]] = []
    for el in form.select("input[name], select[name]"):
        if el.name == "select":
            chosen = el.select_one("option[selected]") or el.select_one("option")
            value = chosen["value"]
            if el["name"] == "kind":
                value = "pharmacy"
            fields.append((el["name"], value))
        elif el.get("type") == "checkbox":
            if el.has_attr("checked") or el["name"] in ("ir_only", "safe_fillers"):
                fields.append((el["name"], el["value"]))
        else:
            fields.append((el["name"], el.get("value", "")))
    response = client.get(form["action"], query_string=fields)
    assert response.status_code == 200
    filtered = html(response)
    names = {c.select_one(".card-title a").get_text(strip=True) for c in cards(filtered)}
    assert names == IR_ONLY - {"P fillers unknown", "P calcium carbonate", "P hypromellose"}
    # The page shows the filters it applied, so the next change keeps them.
    assert filtered.select_one("input#f-ir_only").has_attr("checked")
    assert filtered.select_one("input#f-safe_fillers").has_attr("checked")
    assert not filtered.select_one("input#f-reliable").has_attr("checked")
    assert filtered.select_one("select#kind option[selected]")["value"] == "pharmacy"
    # Folded after the search, so the results come first; its summary names the filters.
    assert not filtered.select_one("details.filters").has_attr("open")
    assert "immediate-release only" in filtered.select_one(".filter-summary").get_text()


def test_closed_never_appear_and_temporarily_closed_do(mixed, client) -> None:
    for args in ({}, {"kind": "pharmacy"}, {"kind": "prescriber"}, {"radius": 500}):
        names = set(hit_names(run(near="35233", **{"radius": 5, **args})))
        assert "P closed" not in names and "D closed" not in names
    page = html(client.get("/search?near=35233&radius=5&kind=pharmacy"))
    card = next(
        c
        for c in cards(page)
        if c.select_one(".card-title").get_text(strip=True) == "P temporarily closed"
    )
    assert "Temporarily closed" in [b.get_text(strip=True) for b in card.select(".badge.tone-warn")]


def test_seeded_closed_listings_are_hidden_and_temporarily_closed_shown(seeded) -> None:
    closed = db.session.scalars(select(Listing).where(Listing.status == Status.CLOSED)).all()
    temporary = db.session.scalars(
        select(Listing).where(Listing.status == Status.TEMPORARILY_CLOSED)
    ).all()
    assert closed and temporary
    for listing in closed:
        result = run(lat=listing.lat, lon=listing.lon, radius=50)
        assert listing.id not in {h.listing.id for h in result.hits}
        assert listing.id not in {x.id for x in result.also_available}
    for listing in temporary:
        result = run(lat=listing.lat, lon=listing.lon, radius=5)
        assert listing.id in {h.listing.id for h in result.hits}


def test_telehealth_only_prescribers_are_never_on_the_distance_list(mixed) -> None:
    for args in ({}, {"kind": "prescriber"}, {"telehealth": 1}, {"radius": 500}):
        result = run(near="35233", **{"radius": 5, **args})
        assert "D telehealth only" not in hit_names(result)
    # Licensed in Georgia, so a search from Atlanta offers it without a distance.
    result = run(near="Atlanta, GA", radius=5)
    assert "D telehealth only" in also_names(result)


# --- also available ---------------------------------------------------------------------------


@pytest.fixture
def reach(app) -> None:
    seattle = {"lat": 47.61039, "lon": -122.34923, "city": "Seattle", "region": "US-WA"}
    builders.pharmacy(
        name="Mail-order to Alabama", mail_order=True, ships_to=["US-AL", "US-GA"], **seattle
    )
    builders.pharmacy(name="Mail-order elsewhere", mail_order=True, ships_to=["US-WA"], **seattle)
    builders.pharmacy(
        name="Ships but no mail order flag", mail_order=False, ships_to=["US-AL"], **seattle
    )
    builders.pharmacy(
        name="Mail-order SR",
        mail_order=True,
        ships_to=["US-AL"],
        sr_policy="sr_default",
        **seattle,
    )
    builders.pharmacy(
        name="Mail-order closed", mail_order=True, ships_to=["US-AL"], status="closed", **seattle
    )
    builders.pharmacy(name="Local mail-order", mail_order=True, ships_to=["US-AL"], **at(3))
    builders.prescriber(
        name="Tele licensed in Alabama",
        telehealth=True,
        telehealth_only=True,
        street=None,
        lat=None,
        lon=None,
        licensed_in=["US-AL"],
    )
    builders.prescriber(
        name="Tele and office far away", telehealth=True, licensed_in=["US-AL"], **seattle
    )
    builders.prescriber(
        name="Tele licensed elsewhere",
        telehealth=True,
        telehealth_only=True,
        lat=None,
        lon=None,
        licensed_in=["US-WA"],
    )
    builders.prescriber(
        name="Office only, licensed in Alabama", telehealth=False, licensed_in=["US-AL"], **seattle
    )
    builders.prescriber(name="Local telehealth", telehealth=True, licensed_in=["US-AL"], **at(2))
    builders.pharmacy(
        name="Ships to the UK",
        mail_order=True,
        ships_to=["GB"],
        lat=51.5,
        lon=-0.12,
        country="GB",
        region="England",
        postal_code="EC1A 1BB",
    )


def test_also_available_lists_mail_order_and_telehealth_for_the_state(reach) -> None:
    result = run(near="35233", radius=25)
    assert set(hit_names(result)) == {"Local mail-order", "Local telehealth"}
    assert also_names(result) == {
        "Mail-order to Alabama",
        "Mail-order SR",
        "Tele licensed in Alabama",
        "Tele and office far away",
    }
    # Not duplicated: what is on the distance list is not repeated below it.
    assert not also_names(result) & set(hit_names(result))


def test_also_available_follows_kind_and_filters(reach) -> None:
    assert also_names(run(near="35233", kind="pharmacy")) == {
        "Mail-order to Alabama",
        "Mail-order SR",
    }
    assert also_names(run(near="35233", kind="prescriber")) == {
        "Tele licensed in Alabama",
        "Tele and office far away",
    }
    assert also_names(run(near="35233", ir_only=1, kind="pharmacy")) == {"Mail-order to Alabama"}


def test_also_available_starts_where_the_radius_ends(reach) -> None:
    builders.pharmacy(name="Mail-order 30 mi away", mail_order=True, ships_to=["US-AL"], **at(48.3))
    inside = run(near="35233", radius=31, kind="pharmacy")
    assert "Mail-order 30 mi away" in hit_names(inside)
    assert "Mail-order 30 mi away" not in also_names(inside)
    beyond = run(near="35233", radius=29, kind="pharmacy")
    assert "Mail-order 30 mi away" not in hit_names(beyond)
    assert "Mail-order 30 mi away" in also_names(beyond)


def test_also_available_is_for_the_searchers_state(reach) -> None:
    seattle = run(lat=47.6, lon=-122.3, radius=5)
    assert seattle.origin.region == "US-WA"
    assert {"Mail-order to Alabama", "Mail-order elsewhere"} <= set(hit_names(seattle))
    assert "Mail-order to Alabama" not in also_names(seattle)
    assert "Tele licensed elsewhere" in also_names(seattle)
    assert "Tele licensed in Alabama" not in also_names(seattle)


def test_also_available_by_country(reach) -> None:
    result = run(near="Manchester, England", radius=5)
    assert hit_names(result) == []
    assert also_names(result) == {"Ships to the UK"}


def test_also_available_is_shown_on_the_page_without_distances(reach, client) -> None:
    page = html(client.get("/search?near=35233"))
    also = page.select_one("section.also")
    assert also is not None
    titles = {a.get_text(strip=True) for a in also.select(".card-title a")}
    assert titles == {
        "Mail-order to Alabama",
        "Mail-order SR",
        "Tele licensed in Alabama, MD",
        "Tele and office far away, MD",
    }
    assert also.select(".distance") == []
    assert "Alabama" in also.select_one("p").get_text()


def test_also_available_is_the_best_twenty_across_states_and_the_country(app) -> None:
    """Four ranked walks (ships to / licensed in, the state / the country), each cut at 20,
    merged: the section must be the best 20 of everything eligible, curated first, then the
    most recently verified, then the most recently listed (the highest id: the order the
    index holds, so the walks stop after 20 rows instead of sorting a rank's ties)."""
    from directory import moderation
    from directory.models import FlagType, ReliabilityFlag, User

    rng = random.Random(31)
    far = {"lat": 47.61039, "lon": -122.34923, "city": "Seattle", "region": "US-WA"}
    mod = User(username="reach-mod", password_hash="x")
    db.session.add(mod)
    db.session.commit()
    eligible = []
    for n in range(36):
        where = ["US-AL"] if n % 3 else ["US"]
        if n % 4 == 0:
            listing = builders.prescriber(
                name=f"Tele {n}", telehealth=True, licensed_in=where, **far
            )
        else:
            listing = builders.pharmacy(name=f"Mail {n}", mail_order=True, ships_to=where, **far)
        if rng.random() < 0.3:
            listing.flags.append(
                ReliabilityFlag(
                    type=FlagType.CURATED_LIST, label="L", source="S", as_of=date(2026, 1, 1)
                )
            )
            db.session.commit()
        if rng.random() < 0.8:
            day = date(2026, 11, 1) - timedelta(days=rng.randrange(0, 40))
            moderation.mark_verified(listing.id, mod, "phone", day)
        eligible.append(listing)
    builders.pharmacy(name="Ships elsewhere", mail_order=True, ships_to=["US-GA"], **far)
    db.session.expire_all()
    ranked = sorted(
        (db.session.get(Listing, listing.id) for listing in eligible),
        key=lambda listing: (-listing.reach_rank, -listing.id),
    )
    expected = [listing.name for listing in ranked[: search.ALSO_AVAILABLE_LIMIT]]
    assert also_names_in_order(run(near="35233", radius=10)) == expected
    # Both streams and both codes are in the mix (the test would be weaker otherwise).
    assert {name.split()[0] for name in expected} == {"Tele", "Mail"}


def also_names_in_order(result: search.Result) -> list[str]:
    return [listing.name for listing in result.also_available]


def test_only_the_first_page_carries_also_available(reach) -> None:
    insert_pharmacies([(p["lat"], p["lon"]) for p in (at(0.05 * n) for n in range(1, 30))])
    assert run(near="35233").also_available
    second = run(near="35233", page=2)
    assert second.hits and second.also_available == []


# --- places -----------------------------------------------------------------------------------


def test_an_ambiguous_place_offers_the_others(seeded, client) -> None:
    # The order: Birmingham, AL first, England one tap away.
    result = run(near="Birmingham")
    assert result.origin.label == "Birmingham, AL, US"
    labels = [p.label for p in result.other_places]
    assert "Birmingham, England, GB" in labels and result.origin.label not in labels
    page = html(client.get("/search?near=Birmingham"))
    alabama = {c.select_one(".card-address").get_text() for c in cards(page)}
    assert alabama and all(", AL " in line for line in alabama)
    links = {a.get_text(strip=True): a["href"] for a in page.select(".other-places a")}
    assert set(links) == set(labels)
    followed = html(client.get(links["Birmingham, England, GB"]))
    heading = followed.select_one("h1").get_text(" ", strip=True)
    assert "Birmingham" in heading and "England" in heading


def test_a_zip_code_is_not_ambiguous(app) -> None:
    result = run(near="35233")
    assert result.other_places == []
    assert result.origin.region == "US-AL"


def test_search_reads_vocabularies_only_when_a_choice_filter_is_given(app) -> None:
    statements: list[str] = []

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert SearchForm.from_args({"near": "35233"}).validate()
        assert statements == []
        assert SearchForm.from_args({"near": "35233", "dosage_form": "capsule"}).validate()
        assert len(statements) == 1 and "dosage_forms" in statements[0]
        form = SearchForm.from_args({"near": "35233", "condition": "nope"})
        assert not form.validate()
        assert "condition" in form.messages()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


# --- the page: bad input never fails, and says what to fix next to the field -------------------


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"near": ""}, "near", "Please tell us where you are"),
        ({"near": "   "}, "near", "Please tell us where you are"),
        ({"near": "35233", "radius": "abc"}, "radius", "The distance must be a number"),
        ({"near": "35233", "radius": "-1"}, "radius", "from 1 to 500"),
        ({"near": "35233", "radius": "0"}, "radius", "from 1 to 500"),
        ({"near": "35233", "radius": "501"}, "radius", "from 1 to 500"),
        ({"near": "35233", "radius": "nan"}, "radius", "The distance must be a number"),
        ({"near": "35233", "radius": "1e999"}, "radius", "The distance must be a number"),
        ({"near": "x" * 10240}, "near", "shorter place name"),
        ({"near": "95, 10"}, "near", "Latitude must be between -90 and 90"),
        ({"near": "35233\x1b[2J"}, "near", "characters that cannot be used"),
        ({"near": "😀"}, "near", "We couldn't find"),
        ({"near": "Xyzzyqx"}, "near", "We couldn't find 'Xyzzyqx'"),
        ({"near": "35233", "radius": "0.5"}, "radius", "from 1 to 500"),
        ({"near": "35233", "radius": "1_0"}, "radius", "The distance must be a number"),
        ({"near": "35233", "radius": "1e-7"}, "radius", "The distance must be a number"),
        ({"near": "35233", "radius": "١٠"}, "radius", "The distance must be a number"),
        ({"near": "near me"}, "near", "Use my location"),
        ({"near": "Near me!"}, "near", "Use my location"),
        ({"near": "here"}, "near", "Use my location"),
    ],
)
def test_bad_input_gets_a_message_next_to_the_field(shared_client, query, field, message) -> None:
    response = shared_client.get("/search", query_string=query)
    assert response.status_code == 400
    page = html(response)
    error = page.select_one(f"#{field}-error")
    assert error is not None and message in error.get_text()
    assert page.select_one(f"div.field.has-error #{field}-error") is error
    if field == "near":
        assert page.select_one("input#near")["aria-invalid"] == "true"
        assert page.select_one("input#near")["aria-describedby"] == "near-error"
    assert cards(page) == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"lat": "33.5"}, "Latitude and longitude must be given together."),
        ({"lon": "-86.8"}, "Latitude and longitude must be given together."),
        ({"lat": "95", "lon": "10"}, "Latitude must be a number between -90 and 90."),
        ({"lat": "10", "lon": "181"}, "Longitude must be a number between -180 and 180."),
        ({"lat": "abc", "lon": "10"}, "Latitude must be a number between -90 and 90."),
        ({"near": "35233", "kind": "hospital"}, "Choose pharmacies, prescribers or both."),
        ({"near": "35233", "unit": "furlongs"}, "The unit must be mi (miles) or km"),
        ({"near": "35233", "page": "0"}, PAGE_MESSAGE),
        ({"near": "35233", "page": str(search.MAX_PAGE + 1)}, PAGE_MESSAGE),
        ({"near": "35233", "page": "²"}, PAGE_MESSAGE),
        ({"near": "35233", "page": "9" * 5000}, PAGE_MESSAGE),
        ({"near": "35233", "reliable": "maybe"}, "reliable must be 1 or 0."),
        ({"near": "35233", "dosage_form": "suppository"}, "Unknown dosage form"),
        ({"near": "35233", "condition": "<script>"}, "Unknown condition"),
    ],
)
def test_other_bad_parameters_are_summarised(shared_client, query, message) -> None:
    response = shared_client.get("/search", query_string=query)
    assert response.status_code == 400
    page = html(response)
    items = [li.get_text(" ", strip=True) for li in page.select(".error-summary li")]
    assert any(message in item for item in items), items


def test_typed_text_is_escaped_when_shown_back(client) -> None:
    typed = '"><script>alert(1)</script>'
    response = client.get("/search", query_string={"near": typed, "radius": typed})
    assert response.status_code == 400
    assert b"<script>alert(1)</script>" not in response.data
    page = html(response)
    assert page.select_one("input#near")["value"] == typed
    assert page.select_one("input#radius")["value"] == typed[:20]


def test_a_nul_byte_is_a_plain_400(shared_client) -> None:
    for query in ({"near": "35233\x00"}, {"near": "35233", "kind": "both\x00"}):
        response = shared_client.get("/search", query_string=query)
        assert response.status_code == 400
        assert html(response).select_one("main h1") is not None


def test_unknown_place_keeps_the_text_and_suggests_places(app, client) -> None:
    response = client.get("/search?near=Birmingxam&radius=10&kind=pharmacy")
    assert response.status_code == 400
    page = html(response)
    assert page.select_one("input#near")["value"] == "Birmingxam"
    assert "We couldn't find 'Birmingxam'" in page.select_one("#near-error").get_text()
    suggestions = {a.get_text(strip=True): a["href"] for a in page.select("ul.suggestions a")}
    assert "Birmingham, AL, US" in suggestions
    # The other choices are kept too, and the suggestion link searches with them.
    assert page.select_one("select#kind option[selected]")["value"] == "pharmacy"
    followed = client.get(suggestions["Birmingham, AL, US"])
    assert followed.status_code == 200
    result_page = html(followed)
    assert result_page.select_one("input#radius")["value"] == "10"
    assert result_page.select_one("select#kind option[selected]")["value"] == "pharmacy"
    assert all(c.select_one(".kind").get_text(strip=True) == "Pharmacy" for c in cards(result_page))


def test_bad_radius_is_kept_in_the_box(client) -> None:
    page = html(client.get("/search?near=35233&radius=abc"))
    assert page.select_one("input#radius")["value"] == "abc"
    assert page.select_one("input#near")["value"] == "35233"


def test_a_long_place_is_cut_to_the_box_size(client) -> None:
    page = html(client.get("/search", query_string={"near": "y" * 10240}))
    assert page.select_one("input#near")["value"] == "y" * 200


@pytest.mark.parametrize(
    ("near", "label"), [("Zürich", "Zürich, CH"), ("São Paulo", "São Paulo, BR")]
)
def test_places_with_accents(client, near: str, label: str) -> None:
    builders.pharmacy(name="Farmácia Exemplo", lat=-23.55, lon=-46.63, country="BR", region=None)
    response = client.get("/search", query_string={"near": near})
    assert response.status_code == 200
    page = html(response)
    assert page.select_one("input#near")["value"] == near
    assert page.select_one("h1").get_text(" ", strip=True).endswith(label)
    names = [c.select_one(".card-title a").get_text(strip=True) for c in cards(page)]
    assert names == (["Farmácia Exemplo"] if near == "São Paulo" else [])


def test_searching_by_position_labels_the_nearest_city(client) -> None:
    builders.pharmacy(name="Here")
    page = html(client.get(f"/search?lat={ORIGIN[0]}&lon={ORIGIN[1]}"))
    assert page.select_one("h1").get_text(" ", strip=True).endswith("near Birmingham, AL")
    assert page.select_one("input#lat")["value"] == f"{ORIGIN[0]:.5f}"
    assert [c.select_one(".card-title a").get_text(strip=True) for c in cards(page)] == ["Here"]


def test_no_results_offers_a_wider_search(app, client) -> None:
    builders.pharmacy(name="Far", **at(60))
    page = html(client.get("/search?near=35233&radius=25"))
    assert cards(page) == []
    wider = page.select_one(".result-summary a")
    assert wider is not None and "radius=100" in wider["href"]
    assert [
        c.select_one(".card-title a").get_text(strip=True)
        for c in cards(html(client.get(wider["href"])))
    ] == ["Far"]


def test_a_misspelt_city_with_a_known_state_asks_rather_than_guessing_the_state(app) -> None:
    with pytest.raises(search.SearchError) as caught:
        run(near="Seatle, WA")
    assert caught.value.code == "place_not_found"
    assert "Seattle, WA, US" in caught.value.suggestions
    # A state (or a state with its country) on its own is still a fine place to search from.
    assert run(near="Texas, US").origin.precision == "region"
    assert run(near="Alabama").origin.precision == "region"


def test_reach_ranks_stay_in_step_with_flags_and_verification(seeded) -> None:
    from directory import moderation
    from directory.models import ListingRegion, User

    def out_of_step() -> list[int]:
        db.session.expire_all()
        return [
            r.listing_id
            for r in db.session.scalars(select(ListingRegion))
            if r.rank != r.listing.reach_rank
        ]

    assert out_of_step() == []
    mod = User(username="rank-mod", password_hash="x")
    db.session.add(mod)
    db.session.commit()
    shipper = db.session.scalars(
        select(Listing).where(Listing.mail_order, Listing.regions.any())
    ).first()
    before = shipper.reach_rank
    flag = moderation.add_flag(
        shipper.id, mod, type="curated_list", label="Listed", source="Test", as_of=date(2026, 1, 1)
    )
    moderation.mark_verified(shipper.id, mod, "phone", date.today())
    assert shipper.reach_rank > before and out_of_step() == []
    moderation.remove_flag(shipper.id, flag.id, mod, "Delisted")
    assert out_of_step() == []


def test_on_curated_list_stays_in_step_with_the_flags(seeded) -> None:
    """The "reliable" filter reads listings.on_curated_list: it must follow every way a
    curated_list flag comes and goes, and agree with the flags for every listing."""
    from directory import moderation
    from directory.models import FlagType, ReliabilityFlag, User

    def disagreeing() -> list[str]:
        db.session.expire_all()
        return [
            listing.name
            for listing in db.session.scalars(select(Listing))
            if listing.on_curated_list
            != any(f.type == FlagType.CURATED_LIST for f in listing.flags)
        ]

    assert disagreeing() == []
    assert db.session.scalar(select(func.count()).where(Listing.on_curated_list)) > 0
    mod = User(username="curated-mod", password_hash="x")
    db.session.add(mod)
    db.session.commit()
    target = db.session.scalars(
        select(Listing).where(Listing.on_curated_list.is_(False), Listing.regions.any())
    ).first()
    flag = moderation.add_flag(
        target.id, mod, type="curated_list", label="Listed", source="Test", as_of=date(2026, 1, 1)
    )
    assert target.on_curated_list is True and disagreeing() == []
    # An accreditation flag is not a curated list.
    other = db.session.scalars(select(Listing).where(Listing.on_curated_list.is_(False))).first()
    moderation.add_flag(
        other.id, mod, type="accreditation", label="PCAB", source="Test", as_of=date(2026, 1, 1)
    )
    assert other.on_curated_list is False
    moderation.remove_flag(target.id, flag.id, mod, "Delisted")
    assert disagreeing() == []
    assert db.session.get(Listing, target.id).on_curated_list is False
    # Deleting the flag row itself, not through the listing's collection, counts too.
    again = moderation.add_flag(
        target.id, mod, type="curated_list", label="Listed", source="Test", as_of=date(2026, 1, 1)
    )
    db.session.delete(db.session.get(ReliabilityFlag, again.id))
    db.session.commit()
    assert disagreeing() == []
    # ...and the ranked copy used by "also available" agrees with it.
    db.session.expire_all()
    target = db.session.get(Listing, target.id)
    assert target.regions, "the test needs a listing that ships or is licensed somewhere"
    assert {r.rank for r in target.regions} == {target.reach_rank}
    assert target.reach_rank < 1_000_000


def test_pharmacies_that_do_not_make_ldn_are_never_shown(app, client) -> None:
    """QA found a pharmacy marked 'Makes LDN: No' as the top result. Unknown still shows,
    with a badge saying to call first; prescribers have no such field."""
    builders.pharmacy(name="Makes LDN", makes_ldn=True, **at(0.2))
    builders.pharmacy(name="Does not make LDN", makes_ldn=False, **at(0.3))
    builders.pharmacy(name="Not known", makes_ldn=None, **at(0.4))
    builders.pharmacy(
        name="Mails, but no LDN",
        makes_ldn=False,
        mail_order=True,
        ships_to=["US-AL"],
        lat=47.6,
        lon=-122.3,
    )
    builders.prescriber(name="A prescriber", **at(0.5))
    for kind in ("both", "pharmacy"):
        result = run(near="35233", kind=kind)
        shown = set(hit_names(result)) | also_names(result)
        assert "Does not make LDN" not in shown and "Mails, but no LDN" not in shown
        assert {"Makes LDN", "Not known"} <= shown
    assert "A prescriber" in hit_names(run(near="35233"))
    page = html(client.get("/search?near=35233"))
    badges = card_texts(page)
    assert "call first" in badges["Not known"]
    assert "call first" not in badges["Makes LDN"]


def test_filler_badges_name_the_filler(app, client) -> None:
    builders.pharmacy(name="Advised", fillers=["mcc", "calcium_carbonate"], **at(0.2))
    builders.pharmacy(name="None used", fillers=[], **at(0.3))
    builders.pharmacy(name="Fine", fillers=["mcc"], **at(0.4))
    page = html(client.get("/search?near=35233"))
    text = card_texts(page)
    assert "advised against (Calcium carbonate)" in text["Advised"]
    assert "No fillers" in text["None used"] and "Fillers are fine" not in text["None used"]
    assert "Fillers are fine (Microcrystalline cellulose (Avicel))" in text["Fine"]


def test_a_typed_place_wins_over_a_broken_browser_position(app, client) -> None:
    """Without JavaScript the form keeps the last position in hidden fields; QA found a bad
    one blocked the next search for a typed place."""
    builders.pharmacy(name="In Birmingham", **at(0.2))
    response = client.get("/search?near=35233&lat=91&lon=abc")
    assert response.status_code == 200
    assert [c.select_one(".card-title").get_text(strip=True) for c in cards(html(response))] == [
        "In Birmingham"
    ]
    # Alone, the broken position is still an error.
    assert client.get("/search?lat=91&lon=abc").status_code == 400


def test_a_page_past_the_last_says_so(app, client) -> None:
    for n in range(3):
        builders.pharmacy(name=f"P{n}", **at(0.1 * (n + 1)))
    response = client.get("/search?near=35233&page=3")
    assert response.status_code == 400
    assert "only 1 page" in html(response).get_text(" ", strip=True)
    api = client.get("/api/v1/search?near=35233&page=2")
    assert api.status_code == 400 and "page" in api.get_json()["error"]["fields"]
    assert client.get("/search?near=35233&page=1").status_code == 200


def test_a_state_asks_for_a_town_and_shows_who_serves_it(reach, client) -> None:
    """QA: 'Alabama' said 'Nothing within 25 mi of Alabama' although Birmingham has
    listings. A whole state gets no distance list; the page asks for a ZIP code or town,
    and 'also available' lists who serves the state."""
    builders.pharmacy(name="In Birmingham", **at(0.3))
    for query in ("Alabama", "AL"):
        result = run(near=query)
        assert result.region_only and result.origin.precision == "region"
        assert result.hits == [] and result.total == 0
        assert "Mail-order to Alabama" in also_names(result)
    page = html(client.get("/search?near=Alabama"))
    summary = page.select_one(".result-summary").get_text(" ", strip=True)
    assert "too big" in summary and "ZIP code or town" in summary
    assert "Nothing within" not in summary
    assert "Mail-order to Alabama" in page.select_one("section.also").get_text()
    api = client.get("/api/v1/search?near=Alabama").get_json()
    assert api["region_only"] is True and api["results"] == []
    # A town in the state is a normal search.
    town = run(near="35233")
    assert not town.region_only and "In Birmingham" in hit_names(town)


def test_a_distance_to_a_town_centre_says_so(app, client) -> None:
    """QA: '0.0 mi' for a pharmacy whose address is only 'Nashville, TN' looked exact."""
    builders.pharmacy(name="Exact", geo_precision="address", **at(0.5))
    builders.pharmacy(name="Town only", geo_precision="city", **at(0.0))
    builders.pharmacy(name="ZIP only", geo_precision="postal_code", **at(1.0))
    page = html(client.get("/search?near=35233"))
    meta = card_texts(page, ".card-meta")
    assert "town centre" in meta["Town only"] and meta["Town only"].startswith("0.0 mi")
    assert "ZIP code area" in meta["ZIP only"]
    assert "town centre" not in meta["Exact"] and "ZIP code area" not in meta["Exact"]


# --- one form, one entry point -----------------------------------------------------------------


def test_the_search_form_needs_no_csrf_token(database_url) -> None:
    """A search is a GET with a shareable address: with CSRF on for the site, the page, the
    API and the form itself still take a search without a token."""
    app = make_app(database_url, WTF_CSRF_ENABLED=True)
    with app.app_context():
        builders.pharmacy(name="Here", **at(0.2))
        client = app.test_client()
        page = html(client.get("/search?near=35233"))
        assert [c.select_one(".card-title").get_text(strip=True) for c in cards(page)] == ["Here"]
        assert page.select_one("form#search-form input[name=csrf_token]") is None
        assert client.get("/api/v1/search?near=35233").get_json()["total"] == 1
        form = SearchForm.from_args({"near": "35233"})
        assert "csrf_token" not in form and form.validate()


@pytest.mark.parametrize(
    ("query", "cli_args"),
    [
        (
            {"near": "35233", "radius": "abc", "unit": "furlongs", "kind": "hospital"},
            ["35233", "--radius=abc", "--unit=furlongs", "--kind=hospital"],
        ),
        ({"near": "Xyzzyqx"}, ["Xyzzyqx"]),
        ({"near": "near me", "radius": "0"}, ["near me", "--radius=0"]),
        ({"lat": "95", "lon": "10", "reliable": "maybe"}, None),  # no CLI option for these
        (
            {"near": "35233", "dosage_form": "pills", "condition": "gout"},
            ["35233", "--dosage-form=pills", "--condition=gout"],
        ),
    ],
)
def test_page_api_and_cli_give_the_same_messages(app, client, runner, query, cli_args) -> None:
    outcome = search.perform(SearchForm.from_args(query), geocoder())
    assert outcome.result is None and outcome.errors
    api = client.get("/api/v1/search", query_string=query).get_json()["error"]
    assert api["fields"] == outcome.errors and api["message"] == outcome.message
    page = html(client.get("/search", query_string=query))
    shown = [p.get_text(strip=True) for p in page.select("p.error")]
    shown += [li.get_text(" ", strip=True) for li in page.select(".error-summary li")]
    assert set(outcome.errors.values()) <= set(shown)
    if cli_args is not None:
        cli = runner.invoke(args=["search", *cli_args])
        assert cli.exit_code == 1
        assert all(message in cli.output for message in outcome.errors.values())


def test_the_cli_filters_as_the_page_does_and_refuses_an_unknown_one(app, runner) -> None:
    builders.pharmacy(name="Cream Maker", dosage_forms=["cream"], **at(0.2))
    builders.pharmacy(name="Capsules Only", dosage_forms=["capsule"], **at(0.3))
    found = runner.invoke(args=["search", "35233", "--dosage-form", "cream"])
    assert found.exit_code == 0, found.output
    assert "Cream Maker" in found.output and "Capsules Only" not in found.output
    # An unknown name was ignored, so the search ran without it; "near" even replaced the place.
    for name in ("bogus", "near", "page"):
        refused = runner.invoke(args=["search", "35233", "--filter", name])
        assert refused.exit_code == 2 and "Invalid value for '--filter'" in refused.output


@pytest.mark.parametrize(
    ("radius", "wider"), [(25, 100), (2.5, 10), (200, 500), (499, 500), (500, None)]
)
def test_the_wider_radius_is_four_times_up_to_the_limit(app, radius, wider) -> None:
    builders.pharmacy(name="Far", **at(900))
    result = run(near="35233", radius=radius)
    assert result.hits == [] and result.wider_radius == wider
