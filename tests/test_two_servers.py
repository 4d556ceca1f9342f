"""Two app servers, one PostgreSQL and one Redis: what one server writes, the other serves.

Each server is its own gunicorn (its own port and processes, nothing shared in memory), as two
machines behind a load balancer would be: a suggestion sent to one and approved on the other is
found by a search on both, the submission limit counts across both (Redis), a moderator's
session works on both, and a page cached from one is known to be stale by the other.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from directory.extensions import db
from directory.models import Role, Submission
from tests import builders
from tests.conftest import PASSWORD, PG_URL
from tests.test_concurrency import REDIS_URL, Gunicorn, _redis_available, submit_once

pytestmark = [
    pytest.mark.skipif(not PG_URL, reason="two servers share PostgreSQL: set TEST_DATABASE_URL"),
    pytest.mark.skipif(not _redis_available(), reason=f"Redis not reachable at {REDIS_URL}"),
]

CLIENT_IP = "198.51.100.23"
SEARCH = "/api/v1/search?near=35233&radius=25"


class Browser:
    """One person's cookies, sent to whichever server answers (as behind a load balancer:
    the cookie belongs to the site, not to a server)."""

    def __init__(self) -> None:
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def get(self, url: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
        try:
            with self.opener.open(urllib.request.Request(url, headers=headers or {})) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def post_form(self, page_url: str, form_selector: str, **fields: str) -> tuple[int, bytes]:
        """Fill in the form on a page as a browser would: its hidden and preset values, then
        `fields`, posted to its action."""
        status, _headers, body = self.get(page_url)
        assert status == 200, (page_url, status)
        form = BeautifulSoup(body, "html.parser").select_one(form_selector)
        assert form is not None, form_selector
        data: list[tuple[str, str]] = []
        for control in form.select("input[name], select[name]"):
            name = control["name"]
            if control.name == "select":
                chosen = control.select_one("option[selected]") or control.select_one("option")
                data.append((name, chosen.get("value", "") if chosen else ""))
            elif control.get("type") in ("checkbox", "radio"):
                if control.has_attr("checked"):
                    data.append((name, control.get("value", "y")))
            else:
                data.append((name, control.get("value", "")))
        data = [(k, v) for k, v in data if k not in fields] + list(fields.items())
        action = urllib.parse.urljoin(page_url, form.get("action") or page_url)
        request = urllib.request.Request(action, data=urllib.parse.urlencode(data).encode())
        try:
            with self.opener.open(request) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


def names_found(base: str) -> list[str]:
    with urllib.request.urlopen(base + SEARCH) as r:
        return [hit["name"] for hit in json.loads(r.read())["results"]]


def test_two_servers_share_data_limits_sessions_and_cache_validity(app, database_url) -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    builders.user("mod", PASSWORD, Role.MODERATOR)
    db.session.commit()
    settings = {
        "RATELIMIT_STORAGE_URI": REDIS_URL,
        "SUBMISSION_RATE_LIMIT": "3 per hour",
        "TRUST_PROXY_HOPS": "1",
    }
    with Gunicorn(database_url, 1, **settings) as a, Gunicorn(database_url, 1, **settings) as b:
        assert a.port != b.port
        assert names_found(a.url) == names_found(b.url) == []
        anonymous = Browser()
        _s, cached, _b = anonymous.get(b.url + SEARCH)
        old_etag = cached["ETag"]

        # A suggestion sent to server A ...
        assert submit_once(a.url, "Two Server Compounding", ip=CLIENT_IP) == 200
        (submission_id,) = db.session.scalars(select(Submission.id)).all()

        # ... reviewed by a moderator who signed in on A and approves on B.
        moderator = Browser()
        status, _ = moderator.post_form(
            a.url + "/login", "form[action$='/login'], main form", username="mod", password=PASSWORD
        )
        assert status == 200  # the redirect after signing in was followed
        for server in (a, b):
            status, _h, body = moderator.get(server.url + "/moderation/")
            assert status == 200 and b"Two Server Compounding" in body, server.url
        status, _ = moderator.post_form(
            f"{b.url}/moderation/submissions/{submission_id}", "#approve-form"
        )
        assert status == 200

        # Searchable on both servers.
        assert names_found(a.url) == names_found(b.url) == ["Two Server Compounding"]
        # The ETag B handed out before the approval is stale on A too: no 304 for it.
        status, headers, _b = anonymous.get(a.url + SEARCH, {"If-None-Match": old_etag})
        assert status == 200 and headers["ETag"] != old_etag
        status, _h, _b = anonymous.get(b.url + SEARCH, {"If-None-Match": headers["ETag"]})
        assert status == 304  # and both servers agree on the new one

        # One limit across both servers: 3 an hour from this address, one used on A already.
        statuses = [
            submit_once(server.url, f"Limited {i}", ip=CLIENT_IP)
            for i, server in enumerate((b, a, b, a))
        ]
        assert statuses == [200, 200, 429, 429]
