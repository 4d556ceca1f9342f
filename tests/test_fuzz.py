"""Seeded random input to every route the app has, with every method it accepts: never a 500.
The routes come from app.url_map, so a new one is fuzzed without anyone adding it here."""

import random
import re
import string
from urllib.parse import quote

from flask import Flask

from directory import hsds
from directory.models import Kind, Role

WEIRD = [
    "",
    " ",
    "0",
    "-1",
    "1e309",
    "nan",
    "inf",
    "9" * 400,
    "<script>x</script>",
    "'\"><img>",
    "😀",
    "Zürich",
    "\x00",
    "%00",
    "a" * 10000,
    "../../etc",
    "[]",
    "{}",
    "null",
    "true",
    "2026-13-45",
    "1,2",
    "javascript:alert(1)",
    "US-XX",
    "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
]


def rnd():
    return random.choice(
        WEIRD + ["".join(random.choice(string.printable) for _ in range(random.randint(0, 30)))]
    )


KEYS = [
    "near",
    "lat",
    "lon",
    "radius",
    "unit",
    "kind",
    "page",
    "reliable",
    "ir_only",
    "dosage_form",
    "condition",
    "action",
    "actor",
    "listing",
    "since",
    "next",
    "name",
    "street",
    "city",
    "state",
    "postal_code",
    "country",
    "phone",
    "website",
    "email",
    "fillers",
    "fillers_unknown",
    "ships_to",
    "ships_to_countries",
    "sr_policy",
    "makes_ldn",
    "mail_order",
    "npi",
    "telehealth",
    "licensed_in",
    "conditions",
    "problem",
    "note",
    "submitter_email",
    "verify-method",
    "verify-verified_on",
    "flag-type",
    "flag-label",
    "flag-source",
    "flag-as_of",
    "flag-url",
    "status-status",
    "status-reason",
    "pin-lat",
    "pin-lon",
    "reason",
    "listing_id",
    "fields",
    "verify_method",
    "username",
    "password",
    "role",
    "edit-name",
    "edit-country",
    "remove-reason",
]


def sample_values(sub_id: int, reference: str) -> dict[str, list[str]]:
    """Values for each URL argument: rows that exist, rows that don't, and nonsense. A route with
    an argument not named here fails the test until someone says what to try in it."""
    ids = ["1", "2", str(sub_id), "0", "99999", str(2**63), "1" * 25]
    return {
        "listing_id": ids,
        "submission_id": ids,
        "user_id": ids,
        "flag_id": ids,
        "slug": ["a-slug", "x", "😀", "..", "a" * 300],
        "kind": [*Kind.values(), "nope"],
        "reference": [reference, "LDN-ZZZZZZ", "x"],
        "filename": ["css/site.css", "js/locate.js", "../../etc/passwd", "nope.css"],
        "service_id": [hsds.listing_uuid(1, "service"), hsds.listing_uuid(1, "phone"), "x"],
        "name": ["ldn-directory-hsds.json", "ldn-directory-hsds.ndjson", "nope.json", ".."],
    }


def routes(app: Flask) -> list[tuple[str, str]]:
    """(rule, method) for every route and method, HEAD and OPTIONS aside (Flask answers those)."""
    return sorted(
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    )


def fill(rule: str, samples: dict[str, list[str]]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        # A path argument keeps its slashes; any other is one percent-encoded segment.
        return quote(random.choice(samples[name]), safe="/" if name == "filename" else "")

    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", value, rule)


def test_the_sweep_covers_every_blueprint(app) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    blueprints = {e.split(".")[0] for e in endpoints}
    assert blueprints == {"public", "api", "auth", "moderation", "submit", "static", "hsds"}
    assert len(routes(app)) >= 35


def test_random_input_never_gives_a_500(seeded, client, auth) -> None:
    random.seed(1)
    auth.sign_in_as("boss", Role.ADMIN)
    from directory import moderation
    from directory.geocoding import Geocoding

    sub, _ = moderation.submit(
        listing_kind=Kind.PHARMACY,
        data={"name": "X", "country": "US", "city": "Seattle", "region": "US-WA"},
        geocoding=Geocoding(),
    )
    samples = sample_values(sub.id, sub.reference)
    pairs = routes(seeded)
    bad = []
    for i in range(14 * len(pairs)):
        rule, method = pairs[i % len(pairs)]  # round robin: every route, every method, 14 times
        url = fill(rule, samples)
        data = {k: rnd() for k in random.sample(KEYS, random.randint(1, 15))}
        if method == "GET":
            r = client.get(url, query_string=data)
        else:
            r = client.open(url, method=method, data=data)
        if r.status_code >= 500:
            bad.append((method, url, data, r.status_code))
        if rule == "/logout" and r.status_code == 303:  # signed out: the sweep signs back in
            assert auth.login("boss").status_code == 303
    assert not bad, bad[:3]
    assert client.get("/moderation/audit").status_code == 200, "still signed in as an admin"
