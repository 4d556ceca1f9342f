"""What a person typed, made usable: cleaned, folded to matching keys, read as coordinates or
a ZIP code. Pure functions: no data files, no network."""

from __future__ import annotations

import re
import unicodedata

from flask_babel import gettext as _

from ..geomath import COORDINATES_MESSAGE, valid_lat_lon
from ..i18n import N_
from .place import GeocodeInputError

MAX_QUERY_LENGTH = 200

_MSG_EMPTY = N_("Please enter a city, ZIP code or address.")
_MSG_TOO_LONG = N_("Please use at most %(num)d characters for your search.")
_MSG_CONTROL = N_("Your search contains characters that cannot be used. Please retype it.")

ZIP_RE = re.compile(r"\d{5}")
# A ZIP with an optional ZIP+4 suffix, as typed at the start of a query or on its own.
ZIP_PLUS4_RE = re.compile(r"\d{5}(?:-\d{4})?")
PLUS4_RE = re.compile(r"\d{4}")


def clean_query(query: object, *, what: str = "search") -> str:
    """Validate user input and return it stripped; raises GeocodeInputError."""
    if query is None:
        raise GeocodeInputError(_(_MSG_EMPTY))
    if not isinstance(query, str):
        raise TypeError(f"{what} must be a string, not {type(query).__name__}")
    # Checked before any other work so that a 10 MB paste costs nothing.
    if len(query) > MAX_QUERY_LENGTH * 4:
        raise GeocodeInputError(_(_MSG_TOO_LONG, num=MAX_QUERY_LENGTH))
    # Line breaks are what a pasted multi-line address contains: they separate address
    # lines, so they become commas. Tabs are whitespace. Other control characters (NUL,
    # ESC, ...) and lone surrogates never come from a keyboard, so they are rejected.
    text = query.replace("\r\n", ",").replace("\n", ",").replace("\r", ",").replace("\t", " ")
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise GeocodeInputError(_(_MSG_CONTROL))
    text = text.strip().strip(",").strip()
    if not text:
        raise GeocodeInputError(_(_MSG_EMPTY))
    if len(text) > MAX_QUERY_LENGTH:
        raise GeocodeInputError(_(_MSG_TOO_LONG, num=MAX_QUERY_LENGTH))
    return text


_NUMBER = r"[+-]?\d{1,3}(?:\.\d+)?"
_COORDS_RE = re.compile(
    rf"^\(?\s*(?P<lat>{_NUMBER})\s*°?\s*(?P<ns>[NnSs])?\s*[,;\s]\s*"
    rf"(?P<lon>{_NUMBER})\s*°?\s*(?P<ew>[EeWw])?\s*\)?$"
)


def parse_coordinates(text: str) -> tuple[float, float] | None:
    """Read "lat, lon" ("33.5, -86.8", "33.5 -86.8", "33.5N 86.8W").

    Returns None when the text does not look like coordinates at all, and raises
    GeocodeInputError when it does but the numbers are out of range, because a user who
    typed "95, 10" meant coordinates and deserves to be told why nothing was found.
    """
    if not isinstance(text, str) or len(text) > MAX_QUERY_LENGTH:
        return None  # not coordinates; clean_query() reports over-long input
    match = _COORDS_RE.match(text.strip())
    if match is None:
        return None
    lat = float(match["lat"])
    lon = float(match["lon"])
    if match["ns"] and match["ns"] in "Ss":
        lat = -abs(lat)
    if match["ew"] and match["ew"] in "Ww":
        lon = -abs(lon)
    if not valid_lat_lon(lat, lon):
        raise GeocodeInputError(_(COORDINATES_MESSAGE))
    return lat, lon


def parse_coordinates_safe(text: str) -> tuple[float, float] | None:
    """parse_coordinates() that reports out-of-range input as "not coordinates"."""
    try:
        return parse_coordinates(text)
    except GeocodeInputError:
        return None


