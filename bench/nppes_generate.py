"""Synthetic files in the NPI registry's layout (all 330 columns, every field quoted), for the
import's tests and benchmark. Never real registry rows: those would put real people's entries
into a repository.

`registry_row(npi, ...)` builds one row with the fields a test cares about; `write_csv` and
`write_zip` write rows under the real header (bench/nppes_header.csv, the 330 names as CMS
publishes them); `generate(path, rows)` writes a large realistic file: about 1.1 KB a row,
three in four rows a person, one in 400 a compounding pharmacy (as in the real file), one in 60
a deactivated NPI with nothing but its NPI and date.

Run alone: `python -m bench.nppes_generate --rows 500000` (bench/data/npidata_pfile_*.csv).
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from directory import nppes
from directory.validation import NPI_PREFIX, luhn_valid

HEADER_FILE = Path(__file__).resolve().parent / "nppes_header.csv"
HEADER: list[str] = next(csv.reader(HEADER_FILE.open(encoding="utf-8")))
COLUMN = {name: i for i, name in enumerate(HEADER)}
DATA_DIR = Path(__file__).resolve().parent / "data"
FILE_NAME = "npidata_pfile_20050523-20261109.csv"
SEED = 20261109
PHARMACY_TAXONOMIES = ("333600000X", "3336C0003X", "3336H0001X", "3336M0002X", "3336S0011X")
PERSON_TAXONOMIES = ("207Q00000X", "208D00000X", "363LF0000X", "207R00000X", "1223G0001X")


def npi(n: int) -> str:
    """The n-th valid NPI of the synthetic range: nine digits and their check digit."""
    body = f"{100_000_000 + n:09d}"
    return next(body + d for d in "0123456789" if luhn_valid(NPI_PREFIX + body + d))


def registry_row(
    number: str,
    *,
    entity: str = "2",
    name: str = "",
    street: str = "",
    street2: str = "",
    city: str = "",
    state: str = "",
    postal_code: str = "",
    country: str = "US",
    phone: str = "",
    taxonomies: Sequence[str] = (),
    deactivated: str = "",
    reactivated: str = "",
    dba: str = "",
    mailing: tuple[str, str, str, str] = ("", "", "", ""),
    extra: dict[str, str] | None = None,
) -> list[str]:
    """One row of the main file, every column present, the named ones filled."""
    row = [""] * len(HEADER)

    def put(column: str, value: str) -> None:
        row[COLUMN[column]] = value

    put(nppes.NPI, number)
    if deactivated and not reactivated:
        put(nppes.DEACTIVATED, deactivated)
        return row  # the registry empties a deactivated NPI's row
    put(nppes.ENTITY, entity)
    put(nppes.DEACTIVATED, deactivated)
    put(nppes.REACTIVATED, reactivated)
    if entity == "2":
        put(nppes.LEGAL_NAME, name)
        if dba:
            put(nppes.OTHER_NAME, dba)
            put(nppes.OTHER_NAME_TYPE, nppes.DBA_NAME)
    else:
        last, _, first = name.partition(",")
        put("Provider Last Name (Legal Name)", last.strip())
        put("Provider First Name", first.strip())
    put(nppes.STREET_1, street)
    put(nppes.STREET_2, street2)
    put(nppes.CITY, city)
    put(nppes.STATE, state)
    put(nppes.POSTAL_CODE, postal_code)
    put(nppes.COUNTRY, country)
    put(nppes.PHONE, phone)
    # The mailing address differs on purpose: the import must use the practice location.
    m_street, m_city, m_state, m_zip = mailing
    put("Provider First Line Business Mailing Address", m_street)
    put("Provider Business Mailing Address City Name", m_city)
    put("Provider Business Mailing Address State Name", m_state)
    put("Provider Business Mailing Address Postal Code", m_zip)
    put("Provider Business Mailing Address Country Code (If outside U.S.)", country)
    put("Provider Business Mailing Address Telephone Number", phone[:-1] + "9" if phone else "")
    for n, code in enumerate(taxonomies, start=1):
        put(f"Healthcare Provider Taxonomy Code_{n}", code)
        put(f"Healthcare Provider Primary Taxonomy Switch_{n}", "Y" if n == 1 else "N")
        put(f"Provider License Number_{n}", f"PH{number[-6:]}{n}")
        put(f"Provider License Number State Code_{n}", state)
    for column, value in (extra or {}).items():
        put(column, value)
    return row


def _write(fh: io.TextIOBase, rows: Iterable[Sequence[str]], header: Sequence[str]) -> int:
    writer = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count


def write_csv(path: Path, rows: Iterable[Sequence[str]], header: Sequence[str] = HEADER) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        _write(fh, rows, header)
    return path


def write_zip(path: Path, rows: Iterable[Sequence[str]], member: str = FILE_NAME) -> Path:
    """The monthly zip's shape: the main file beside its header-only file."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member.replace(".csv", "_fileheader.csv"), ",".join(HEADER) + "\n")
        with (
            archive.open(member, "w", force_zip64=True) as raw,
            io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh,
        ):
            _write(fh, rows, HEADER)
    return path


