"""Open data: the HSDS 3.0 API (/api/hsds/v3/), the whole dataset as a download (/data/) and
the page that says what may be done with it (/open-data)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from itertools import islice
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request
from flask.globals import app_ctx
from flask.typing import ResponseReturnValue

from .. import hsds
from ..errors import json_error
from ..extensions import limiter
from ..search import INVALID_PARAMETER

bp = Blueprint("hsds", __name__)

DOWNLOADS = {
    "ldn-directory-hsds.json": (hsds.chunks, "application/json"),
    "ldn-directory-hsds.ndjson": (hsds.lines, "application/x-ndjson"),
}


def _page(page_of: Callable[[hsds.Paging], dict[str, Any]]) -> ResponseReturnValue:
    try:
        paging = hsds.Paging.from_args(request.args)
    except hsds.PagingError as exc:
        return json_error(400, INVALID_PARAMETER, exc.message, fields={exc.field: [exc.message]})
    return jsonify(page_of(paging))


@bp.get("/api/hsds/v3/services")
def services() -> ResponseReturnValue:
    return _page(partial(hsds.page_of, shape="service"))


@bp.get("/api/hsds/v3/services/<service_id>")
def service(service_id: str) -> ResponseReturnValue:
    found = hsds.one_service(service_id)
    if found is None:
        return json_error(404, "not_found", f"No service with id {service_id[:40]}.")
    return jsonify(found)


@bp.get("/api/hsds/v3/service_at_locations")
def service_at_locations() -> ResponseReturnValue:
    return _page(partial(hsds.page_of, shape="service_at_location"))


@bp.get("/api/hsds/v3/taxonomies")
def taxonomies() -> ResponseReturnValue:
    return _page(hsds.taxonomies_page)


@bp.get("/api/hsds/v3/taxonomy_terms")
def taxonomy_terms() -> ResponseReturnValue:
    return _page(hsds.terms_page)


def _download_limit() -> str:
    return str(current_app.config["DOWNLOAD_RATE_LIMIT"])


@bp.get("/data/<name>")
@limiter.limit(_download_limit, scope="downloads")
def download(name: str) -> ResponseReturnValue:
    if name not in DOWNLOADS:
        abort(404)
    pieces, mimetype = DOWNLOADS[name]
    response = Response(_in_a_context_of_its_own(pieces), mimetype=mimetype)
    response.headers["Content-Disposition"] = f"attachment; filename={name}"
    return response


def _in_a_context_of_its_own(pieces: Callable[[], Iterator[str]]) -> Iterator[str]:
    """The body, read after the view has returned, 100 pieces at a time, each time under a
    request context for the same request (the database and the listing pages' addresses need
    one). Not stream_with_context, whose contexts stay pushed between pieces: a server, or the
    tests' isolated client, may read the first piece in another contextvars context than the
    rest, and the later pieces then find no context."""
    app, environ = app_ctx.app, request.environ
    stream = pieces()

    def generate() -> Iterator[str]:
        while True:
            with app.request_context(environ):
                block = "".join(islice(stream, 100))
            if not block:
                return
            yield block

    return generate()


@bp.get("/open-data")
def open_data() -> ResponseReturnValue:
    return render_template(
        "public/open_data.html", downloads=list(DOWNLOADS), licence_url=hsds.LICENCE_URL
    )
