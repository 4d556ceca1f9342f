"""Reading the NPI registry's public file (NPPES): the `npidata_pfile_*.csv`, or the monthly
zip that holds it, streamed in constant memory, down to the rows that can matter here.

The full file has 8-9 million rows, of which about one in 400 is a compounding pharmacy. Parsing
every row as CSV would cap the import at the csv module's speed, so each raw line gets a cheap
byte test first: it is parsed only when it holds the compounding-pharmacy taxonomy code, or when
its NPI is one the directory already lists (a deactivated NPI's row has no taxonomy left).
directory/moderation/imports.py decides what each row changes.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select

from . import regions, validation
from .extensions import db
from .models import ListingSource

SOURCE = "nppes"  # ListingSource.source for rows of this registry
COMPOUNDING_PHARMACY = "3336C0004X"  # NUCC taxonomy "Pharmacy: Compounding Pharmacy"
ORGANIZATION = "2"  # Entity Type Code: 1 is a person
DBA_NAME = "3"  # Provider Other Organization Name Type Code: "doing business as"

NPI = "NPI"
ENTITY = "Entity Type Code"
LEGAL_NAME = "Provider Organization Name (Legal Business Name)"
OTHER_NAME = "Provider Other Organization Name"
OTHER_NAME_TYPE = "Provider Other Organization Name Type Code"
# The business practice location, never the mailing address: patients go to the pharmacy.
STREET_1 = "Provider First Line Business Practice Location Address"
STREET_2 = "Provider Second Line Business Practice Location Address"
CITY = "Provider Business Practice Location Address City Name"
STATE = "Provider Business Practice Location Address State Name"
POSTAL_CODE = "Provider Business Practice Location Address Postal Code"
COUNTRY = "Provider Business Practice Location Address Country Code (If outside U.S.)"
PHONE = "Provider Business Practice Location Address Telephone Number"
DEACTIVATED = "NPI Deactivation Date"
REACTIVATED = "NPI Reactivation Date"
TAXONOMIES = tuple(f"Healthcare Provider Taxonomy Code_{n}" for n in range(1, 16))

REQUIRED_COLUMNS = (
    NPI,
    ENTITY,
    LEGAL_NAME,
    OTHER_NAME,
    OTHER_NAME_TYPE,
    STREET_1,
    STREET_2,
    CITY,
    STATE,
    POSTAL_CODE,
    COUNTRY,
    PHONE,
    DEACTIVATED,
    REACTIVATED,
    *TAXONOMIES,
)

_TAXONOMY_BYTES = COMPOUNDING_PHARMACY.encode()
_QUOTE = ord('"')
_FILE_DATES = re.compile(r"(\d{8})-(\d{8})")
_READ_BUFFER = 1 << 20
# Words the registry writes in capitals that stay in capitals when a name is tidied.
_KEEP_UPPER = frozenset(
    {"LLC", "LLP", "PLLC", "PC", "PA", "INC", "LTD", "USA", "US", "NW", "NE", "SW", "SE", "N"}
    | {"S", "E", "W", "II", "III", "IV", "RX", "PO", "CVS", "DBA", "LTC", "HME", "DME"}
)


class LayoutError(ValueError):
    """The file is not the NPPES layout (or not readable as one). `str()` says why."""


@dataclass(frozen=True)
class RegistryRow:
    """One registry entry, as the directory would list it."""

    line: int  # the line the row starts on (the header is line 1)
    npi: str
    compounding: bool  # an organization with the compounding-pharmacy taxonomy
    deactivated_on: date | None  # deactivated and not reactivated since
    state: str  # the practice location's state, as written ("WA"); "" when none
    values: dict[str, Any]  # name, street, city, region, postal_code, country, phone


@dataclass(frozen=True)
class Malformed:
    line: int
    reason: str


@dataclass
class Progress:
    bytes_read: int = 0
    total_bytes: int = 0
    rows: int = 0
    found: int = 0  # compounding pharmacies seen


@dataclass
class RegistryFile:
    """An open registry file: its lines as bytes, its name and date, its size unpacked."""

    stream: IO[bytes]
    name: str
    size: int
    file_date: date


def _file_date(name: str, path: Path) -> date:
    # npidata_pfile_20050523-20261109.csv covers up to 9 November 2026: that is its date.
    match = _FILE_DATES.search(name)
    if match:
        try:
            return datetime.strptime(match.group(2), "%Y%m%d").date()
        except ValueError:
            pass
    return date.fromtimestamp(path.stat().st_mtime)


def _main_member(archive: zipfile.ZipFile) -> zipfile.ZipInfo:
    members = [
        m
        for m in archive.infolist()
        if Path(m.filename).name.startswith("npidata_pfile")
        and m.filename.endswith(".csv")
        and not m.filename.endswith("_fileheader.csv")
    ]
    if len(members) != 1:
        raise LayoutError(
            "The zip holds no npidata_pfile_*.csv."
            if not members
            else "The zip holds more than one npidata_pfile_*.csv."
        )
    return members[0]


class _Unbuffered(io.RawIOBase):
    """A zip member as a raw stream, so a large BufferedReader reads it: iterating over the
    zip's own file object reads lines three times slower."""

    def __init__(self, member: IO[bytes]) -> None:
        self._member = member

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._member.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@contextmanager
def open_registry(path: Path) -> Iterator[RegistryFile]:
    """The file, or the npidata_pfile_*.csv inside the zip, read as it is unpacked (never
    written out). LayoutError when it can't be opened as either."""
    if not path.is_file():
        raise LayoutError(f"There is no file at {path}.")
    if zipfile.is_zipfile(path):
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise LayoutError(f"{path.name} is not a readable zip: {exc}") from None
        with archive:
            member = _main_member(archive)
            name = Path(member.filename).name
            with archive.open(member) as raw:
                yield RegistryFile(
                    io.BufferedReader(_Unbuffered(raw), _READ_BUFFER),
                    name,
                    member.file_size,
                    _file_date(name, path),
                )
        return
    with path.open("rb", buffering=_READ_BUFFER) as fh:
        yield RegistryFile(fh, path.name, path.stat().st_size, _file_date(path.name, path))