# --- a large realistic file -------------------------------------------------------------------


def _places(rng: random.Random) -> list[tuple[str, str, str, str]]:
    """(ZIP, city, state, area code) of real US ZIP codes, so pins land (offline gazetteer)."""
    import zipcodes

    found = [
        (z["zip_code"], z["city"].upper(), z["state"], (z.get("area_codes") or ["206"])[0])
        for z in zipcodes.list_all()
        if z["zip_code_type"] == "STANDARD" and z["active"] and z["country"] == "US"
    ]
    rng.shuffle(found)
    return found[:5000]


_WORDS = ("CEDAR", "PINE", "MAPLE", "RIVER", "SUMMIT", "HARBOR", "VALLEY", "LAKE", "OAK", "PARK")
_STREETS = ("MAIN ST", "1ST AVE", "OAK ST", "BROADWAY", "PINE ST", "MARKET ST", "ELM ST")
_FIRST = ("JOHN", "MARY", "ANA", "DAVID", "LINDA", "WEI", "FATIMA", "JOSE", "KAREN", "SAM")
_LAST = ("SMITH", "GARCIA", "NGUYEN", "JOHNSON", "PATEL", "KIM", "BROWN", "LOPEZ", "LEE")


def synthetic_rows(count: int, seed: int = SEED) -> Iterable[list[str]]:
    rng = random.Random(seed)
    places = _places(rng)
    for n in range(count):
        number = npi(n)
        r = rng.random()
        zip5, city, state, area = places[rng.randrange(len(places))]
        where: dict[str, Any] = {
            "street": f"{rng.randrange(1, 9999)} {rng.choice(_STREETS)}",
            "city": city,
            "state": state,
            "postal_code": zip5 + (f"{rng.randrange(10000):04d}" if rng.random() < 0.7 else ""),
            "phone": f"{area}{rng.randrange(200, 999)}{rng.randrange(10000):04d}",
            "mailing": (f"PO BOX {rng.randrange(1, 9999)}", city, state, zip5),
        }
        phone = where["phone"]
        extra = {
            "Provider Enumeration Date": f"0{rng.randrange(1, 9)}/1{rng.randrange(9)}/2010",
            "Last Update Date": f"1{rng.randrange(3)}/0{rng.randrange(1, 9)}/2025",
            "Authorized Official Last Name": rng.choice(_LAST),
            "Authorized Official First Name": rng.choice(_FIRST),
            "Authorized Official Title or Position": "PHARMACIST IN CHARGE",
            "Authorized Official Telephone Number": phone,
            "Provider Business Practice Location Address Fax Number": phone[:-1] + "1",
            "Other Provider Identifier_1": f"{rng.randrange(10**8):08d}",
            "Other Provider Identifier Type Code_1": "05",
            "Other Provider Identifier State_1": state,
            "Other Provider Identifier Issuer_1": "MEDICAID",
            "Is Sole Proprietor": "N",
            "Is Organization Subpart": "N",
            "Certification Date": "03/05/2024",
        }
        if r < 1 / 60:
            yield registry_row(number, deactivated="05/14/2025")
        elif r < 1 / 60 + 1 / 400:
            taxes = [rng.choice(PHARMACY_TAXONOMIES), nppes.COMPOUNDING_PHARMACY]
            rng.shuffle(taxes)
            name = f"{rng.choice(_WORDS)} {rng.choice(_WORDS)} COMPOUNDING PHARMACY LLC"
            yield registry_row(number, name=name, taxonomies=taxes, extra=extra, **where)
        elif r < 0.25:
            name = f"{rng.choice(_WORDS)} {rng.choice(('HEALTH', 'PHARMACY', 'CLINIC'))} INC"
            taxes = [rng.choice(PHARMACY_TAXONOMIES + PERSON_TAXONOMIES)]
            yield registry_row(number, name=name, taxonomies=taxes, extra=extra, **where)
        else:
            yield registry_row(
                number,
                entity="1",
                name=f"{rng.choice(_LAST)}, {rng.choice(_FIRST)}",
                taxonomies=rng.sample(PERSON_TAXONOMIES, rng.randrange(1, 4)),
                extra={**extra, "Provider Credential Text": "M.D.", "Provider Sex Code": "F"},
                **where,
            )


def ensure_file(rows: int, *, zipped: bool = False) -> Path:
    """bench/data/<rows>/npidata_pfile_*.csv (or .zip), made once per size."""
    folder = DATA_DIR / f"nppes-{rows}"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (FILE_NAME.replace(".csv", ".zip") if zipped else FILE_NAME)
    if not target.exists():
        partial = target.with_suffix(".partial")
        if zipped:
            write_zip(partial, synthetic_rows(rows))
        else:
            write_csv(partial, synthetic_rows(rows))
        partial.rename(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--zip", action="store_true", help="the monthly zip's shape")
    args = parser.parse_args()
    print(ensure_file(args.rows, zipped=args.zip))


if __name__ == "__main__":
    main()
