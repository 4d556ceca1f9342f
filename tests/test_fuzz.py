"""Seeded random input to every public and moderator form and search: never a 500."""

import random
import string

from tests import builders

PASSWORD = "correct horse battery"
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


def test_random_input_never_gives_a_500(seeded, client) -> None:
    random.seed(1)
    builders.user("boss", PASSWORD, "admin")
    client.post("/login", data={"username": "boss", "password": PASSWORD})
    from directory import moderation
    from directory.geocoding import Geocoding
    from directory.models import Kind

    sub, _ = moderation.submit(
        listing_kind=Kind.PHARMACY,
        data={"name": "X", "country": "US", "city": "Seattle", "region": "US-WA"},
        geocoding=Geocoding(),
    )
    gets = [
        "/search",
        "/api/v1/search",
        "/moderation/audit",
        "/moderation/audit.csv",
        "/login",
        "/",
    ]
    posts = [
        "/suggest/pharmacy",
        "/suggest/prescriber",
        "/suggest/correction/1",
        "/suggest/correction/60",
        f"/moderation/submissions/{sub.id}/approve",
        f"/moderation/submissions/{sub.id}/edit",
        f"/moderation/submissions/{sub.id}/merge",
        f"/moderation/submissions/{sub.id}/reject",
        "/moderation/listings/1/verify",
        "/moderation/listings/1/flags",
        "/moderation/listings/1/status",
        "/moderation/listings/1/pin",
        "/moderation/listings/1/flags/1/remove",
        "/moderation/accounts",
        "/moderation/accounts/1/active",
    ]
    keys = [
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
    bad = []
    for i in range(600):
        data = {k: rnd() for k in random.sample(keys, random.randint(1, 15))}
        if i % 2:
            url = random.choice(gets)
            r = client.get(url, query_string=data)
        else:
            url = random.choice(posts)
            r = client.post(url, data=data)
        if r.status_code >= 500:
            bad.append((url, data, r.status_code))
    assert not bad, bad[:3]
