"""JSON responses go through orjson with Flask's conventions for the types JSON lacks."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import date, datetime

from flask import jsonify
from flask.json.provider import DefaultJSONProvider
from markupsafe import Markup

from directory.json_provider import OrjsonProvider


@dataclasses.dataclass
class Point:
    lat: float
    lon: float


def test_the_app_uses_orjson_and_agrees_with_flasks_encoder(app) -> None:
    assert isinstance(app.json, OrjsonProvider)
    value = {
        "name": "Zürich \u2028 <script>",
        "when": date(2026, 5, 1),
        "at": datetime(2026, 5, 1, 12, 30),
        "id": uuid.UUID(int=5),
        "point": Point(1.5, -2.25),
        "html": Markup("<b>x</b>"),
        "n": [1, 2.5, None, True],
        7: "int key",
    }
    with app.test_request_context():
        body = jsonify(value).get_data(as_text=True)
    assert body.endswith("\n") and "\n" not in body[:-1]  # compact
    expected = json.loads(DefaultJSONProvider(app).dumps(value, sort_keys=False))
    assert json.loads(body) == expected
    assert expected["when"] == "Fri, 01 May 2026 00:00:00 GMT"  # Flask's date format, kept
    assert list(json.loads(body)) == ["name", "when", "at", "id", "point", "html", "n", "7"]


def test_stdlib_options_still_work(app) -> None:
    assert app.json.dumps({"b": 1, "a": 2}, sort_keys=True) == '{"a": 2, "b": 1}'
    assert app.json.loads('{"a": [1]}') == {"a": [1]}


def test_debug_responses_are_indented(app) -> None:
    app.debug = True
    try:
        with app.test_request_context():
            body = jsonify(a=1).get_data(as_text=True)
    finally:
        app.debug = False
    assert body == '{\n  "a": 1\n}\n'
