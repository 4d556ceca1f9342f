from datetime import date, timedelta

from bs4 import BeautifulSoup

from tests import builders
from tests.conftest import html


def test_home_has_a_search_box_that_submits_with_get(client) -> None:
    page = html(client.get("/"))
    form = page.select_one("form[role=search]")
    assert form is not None and form["method"] == "get" and form["action"] == "/search"
    assert page.select_one("input#near[name=near]") is not None
    assert len(page.select("h1")) == 1
    assert "not medical advice" in page.select_one("footer").get_text()


def test_pharmacy_page_shows_every_field_in_plain_words(app, client) -> None:
    p = builders.pharmacy(
        name="Oak & Ivy Compounding",
        sr_policy="sr_on_request",
        fillers=["mcc", "calcium_carbonate"],
        flags=["curated_list"],
        verified_on=date.today() - timedelta(days=40),
        price_notes="About $30 a month",
        mail_order=True,
        ships_to=["US-AL", "US-GA"],
        dosage_forms=["capsule", "liquid"],
    )
    response = client.get(f"/pharmacies/{p.id}-oak-ivy-compounding")
    assert response.status_code == 200
    page = html(response)
    text = " ".join(page.get_text(" ").split())
    assert page.select_one("h1").get_text(strip=True) == "Oak & Ivy Compounding"
    assert "Makes slow-release LDN only when a prescription asks for it" in text
    assert "Calcium carbonate" in text and "Advised against" in text
    assert "Microcrystalline cellulose" in text
    assert "Test curated_list flag" in text and "Source: Test source" in text and "May 2026" in text
    assert "Verified 5 weeks ago" in text  # 40 days
    assert "Call to confirm" not in text
    assert "Alabama, Georgia" in text
    assert "About $30 a month" in text
    assert "not medical advice" in text


def test_stale_listing_says_call_to_confirm(client) -> None:
    p = builders.pharmacy(verified_on=date.today() - timedelta(days=400))
    text = html(client.get(f"/pharmacies/{p.id}-{p.slug}")).get_text(" ")
    assert "Call to confirm" in text


def test_unknown_fillers_never_show_as_fine(client) -> None:
    p = builders.pharmacy(fillers=None, sr_policy="unknown")
    text = " ".join(html(client.get(f"/pharmacies/{p.id}-{p.slug}")).get_text(" ").split())
    assert "Fillers unknown" in text
    assert "Fillers are fine" not in text
    assert "We don't know whether it makes slow-release LDN" in text


def test_prescriber_page_and_telehealth_only(client) -> None:
    doc = builders.prescriber(
        name="Dr. Ana Rivera",
        telehealth=True,
        telehealth_only=True,
        street=None,
        lat=None,
        lon=None,
        licensed_in=["US-AL", "US-TN"],
        conditions=["fibromyalgia", "me_cfs"],
        npi="1234567893",
        dosing_notes="Starts at 1.5 mg.",
    )
    response = client.get(f"/prescribers/{doc.id}-dr-ana-rivera")
    text = " ".join(html(response).get_text(" ").split())
    assert "Telehealth only" in text
    assert "Alabama, Tennessee" in text
    assert "ME/CFS" in text and "1234567893" in text and "Starts at 1.5 mg." in text


def test_urls_are_canonical(client) -> None:
    p = builders.pharmacy(name="Example Compounding")
    wrong = client.get(f"/pharmacies/{p.id}-old-name")
    assert wrong.status_code == 301
    assert wrong.headers["Location"].endswith(f"/pharmacies/{p.id}-example-compounding")
    # A pharmacy id under /prescribers is not found rather than shown as a prescriber.
    assert client.get(f"/prescribers/{p.id}-example-compounding").status_code == 404


def test_unknown_listing_is_a_friendly_404(client) -> None:
    response = client.get("/pharmacies/424242-nope")
    assert response.status_code == 404
    page = html(response)
    assert "couldn't find" in page.select_one("h1").get_text()
    assert page.select_one("a[href='/']") is not None


def test_user_text_is_escaped(client) -> None:
    p = builders.pharmacy(name='<script>alert(1)</script> "Pharm"', price_notes="<b>cheap</b>")
    response = client.get(f"/pharmacies/{p.id}-{p.slug}")
    assert b"<script>alert(1)</script>" not in response.data
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in response.data
    assert b"<b>cheap</b>" not in response.data


def test_json_ld_describes_the_pharmacy(client) -> None:
    import json

    p = builders.pharmacy(name="Ld </script> Json")
    response = client.get(f"/pharmacies/{p.id}-{p.slug}")
    page = html(response)
    data = json.loads(page.select_one("script[type='application/ld+json']").string)
    assert data["@type"] == "Pharmacy" and data["name"] == "Ld </script> Json"
    assert b"Ld </script> Json" not in response.data  # escaped inside the script element


def badges(page: BeautifulSoup, selector: str = ".badge") -> dict[str, list[str]]:
    """Each badge's words -> its classes."""
    return {b.get_text(" ", strip=True): b["class"] for b in page.select(selector)}


def test_values_are_coloured_by_their_tone(client) -> None:
    p = builders.pharmacy(
        name="Toned Compounding",
        status="temporarily_closed",
        sr_policy="sr_default",
        fillers=["mcc", "calcium_carbonate"],
        flags=["curated_list", "problem_report"],
    )
    page = html(client.get(f"/pharmacies/{p.id}-{p.slug}"))
    assert badges(page) == {
        "Temporarily closed": ["badge", "tone-warn"],
        "Makes slow-release LDN unless told otherwise": ["badge", "tone-bad"],
        "Uses a filler that is advised against (Calcium carbonate)": ["badge", "tone-bad"],
    }
    assert badges(page, ".guidance") == {
        "Advised against": ["guidance", "tone-bad"],
        "Fine": ["guidance", "tone-good"],
    }
    flags = {li.strong.get_text(): li["class"] for li in page.select("ul.flags > li")}
    assert flags == {
        "Test curated_list flag": ["flag", "tone-good"],
        "Test problem_report flag": ["flag", "tone-bad"],
    }
    assert "This pharmacy is temporarily closed" in page.select_one(".notice").get_text()
    assert "advise immediate-release LDN" in page.get_text()


def test_unknowns_are_shown_as_unknown_and_closed_as_closed(client) -> None:
    p = builders.pharmacy(
        name="Unknown Compounding", status="closed", sr_policy="unknown", fillers=None
    )
    page = html(client.get(f"/pharmacies/{p.id}-{p.slug}"))
    assert badges(page) == {
        "Closed": ["badge", "tone-bad"],
        "We don't know whether it makes slow-release LDN": ["badge", "tone-unknown"],
        "Fillers unknown": ["badge", "tone-unknown"],
    }
    assert "This pharmacy has closed" in page.select_one(".notice").get_text()
    fine = builders.pharmacy(name="Plain Compounding", sr_policy="ir_only", fillers=[])
    page = html(client.get(f"/pharmacies/{fine.id}-{fine.slug}"))
    assert badges(page) == {
        "Makes immediate-release LDN only": ["badge", "tone-good"],
        "No fillers": ["badge", "tone-good"],
    }
    assert page.select_one(".notice") is None
    assert "advise immediate-release LDN" not in page.get_text()
