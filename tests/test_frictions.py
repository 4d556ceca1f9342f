"""Issue 14's frictions, first half: what a tired patient on a phone met. Each test fails
without its fix: the folded filters and their summary, the skip link, one vocabulary for the
filler filter, forgiving forms, the correction form's first question, what happens next and
the contact address, the way back to the search, print marks, "Open in maps" and postcodes
from abroad."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from directory import moderation
from directory.config import ConfigError, from_environment
from directory.extensions import db
from directory.models import Status, Submission, SubmissionType
from directory.resources import PACKAGE
from directory.vocabulary import Resolution
from tests import builders
from tests.conftest import html, make_app
from tests.test_submit import browser_form, field_error, pharmacy_form, post, sent_reference


def only_submission() -> Submission:
    (sub,) = db.session.scalars(select(Submission)).all()
    return sub


# --- the search: results first ------------------------------------------------------------


def test_a_filtered_search_folds_the_filters_into_one_line(client) -> None:
    builders.pharmacy(name="Oak Pharmacy")
    page = html(
        client.get("/search?near=35233&kind=pharmacy&ir_only=1&safe_fillers=1&radius=25&unit=mi")
    )
    panel = page.select_one("details.filters")
    assert not panel.has_attr("open"), "the filters stay open and push the results down"
    summary = panel.select_one("summary").get_text(" ", strip=True)
    assert summary == (
        "Distance and filters: Pharmacies · immediate-release only · fillers fine or take care"
        " · 25 mi — change"
    )
    # The filters are still all there, ticked, one tap away.
    assert page.select_one("input#f-ir_only").has_attr("checked")
    assert page.select_one("input#f-safe_fillers").has_attr("checked")


def test_the_summary_names_a_chosen_form_and_the_distance_in_km(client) -> None:
    page = html(client.get("/search?near=35233&dosage_form=liquid&radius=10&unit=km"))
    summary = page.select_one("details.filters summary").get_text(" ", strip=True)
    assert "Pharmacies and prescribers · " in summary and summary.endswith("10 km — change")
    assert "Liquid" in summary


def test_a_filter_with_a_message_opens_the_panel(client) -> None:
    page = html(client.get("/search?near=35233&radius=9999"))
    assert page.select_one("details.filters").has_attr("open")


def test_the_home_page_panel_is_not_a_summary(client) -> None:
    page = html(client.get("/"))
    assert (
        page.select_one("details.filters summary")
        .get_text(strip=True)
        .startswith("Distance and filters")
    )
    assert page.select_one(".filter-summary") is None


def test_a_skip_link_leads_to_the_results(client) -> None:
    builders.pharmacy()
    page = html(client.get("/search?near=35233"))
    links = [a for a in page.select("a.skip-link")]
    assert [a["href"] for a in links] == ["#main", "#results"]
    target = page.select_one("#results")
    assert target is not None and target["tabindex"] == "-1"
    assert target.select_one(".card-title a") is not None
    # Nothing found: nothing to skip to.
    page = html(client.get("/search?near=35233&kind=prescriber"))
    assert [a["href"] for a in page.select("a.skip-link")] == ["#main"]


def test_the_filler_filter_speaks_the_badges_words(client) -> None:
    builders.pharmacy(name="Fine", fillers=["mcc"])
    builders.pharmacy(name="Careful", fillers=["sucrose"])
    builders.pharmacy(name="Against", fillers=["calcium_carbonate"])
    builders.pharmacy(name="Unknown", fillers=None)
    page = html(client.get("/search?near=35233&safe_fillers=1"))
    label = page.select_one("label[for=f-safe_fillers]").get_text(" ", strip=True)
    badges = {
        card.select_one(".card-title a").get_text(strip=True): card.get_text(" ", strip=True)
        for card in page.select("#results .card")
    }
    assert set(badges) == {"Fine", "Careful"}
    assert "Fillers are fine" in badges["Fine"] and "Fillers: take care" in badges["Careful"]
    # The label names exactly the badges it keeps and the one it drops.
    assert "fine" in label and "take care" in label and "none advised against" in label


# --- the forms ------------------------------------------------------------------------------


def test_a_chosen_filler_wins_over_dont_know_without_javascript(client) -> None:
    # "I don't know" starts ticked; a browser without JavaScript sends both.
    sent_reference(post(client, "pharmacy", pharmacy_form(fillers=["mcc"], fillers_unknown="y")))
    assert only_submission().data["fillers"] == ["mcc"]


def test_dont_know_alone_stays_dont_know(client) -> None:
    sent_reference(post(client, "pharmacy", pharmacy_form(fillers=[], fillers_unknown="y")))
    assert only_submission().data["fillers"] is None


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("oakpharmacy.com", "https://oakpharmacy.com"),
        ("www.oak-pharmacy.co.uk/ldn?x=1", "https://www.oak-pharmacy.co.uk/ldn?x=1"),
        ("Example.org:8080/a", "https://Example.org:8080/a"),
        ("http://example.org", "http://example.org"),
    ],
)
def test_a_website_without_its_scheme_is_completed(client, typed: str, stored: str) -> None:
    sent_reference(post(client, "pharmacy", pharmacy_form(website=typed)))
    assert only_submission().data["website"] == stored


def test_a_completed_website_is_shown_completed_when_the_form_comes_back(client) -> None:
    page = html(post(client, "pharmacy", pharmacy_form(website="oak.example", name="")))
    assert page.select_one("input[name=website]")["value"] == "https://oak.example"


@pytest.mark.parametrize(
    "typed", ["javascript:alert(1)", "oak pharmacy", "localhost", "mailto:a@b.co"]
)
def test_what_is_no_web_address_is_still_refused(client, typed: str) -> None:
    response = post(client, "pharmacy", pharmacy_form(website=typed))
    assert response.status_code == 400
    assert field_error(html(response), "website")


def correction_page(client, listing_id: int):  # type: ignore[no-untyped-def]
    response = client.get(f"/suggest/correction/{listing_id}")
    assert response.status_code == 200
    return html(response)


def test_the_correction_form_asks_whats_wrong_first(client) -> None:
    p = builders.pharmacy(name="Oak Pharmacy")
    page = correction_page(client, p.id)
    form = page.select_one("form.listing-form")
    named = [el["name"] for el in form.select("input[name], textarea[name], select[name]")]
    visible_first = [n for n in named if n not in ("csrf_token", "company_fax")]
    # The question, then its text box, then everything else.
    assert visible_first[0] == "problem"
    first_other = next(n for n in visible_first if n != "problem")
    assert first_other == "note"
    legend = form.select_one("fieldset#problem legend").get_text(" ", strip=True)
    assert legend.startswith("What's wrong?")
    choices = [el["value"] for el in form.select("input[name=problem]")]
    assert choices[:4] == ["closed", "moved", "no_ldn", "wrong_phone"] and "other" in choices
    # The full edit is one step further: folded, every field inside it, pre-filled.
    edit = form.select_one("details.full-edit")
    assert edit is not None and not edit.has_attr("open")
    assert edit.select_one("input[name=name]")["value"] == "Oak Pharmacy"
    assert edit.select_one("input[name=phone]") is not None
    assert edit.select_one("[name=problem]") is None and edit.select_one("[name=note]") is None


def test_a_prescriber_correction_has_no_doesnt_make_ldn(client) -> None:
    d = builders.prescriber()
    choices = [el["value"] for el in correction_page(client, d.id).select("input[name=problem]")]
    assert "no_ldn" not in choices and "wrong_phone" in choices


def test_closed_from_the_first_step_is_resolved_in_one_step(client) -> None:
    p = builders.pharmacy(name="Oak Pharmacy")
    form = browser_form(correction_page(client, p.id))
    form.update(problem="closed", note="The shop is empty, a sign says closed for good.")
    sent_reference(client.post(f"/suggest/correction/{p.id}", data=form))
    sub = only_submission()
    assert sub.type == SubmissionType.CORRECTION and sub.problem == "closed"
    assert sub.note == "The shop is empty, a sign says closed for good."
    assert moderation.review(sub.id).changes == []  # nothing else proposed
    decision = moderation.resolve(sub.id, builders.user(), Resolution.CLOSE)
    db.session.refresh(p)
    assert p.status == Status.CLOSED and decision.resolution == Resolution.CLOSE


def test_a_wrong_phone_report_carries_the_new_number(client) -> None:
    p = builders.pharmacy()
    form = browser_form(correction_page(client, p.id))
    form.update(problem="wrong_phone", phone="205 555 0999")
    sent_reference(client.post(f"/suggest/correction/{p.id}", data=form))
    sub = only_submission()
    assert sub.problem == "wrong_phone" and sub.problem_term is not None
    assert sub.data["phone"] == "+12055550999"


def test_a_correction_sent_back_keeps_what_was_typed_and_opens_the_edit(client) -> None:
    p = builders.pharmacy()
    form = browser_form(correction_page(client, p.id))
    form.update(phone="205 555 0999", note="New number since May.")
    form.pop("problem", None)  # the one mistake: no answer to "What's wrong?"
    response = client.post(f"/suggest/correction/{p.id}", data=form)
    assert response.status_code == 400
    page = html(response)
    assert "what kind of problem" in field_error(page, "problem")
    assert page.select_one("details.full-edit").has_attr("open")
    assert page.select_one("input[name=phone]")["value"] == "(205) 555-0999"
    assert "New number since May." in page.select_one("textarea[name=note]").get_text()


def test_an_untouched_edit_stays_folded_when_the_form_comes_back(client) -> None:
    p = builders.pharmacy(fillers=["mcc", "lactose"], ships_to=["US-GA", "US-AL"])
    form = browser_form(correction_page(client, p.id))
    form.pop("problem", None)
    page = html(client.post(f"/suggest/correction/{p.id}", data=form))
    assert not page.select_one("details.full-edit").has_attr("open")


def test_an_error_in_the_edit_opens_it(client) -> None:
    p = builders.pharmacy()
    form = browser_form(correction_page(client, p.id))
    form.update(problem="wrong_details", postal_code="ABC")
    page = html(client.post(f"/suggest/correction/{p.id}", data=form))
    assert page.select_one("details.full-edit").has_attr("open")
    assert "5-digit ZIP" in field_error(page, "postal_code")


# --- what happens next, and who to write to -------------------------------------------------


def test_the_confirmation_says_what_happens_next_and_invites_no_letters(client) -> None:
    page = html(client.get("/suggest/sent/LDN-ABC123"))
    text = page.get_text(" ", strip=True)
    assert "What happens next" in text
    assert "usually within 7 days" in text
    assert "You won't hear back unless you left your email address" in text
    assert "write to us" not in text.lower() and "Quote it" not in text
    assert page.select_one("a[href^='mailto:']") is None
    about = html(client.get("/about"))
    assert about.select_one("main a[href^='mailto:']") is None


def test_the_contact_email_is_on_the_confirmation_and_the_about_page(database_url) -> None:
    app = make_app(database_url, CONTACT_EMAIL="help@ldn.example.org", REVIEW_DAYS=3)
    client = app.test_client()
    page = html(client.get("/suggest/sent/LDN-ABC123"))
    link = page.select_one(".contact a[href^='mailto:']")
    assert link.get_text() == "help@ldn.example.org"
    assert link["href"] == "mailto:help@ldn.example.org?subject=LDN-ABC123"
    assert "quote your reference" in page.select_one(".contact").get_text()
    assert "usually within 3 days" in page.get_text(" ", strip=True)
    about = html(client.get("/about"))
    assert about.select_one("main a[href='mailto:help@ldn.example.org']") is not None


@pytest.mark.parametrize("bad", ["not an email", "a@b", "x@example.org?cc=y", "a@b.org, c@d.org"])
def test_a_contact_email_that_is_not_one_address_is_refused(
    monkeypatch, tmp_path: Path, bad: str
) -> None:
    monkeypatch.setenv("CONTACT_EMAIL", bad)
    with pytest.raises(ConfigError, match="CONTACT_EMAIL"):
        from_environment(tmp_path, testing=True)


# --- the way back to the search ---------------------------------------------------------------


def test_the_breadcrumb_returns_to_the_search(client) -> None:
    p = builders.pharmacy(name="Oak Pharmacy")
    results = html(client.get("/search?near=35233&kind=pharmacy&ir_only=1&radius=10"))
    href = results.select_one("#results .card-title a")["href"]
    assert href.startswith(f"/pharmacies/{p.id}-")
    response = client.get(href)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=60"  # still cacheable
    page = html(response)
    crumb = page.select_one(".crumbs a")
    back = urlsplit(crumb["href"])
    assert back.path == "/search" and not back.netloc
    assert parse_qs(back.query) == {
        "near": ["35233"],
        "kind": ["pharmacy"],
        "ir_only": ["1"],
        "radius": ["10"],
        "unit": ["mi"],
    }
    assert crumb.get_text() == "Search results"
    # Search engines are told the plain address is the page.
    canonical = page.select_one("link[rel=canonical]")["href"]
    assert canonical.endswith(f"/pharmacies/{p.id}-{p.slug}")


def test_the_breadcrumb_without_a_search_goes_home(client) -> None:
    p = builders.pharmacy()
    page = html(client.get(f"/pharmacies/{p.id}-{p.slug}"))
    assert page.select_one(".crumbs a")["href"] == "/"


@pytest.mark.parametrize(
    "sent",
    [
        "https://evil.example/search?near=1",
        "//evil.example",
        "near=35233&next=https://evil.example",
        "near=" + "9" * 5000,
        "%zz&&==",
        "kind=pharmacy",
    ],
)
def test_the_way_back_never_leaves_the_site(client, sent: str) -> None:
    p = builders.pharmacy()
    response = client.get(f"/pharmacies/{p.id}-{p.slug}", query_string={"from": sent})
    assert response.status_code == 200
    href = html(response).select_one(".crumbs a")["href"]
    assert href == "/" or href.startswith("/search?")
    assert "evil" not in href and "next=" not in href


def test_a_renamed_listing_keeps_the_way_back(client) -> None:
    p = builders.pharmacy(name="Oak Pharmacy")
    response = client.get(f"/pharmacies/{p.id}-old-name?from=near%3D35233")
    assert response.status_code == 301
    assert response.headers["Location"].endswith(f"-{p.slug}?from=near%3D35233")


# --- print, maps, postcodes -------------------------------------------------------------------


def test_print_keeps_the_badges_marks() -> None:
    css = (PACKAGE / "static" / "css" / "print.css").read_text()
    # The rule that hid them named .badge::before among the hidden pseudo-elements.
    for rule in css.split("}"):
        selectors, _, body = rule.partition("{")
        if ".badge::before" in selectors:
            assert "display: none" not in body and "content: none" not in body


def test_a_listing_offers_open_in_maps_and_the_small_map(client) -> None:
    p = builders.pharmacy(lat=33.5062, lon=-86.8003)
    page = html(client.get(f"/pharmacies/{p.id}-{p.slug}"))
    hrefs = [a["href"] for a in page.select("a.map-link")]
    assert hrefs[0] == "geo:33.50620,-86.80030"
    assert hrefs[1].startswith("https://www.openstreetmap.org/?mlat=33.50620&mlon=-86.80030")
    box = page.select_one("#map[data-single]")
    assert box is not None and box["data-lat"] == "33.50620"
    assert any("js/map.js" in s["src"] for s in page.select("script[src]"))


def test_no_tiles_no_small_map_but_the_links_stay(database_url) -> None:
    app = make_app(database_url, MAP_TILE_URL="")
    with app.app_context():
        p = builders.pharmacy()
        url = f"/pharmacies/{p.id}-{p.slug}"
    page = html(app.test_client().get(url))
    assert page.select_one("#map") is None
    assert len(page.select("a.map-link")) == 2


def test_a_telehealth_only_prescriber_has_no_map(client) -> None:
    d = builders.prescriber(telehealth=True, telehealth_only=True, licensed_in=["US-AL"])
    page = html(client.get(f"/prescribers/{d.id}-{d.slug}"))
    assert page.select_one("a.map-link") is None and page.select_one("#map") is None


@pytest.mark.parametrize("postcode", ["EC1A 1BB", "M5V 3L9", "m5v3l9", "SW1A 1AA", "D02 X285"])
def test_a_postcode_from_abroad_asks_for_the_town(client, postcode: str) -> None:
    response = client.get("/search", query_string={"near": postcode})
    assert response.status_code == 400
    message = html(response).select_one("#near-error").get_text(" ", strip=True)
    assert "postcodes outside the US" in message and "town" in message
    assert "Try a ZIP code" not in message
    api = client.get("/api/v1/search", query_string={"near": postcode}).get_json()
    assert "postcodes outside the US" in api["error"]["fields"]["near"]


def test_an_unknown_us_zip_still_says_try_a_zip(client) -> None:
    response = client.get("/search", query_string={"near": "Nowhereville Flats"})
    message = html(response).select_one("#near-error").get_text(" ", strip=True)
    assert "Try a ZIP code" in message
