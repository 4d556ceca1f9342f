"""Builders for listings in tests: sensible defaults, override what the test is about."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

from directory import moderation
from directory.extensions import db
from directory.listings import apply_data
from directory.models import FlagType, Kind, Listing, ReliabilityFlag, Role, User

_counter = itertools.count(1)


def pharmacy(**overrides: Any) -> Listing:
    n = next(_counter)
    data: dict[str, Any] = {
        "name": f"Test Compounding {n}",
        "street": f"{n} Main St",
        "city": "Birmingham",
        "region": "US-AL",
        "postal_code": "35233",
        "country": "US",
        "lat": 33.5062,
        "lon": -86.8003,
        "geo_precision": "address",
        "phone": f"(205) 555-{n % 10000:04d}",
        "website": "https://example.org/",
        "email": None,
        "status": "open",
        "makes_ldn": True,
        "dosage_forms": ["capsule"],
        "sr_policy": "ir_only",
        "fillers": ["mcc"],
        "price_notes": None,
        "mail_order": False,
        "ships_to": [],
    }
    return _build(Kind.PHARMACY, data, overrides)


def prescriber(**overrides: Any) -> Listing:
    n = next(_counter)
    data: dict[str, Any] = {
        "name": f"Dr. Test Prescriber {n}",
        "street": f"{n} Clinic Rd",
        "city": "Birmingham",
        "region": "US-AL",
        "postal_code": "35233",
        "country": "US",
        "lat": 33.5062,
        "lon": -86.8003,
        "geo_precision": "address",
        "phone": None,
        "website": None,
        "email": None,
        "status": "open",
        "credentials": "MD",
        "specialty": "Rheumatology",
        "practice": None,
        "telehealth": False,
        "telehealth_only": False,
        "licensed_in": ["US-AL"],
        "npi": None,
        "accepting_new_patients": True,
        "conditions": ["fibromyalgia"],
        "dosing_notes": None,
    }
    return _build(Kind.PRESCRIBER, data, overrides)


def _build(kind: Kind, data: dict[str, Any], overrides: dict[str, Any]) -> Listing:
    flags = overrides.pop("flags", [])
    verified_on = overrides.pop("verified_on", None)
    data.update(overrides)
    listing = Listing(kind=kind)
    apply_data(listing, data)
    db.session.add(listing)
    for flag_type in flags:
        listing.flags.append(
            ReliabilityFlag(
                type=FlagType(flag_type),
                label=f"Test {flag_type} flag",
                source="Test source",
                as_of=date(2026, 5, 1),
            )
        )
    if verified_on:
        moderation.add_verification(listing, verified_on, "phone")
    db.session.commit()
    return listing


def user(
    username: str = "mod", password: str = "correct horse battery", role: str = "moderator"
) -> User:
    account = User(username=username, password_hash="", role=Role(role))
    account.set_password(password)
    db.session.add(account)
    db.session.commit()
    return account