def _fields(text: str) -> list[str]:
    return next(csv.reader([text]), [])


def read_header(line: bytes) -> dict[str, int]:
    """Column name -> position. LayoutError naming the columns this import needs and lacks."""
    names = _fields(line.decode("utf-8-sig", "replace"))
    positions = {name.strip(): i for i, name in enumerate(names)}
    missing = [c for c in REQUIRED_COLUMNS if c not in positions]
    if missing:
        shown = ", ".join(f'"{c}"' for c in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise LayoutError(
            f"Not the NPPES npidata layout: the header lacks {len(missing)} column(s) "
            f"this import reads: {shown}{more}."
        )
    positions["__count__"] = len(names)
    return positions


def tidy(text: str) -> str:
    """The registry writes most names in capitals: "BEACON HILL PHARMACY LLC" reads better as
    "Beacon Hill Pharmacy LLC". Text with any lower case is left as written."""
    text = " ".join(text.split())
    if not text.isupper():
        return text
    return " ".join(
        word if word in _KEEP_UPPER else word[:1] + word[1:].lower() for word in text.split()
    )


def parse_date(text: str) -> date | None:
    """MM/DD/YYYY, the registry's date format; None when empty or not a date."""
    try:
        return datetime.strptime(text.strip(), "%m/%d/%Y").date() if text.strip() else None
    except ValueError:
        return None


def _postal_code(raw: str, country: str) -> str | None:
    code = raw.strip()
    if country == "US" and len(code) == 9 and code.isdigit():
        return code[:5]  # ZIP+4 is a ZIP
    return code or None


def _phone(raw: str, country: str) -> str | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        return validation.normalise_phone(raw, country)
    except ValueError:
        return raw  # left as written: the form's rules say what is wrong with it


def _row(fields: list[str], col: dict[str, int], line: int) -> RegistryRow:
    def get(name: str) -> str:
        return fields[col[name]].strip()

    deactivated = parse_date(get(DEACTIVATED))
    reactivated = parse_date(get(REACTIVATED))
    if deactivated and reactivated and reactivated >= deactivated:
        deactivated = None
    country = (get(COUNTRY) or "US").upper()
    state = get(STATE).upper()
    if country == "US":
        region = f"US-{state}" if f"US-{state}" in regions.us_states() else None
    else:
        region = tidy(state) or None
    name = get(OTHER_NAME) if get(OTHER_NAME_TYPE) == DBA_NAME and get(OTHER_NAME) else ""
    street = ", ".join(p for p in (tidy(get(STREET_1)), tidy(get(STREET_2))) if p)
    values = {
        "name": tidy(name or get(LEGAL_NAME)),
        "street": street or None,
        "city": tidy(get(CITY)) or None,
        "region": region,
        "postal_code": _postal_code(get(POSTAL_CODE), country),
        "country": country,
        "phone": _phone(get(PHONE), country),
    }
    return RegistryRow(
        line=line,
        npi=get(NPI),
        compounding=get(ENTITY) == ORGANIZATION
        and any(get(t) == COMPOUNDING_PHARMACY for t in TAXONOMIES),
        deactivated_on=deactivated,
        state=state,
        values=values,
    )


def _npi_of(line: bytes) -> bytes:
    return line[1:11] if line[:1] == b'"' else line[:10]


def scan(
    registry: RegistryFile,
    held: Collection[bytes],
    *,
    progress: Progress | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    every: int = 65536,
) -> Iterator[RegistryRow | Malformed]:
    """The rows that can matter: compounding pharmacies, and any row whose NPI is in `held`
    (the NPIs the directory lists from this registry), in file order; a row that can't be read
    is a Malformed with its line number. Reads the header first: LayoutError before any row."""
    stream = registry.stream
    header = stream.readline()
    col = read_header(header)
    width = col.pop("__count__")
    state = progress or Progress()
    state.total_bytes = registry.size
    state.bytes_read = len(header)
    line_no = 1
    rows = 0
    read = state.bytes_read
    for raw in stream:
        line_no += 1
        start = line_no
        line = raw
        # A quoted field may hold a line break: join lines until the quotes balance.
        while line.count(_QUOTE) & 1:
            more = stream.readline()
            if not more:
                break
            line_no += 1
            line += more
        rows += 1
        read += len(line)
        if not rows % every:
            state.rows, state.bytes_read = rows, read
            if on_progress:
                on_progress(state)
        if _TAXONOMY_BYTES not in line and _npi_of(line) not in held:
            continue
        try:
            fields = _fields(line.decode("utf-8", "replace"))
        except csv.Error as exc:
            yield Malformed(start, f"not valid CSV ({exc})")
            continue
        if len(fields) != width:
            yield Malformed(start, f"{len(fields)} fields where the header has {width}")
            continue
        row = _row(fields, col, start)
        if not validation.npi_valid(row.npi):
            yield Malformed(start, f"the NPI {row.npi[:12]!r} is not a valid NPI")
            continue
        if row.compounding:
            state.found += 1
        yield row
    state.rows, state.bytes_read = rows, read
    if on_progress:
        on_progress(state)


def registry_entry(listing_id: int) -> ListingSource | None:
    """The registry row a listing came from, for its page ("In the NPI registry as a
    compounding pharmacy, file of 9 November 2026"), or None."""
    return db.session.scalar(
        select(ListingSource).where(
            ListingSource.listing_id == listing_id, ListingSource.source == SOURCE
        )
    )
