"""Moderators read plain words: no stored code (ir_only, mcc, US-WA, sr_fillers, an action's
name) on the queue, review, edit, listing and audit pages; and a phone written another way is
no change."""

import re

import pytest

from directory import moderation
from directory.extensions import db
from directory.geocoding import Geocoding
from directory.listings import to_data
from directory.models import Kind, Role
from tests import builders
from tests.conftest import html

# Codes as stored, and action names as written to the log: none may reach a moderator's eyes.
RAW = re.compile(
    r"\b(ir_only|sr_on_request|sr_default|mcc|calcium_carbonate|hypromellose|sr_fillers|"
    r"wrong_details|no_ldn|not_ldn|in_person|approve_new|approve_correction|resolve_close|"
    r"flag_add|US-[A-Z]{2}|postal_code|curated_list)\b"
)


def visible_text(response) -> str:
    doc = html(response)
    for hidden in doc.select("script, style, template"):
        hidden.decompose()
    return doc.get_text(" ", strip=True)


@pytest.fixture
def pages(client, auth):
    auth.sign_in_as("boss", Role.ADMIN)
    p = builders.pharmacy(
        name="Words Pharmacy",
        region="US-WA",
        city="Seattle",
        postal_code="98101",
        sr_policy="ir_only",
        fillers=["mcc"],
        mail_order=True,
        ships_to=["US-OR"],
    )
    changed = {
        "sr_policy": "sr_on_request",
        "fillers": ["mcc", "calcium_carbonate"],
        "ships_to": ["US-ID", "US-OR"],
    }
    applied, _ = moderation.submit(
        listing_kind=Kind.PHARMACY,
        listing=p,
        data={**to_data(p), **changed},
        geocoding=Geocoding(),
        problem="sr_fillers",
    )
    moderation.approve(applied.id, builders.user(username="early"), verify_method="in_person")
    waiting, _ = moderation.submit(
        listing_kind=Kind.PHARMACY,
        listing=p,
        data={**to_data(p), "sr_policy": "sr_default", "fillers": ["hypromellose"]},
        geocoding=Geocoding(),
        problem="sr_fillers",
    )
    new, _ = moderation.submit(
        listing_kind=Kind.PHARMACY,
        data={**to_data(builders.pharmacy(region="US-WA")), "name": "Brand New"},
        geocoding=Geocoding(),
    )
    return {
        "queue": "/moderation/",
        "correction review": f"/moderation/submissions/{waiting.id}",
        "decided review": f"/moderation/submissions/{applied.id}",
        "new review": f"/moderation/submissions/{new.id}",
        "edit": f"/moderation/submissions/{waiting.id}/edit",
        "listing": f"/moderation/listings/{p.id}",
        "audit": "/moderation/audit",
    }


def test_moderation_pages_show_no_stored_codes(client, pages) -> None:
    for name, url in pages.items():
        response = client.get(url)
        assert response.status_code == 200, name
        text = visible_text(response)
        assert not RAW.findall(text), (name, sorted(set(RAW.findall(text))))


def test_the_diff_and_the_history_use_the_vocabularys_words(client, pages) -> None:
    review = visible_text(client.get(pages["correction review"]))
    assert "Makes slow-release LDN unless told otherwise" in review
    assert "Hypromellose (HPMC)" in review
    listing = visible_text(client.get(pages["listing"]))
    # The applied correction's history: field labels, values in words, the state by name.
    assert "Slow-release policy" in listing
    assert "Makes immediate-release LDN only → Makes slow-release LDN only when" in listing
    assert "Idaho, Oregon" in listing
    assert "applied a correction" in listing
    audit = html(client.get(pages["audit"]))
    references = [a.get_text(strip=True) for a in audit.select("td a[href*='/submissions/']")]
    assert references and all(r.startswith("LDN-") for r in references)


def test_a_reformatted_identical_phone_is_no_change(client, pages) -> None:
    p = builders.pharmacy(phone="+1 205-555-0142")
    db.session.refresh(p)
    assert p.phone == "+12055550142"  # stored in one form however it came in
    sub, _ = moderation.submit(
        listing_kind=Kind.PHARMACY,
        listing=p,
        data={**to_data(p), "phone": "(205) 555-0142", "name": "Renamed"},
        geocoding=Geocoding(),
        problem="wrong_details",
    )
    review = html(client.get(f"/moderation/submissions/{sub.id}"))
    rows = [th.get_text(strip=True) for th in review.select("table.diff tbody th")]
    assert rows == ["Name"]
    assert [t["value"] for t in review.select("#approve-form input[name=fields]")] == ["name"]
