"""Single-value rules (directory/validation.py): NPI, phone, postal code, URL."""

from __future__ import annotations

import random

import pytest

from directory import validation


def npi_check_digit(first_nine: str) -> str:
    """The check digit the way DOMAIN.md states it, independently of the code under test:
    Luhn over the nine digits plus the constant 24 (for the 80840 prefix)."""
    total = 24
    for i, ch in enumerate(reversed(first_nine)):
        d = int(ch)
        if i % 2 == 0:  # the rightmost of the nine is doubled (the check digit is not there)
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


# --- NPI ------------------------------------------------------------------------------------


def test_the_documented_npi_examples() -> None:
    assert validation.npi_valid("1234567893")
    assert not validation.npi_valid("1234567898")


def test_npi_check_digit_agrees_with_the_constant_24_method() -> None:
    rng = random.Random(4242)
    for _ in range(300):
        nine = "".join(rng.choice("0123456789") for _ in range(9))
        good = npi_check_digit(nine)
        assert validation.npi_valid(nine + good), nine + good
        for other in "0123456789":
            if other != good:
                assert not validation.npi_valid(nine + other), nine + other


def test_any_single_digit_typo_in_an_npi_is_caught() -> None:
    npi = "1234567893"
    for pos in range(10):
        for digit in "0123456789":
            if digit != npi[pos]:
                typo = npi[:pos] + digit + npi[pos + 1 :]
                assert not validation.npi_valid(typo), typo


@pytest.mark.parametrize(
    "value", ["", "123456789", "12345678930", "123456789a", "１２３４５６７８９３", " 1234567893"]
)
def test_npi_needs_exactly_ten_ascii_digits(value: str) -> None:
    assert not validation.npi_valid(value)


def test_normalise_npi_takes_out_what_people_type_and_names_the_problem() -> None:
    assert validation.normalise_npi("1234-567 893") == "1234567893"
    with pytest.raises(ValueError, match="^An NPI has exactly 10 digits.$"):
        validation.normalise_npi("123456789")
    with pytest.raises(ValueError, match="^This NPI's last digit doesn't match"):
        validation.normalise_npi("1234567898")


def test_luhn_textbook_example() -> None:
    assert validation.luhn_valid("79927398713")
    assert not validation.luhn_valid("79927398710")


# --- phone ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["205 555 0199", "(205) 555-0199", "205.555.0199", "+1 205-555-0199", "2055550199"]
)
def test_us_numbers_are_stored_in_one_form_and_shown_as_people_write_them(raw: str) -> None:
    stored = validation.normalise_phone(raw, "US")
    assert stored == "+12055550199"
    assert validation.format_phone(stored) == "(205) 555-0199"
    assert validation.tel_uri(stored) == "tel:+12055550199"


def test_foreign_numbers_are_stored_in_e164_and_shown_internationally() -> None:
    assert validation.normalise_phone("020 7946 0100", "GB") == "+442079460100"
    # A UK number typed on a US listing keeps its country code.
    assert validation.normalise_phone("+44 20 7946 0100", "US") == "+442079460100"
    assert validation.format_phone("+442079460100") == "+44 20 7946 0100"
    # A Canadian number shares +1 with the US but is shown with its code.
    assert validation.format_phone(validation.normalise_phone("416 555 0100", "CA")) == (
        "+1 416-555-0100"
    )


def test_text_that_is_no_number_is_stored_and_shown_as_written() -> None:
    assert validation.stored_phone("ask for Sam", "US") == "ask for Sam"
    assert validation.stored_phone("  ", "US") is None
    assert validation.format_phone("ask for Sam") == "ask for Sam"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("call us", "doesn't look like a phone number"),
        ("123", "too few or too many digits"),
    ],
)
def test_bad_phone_numbers_say_why(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validation.normalise_phone(raw, "US")


# --- postal codes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "country"),
    [
        ("35233", "US"),
        ("35233-1234", "US"),
        ("SW1A 1AA", "GB"),
        ("sw1a1aa", "GB"),
        ("M1 1AE", "GB"),
        ("K1A 0B1", "CA"),
        ("2000", "AU"),
        ("D02 X285", "IE"),
        ("1012 AB", "NL"),
        ("01310-100", "BR"),  # no pattern for Brazil: letters, digits, spaces and dashes
    ],
)
def test_postal_codes_that_match_their_country(code: str, country: str) -> None:
    assert validation.postal_code_problem(code, country) is None


@pytest.mark.parametrize(
    ("code", "country", "hint"),
    [
        ("ABC", "US", "35233"),
        ("3523", "US", "35233"),
        ("352331", "US", "35233"),
        ("35233", "GB", "SW1A 1AA"),
        ("SW1A 1AA", "US", "35233"),
        ("12345", "CA", "K1A 0B1"),
        ("３５２３３", "US", "35233"),  # full-width digits are not a ZIP code
    ],
)
def test_postal_codes_for_another_country_are_refused(code: str, country: str, hint: str) -> None:
    problem = validation.postal_code_problem(code, country)
    assert problem is not None and hint in problem


@pytest.mark.parametrize("code", ["<script>", "a", "ÄÖÜ-123", "1234567890123"])
def test_postal_codes_without_a_pattern_still_need_plain_characters(code: str) -> None:
    assert validation.postal_code_problem(code, "BR") is not None


# --- URLs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org",
        "http://example.org/ldn?x=1#top",
        "HTTPS://EXAMPLE.ORG/Path",
        "https://sub.example.co.uk/a-b_c",
    ],
)
def test_web_addresses_are_accepted(url: str) -> None:
    assert validation.url_problem(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "ftp://example.org/file",
        "//example.org",
        "example.org",
        "https://localhost",
        "https://",
    ],
)
def test_only_http_and_https_links_to_a_host(url: str) -> None:
    assert validation.url_problem(url) == "Enter a full web address starting with https://"


@pytest.mark.parametrize(
    "url",
    [
        'https://example.org/"onmouseover="alert(1)',
        "https://example.org/<script>",
        "https://exa mple.org",
        "https://example.org/a\tb",
        "https://exam\nple.org",
        "https://example.org/`x`",
    ],
)
def test_links_cannot_carry_quotes_brackets_or_whitespace(url: str) -> None:
    assert validation.url_problem(url) == (
        "A web address can't contain spaces, quotes or angle brackets."
    )