def check_lat_lon(lat: float, lon: float) -> tuple[float, float]:
    """(lat, lon) as floats inside the valid ranges; raises GeocodeInputError otherwise."""
    try:
        lat_f, lon_f = float(lat), float(lon)
    except (TypeError, ValueError) as exc:
        raise GeocodeInputError(_(COORDINATES_MESSAGE)) from exc
    # valid_lat_lon() refuses NaN and the infinities too.
    if not valid_lat_lon(lat_f, lon_f):
        raise GeocodeInputError(_(COORDINATES_MESSAGE))
    return lat_f, lon_f


def coordinates_label(lat: float, lon: float) -> str:
    return f"{lat:.4f}, {lon:.4f}"


# Letters that NFKD does not decompose into "base letter + accent" but that people
# routinely type without the diacritic ("Malmo", "Lodz", "Hawaii").
_FOLD_TABLE = str.maketrans(
    {
        "ø": "o",
        "đ": "d",
        "ð": "d",
        "ł": "l",
        "ı": "i",
        "æ": "ae",
        "œ": "oe",
        "þ": "th",
        "ʻ": "",  # Hawaiian okina: "Hawaiʻi" is typed "Hawaii"
        "ʼ": "",
        "’": " ",
        "‘": " ",
    }
)
_NON_WORD_RE = re.compile(r"[\W_]+")
# Spelling variants that USPS, geonames and people disagree on; both sides of a comparison
# are folded, so it only matters that each group maps to one spelling.
_TOKEN_CANON = {"saint": "st", "sainte": "ste", "mount": "mt", "ft": "fort"}
_TOKEN_CANON_RE = re.compile(r"\b(?:saint|sainte|mount|ft)\b")


def fold(text: str) -> str:
    """Matching key: case-, accent- and punctuation-insensitive, tokens joined by spaces.

    The gazetteer file stores keys folded by this function: a change to what it returns
    needs a new store.GAZETTEER_VERSION.
    """
    text = text.casefold()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
        text = text.translate(_FOLD_TABLE)
    # Dots are dropped rather than split on, so "D.C." and "U.S.A." fold to "dc", "usa".
    text = _NON_WORD_RE.sub(" ", text.replace(".", "")).strip()
    if "saint" in text or "mount" in text or "ft" in text:
        text = _TOKEN_CANON_RE.sub(lambda m: _TOKEN_CANON[m.group()], text)
    return text


def fold_parts(text: str) -> list[str]:
    """Fold each comma/semicolon separated part; parts that fold to nothing are dropped."""
    parts = [fold(part) for part in re.split(r"[,;]", text)]
    parts = [part for part in parts if part]
    # Our own "near Seattle, WA" labels may be pasted back into the search box.
    if parts and parts[0].startswith("near "):
        parts[0] = parts[0][5:]
    return parts


# Postcodes of the places people abroad most often type one from. The gazetteer has US ZIP
# codes only (towns abroad it knows by name), so such a postcode is never found; saying "try a
# ZIP code" to someone in Leeds is no help. UK, Canada, Ireland (Eircode), the Netherlands.
_FOREIGN_POSTCODES = (
    re.compile(r"(?:[A-Z]{1,2}\d[A-Z\d]?|GIR) ?\d[A-Z]{2}"),
    re.compile(r"[ABCEGHJ-NPRSTVXY]\d[A-Z] ?\d[A-Z]\d"),
    re.compile(r"(?:[AC-FHKNPRTV-Y]\d{2}|D6W) ?[0-9AC-FHKNPRTV-Y]{4}"),
    re.compile(r"[1-9]\d{3} ?[A-Z]{2}"),
)


def looks_like_foreign_postcode(text: str) -> bool:
    """Whether the query, or one of its comma-separated parts, is a postcode from abroad."""
    parts = [" ".join(p.split()).upper() for p in text.split(",")]
    return any(rx.fullmatch(p) for p in parts if p for rx in _FOREIGN_POSTCODES)


def foreign_postcode_message(text: str) -> str | None:
    """What to say when a search for `text` found nothing because it is a postcode from abroad
    (None when it isn't one)."""
    if not looks_like_foreign_postcode(text):
        return None
    return _(
        "We don't know postcodes outside the US yet. Please type your town or city instead, "
        "like “Leeds, UK” or “Toronto, ON”."
    )
