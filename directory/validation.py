"""Rules for single values (NPI, phone, postal code, URL), shared by forms, seeds and the CLI."""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urlsplit

import phonenumbers
from flask_babel import gettext as _

from .i18n import N_

NPI_PREFIX = "80840"


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def npi_valid(npi: str) -> bool:
    """10 digits whose last is a Luhn check digit over 80840 + the first nine. A valid check digit
    does not prove the number was issued; only the NPPES registry knows that."""
    return len(npi) == 10 and npi.isascii() and npi.isdigit() and luhn_valid(NPI_PREFIX + npi)


def normalise_npi(raw: str) -> str:
    """The NPI with the spaces and dashes people type taken out, or ValueError with a plain
    message: the one NPI rule for forms, seeds and registry imports."""
    digits = raw.replace(" ", "").replace("-", "")
    if not (len(digits) == 10 and digits.isascii() and digits.isdigit()):
        raise ValueError(_("An NPI has exactly 10 digits."))
    if not npi_valid(digits):
        raise ValueError(_("This NPI's last digit doesn't match: please check it for a typo."))
    return digits


def _parse_phone(raw: str, country: str) -> phonenumbers.PhoneNumber:
    try:
        number = phonenumbers.parse(raw, country or "US")
    except phonenumbers.NumberParseException:
        raise ValueError(_("This doesn't look like a phone number.")) from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError(_("This phone number has too few or too many digits."))
    return number


def normalise_phone(raw: str, country: str = "US") -> str:
    """The number in E.164 (+12055550100), the one form phones are stored and compared in, or
    ValueError with a plain message. `country` is where a number without +code is dialled."""
    number = _parse_phone(raw, country)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    # E.164 has no room for an extension: RFC 3966's ";ext=" keeps it (and tel: links take it).
    return f"{e164};ext={number.extension}" if number.extension else e164


def stored_phone(raw: str | None, country: str | None = "US") -> str | None:
    """What a listing stores for a phone: E.164 when it is a number, else the text as given
    (the form's rules have said what is wrong with it; nothing is silently dropped)."""
    if not raw or not raw.strip():
        return None
    try:
        return normalise_phone(raw, country or "US")
    except ValueError:
        return raw.strip()


@lru_cache(maxsize=8192)
def format_phone(stored: str | None) -> str:
    """A stored number as people write it: (205) 555-0142 in the US, +44 20 7946 0100
    elsewhere. Text that is no number is shown as it is.

    Cached: a results page shows 40 phones, and parsing each one again was a seventh of the
    page's time. The answer depends on the text alone (and on the library's data, which a
    process does not change)."""
    if not stored:
        return ""
    if not stored.startswith("+"):
        return stored  # not a number we stored in E.164: shown as written
    try:
        number = phonenumbers.parse(stored, None)
    except phonenumbers.NumberParseException:
        return stored
    fmt = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if number.country_code == 1 and phonenumbers.region_code_for_number(number) in ("US", None)
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(number, fmt)


def tel_uri(stored: str | None) -> str:
    """The tel: link for a stored number: its E.164 form as stored, which every phone dials
    from anywhere (anything else but digits and + is left out)."""
    if not stored:
        return ""
    if stored.startswith("+"):
        return "tel:" + stored  # E.164, perhaps with ";ext=": a tel: URI as it stands
    return "tel:" + "".join(ch for ch in stored if ch.isdigit() or ch == "+")


POSTAL_PATTERNS = {
    "US": (r"\d{5}(-\d{4})?", N_("a 5-digit ZIP code, like 35233")),
    "CA": (r"[A-Za-z]\d[A-Za-z] ?\d[A-Za-z]\d", N_("like K1A 0B1")),
    "GB": (r"[A-Za-z]{1,2}\d[A-Za-z\d]? ?\d[A-Za-z]{2}", N_("like SW1A 1AA")),
    "AU": (r"\d{4}", N_("4 digits, like 2000")),
    "NZ": (r"\d{4}", N_("4 digits, like 1010")),
    "IE": (r"[A-Za-z]\d[\dWw]( ?[A-Za-z\d]{4})?", N_("an Eircode, like D02 X285")),
    "DE": (r"\d{5}", N_("5 digits")),
    "FR": (r"\d{5}", N_("5 digits")),
    "NL": (r"\d{4} ?[A-Za-z]{2}", N_("like 1012 AB")),
}


def postal_code_problem(code: str, country: str) -> str | None:
    pattern = POSTAL_PATTERNS.get(country)
    if pattern is None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 \-]{1,11}", code):
            return _("Use letters, digits, spaces or dashes only.")
        return None
    regex, example = pattern
    if not re.fullmatch(regex, code.strip(), flags=re.ASCII):  # \d: ASCII digits only
        return _(
            "That doesn't look like a postal code for this country: expected %(example)s.",
            example=_(example),
        )
    return None


def url_problem(url: str) -> str | None:
    parts = urlsplit(url.strip())
    # Only web links: javascript:, data: and friends must never end up in an href.
    if parts.scheme not in ("http", "https") or not parts.netloc or "." not in parts.netloc:
        return _("Enter a full web address starting with https://")
    # urlsplit silently drops tabs and line breaks, so check the text itself for any of them.
    if any(ch in " <>\"'`" or ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return _("A web address can't contain spaces, quotes or angle brackets.")
    return None


MAX_ID = 2**63 - 1  # the largest id a database integer column holds


def parse_id(text: str | None) -> int | None:
    """A row id typed or posted by a user, or None: never an int the database can't bind."""
    text = (text or "").strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None
