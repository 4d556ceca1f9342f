"""Public forms: suggest a new listing, suggest a correction or report a problem."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, current_app, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_limiter.util import get_remote_address

from .. import moderation
from ..extensions import limiter
from ..forms import form_class
from ..forms.listing import CORRECTION_FIRST_STEP
from ..geocoding.app import geocoder
from ..i18n import translated
from ..listings import to_data
from ..models import Kind, Listing, public_listing

bp = Blueprint("submit", __name__, url_prefix="/suggest")


def _submission_limit() -> str:
    return current_app.config["SUBMISSION_RATE_LIMIT"]


def _accepted(response: Response) -> bool:
    # An accepted submission redirects to its reference; a form sent back with errors (400),
    # or refused at the pending cap (429), costs nothing.
    return response.status_code == 303


# One budget per address for every public submission, new listings and corrections together
# (a shared limit), and only POSTs that were accepted count: reading the form, or fixing a typo
# it pointed out, must not use up the budget.
limit_posts = limiter.shared_limit(
    _submission_limit, scope="public-submissions", methods=["POST"], deduct_when=_accepted
)


@bp.get("/")
def choose() -> ResponseReturnValue:
    return render_template("submit/choose.html")


@bp.route(f"/<any({', '.join(Kind.values())}):kind>", methods=["GET", "POST"])
@limit_posts
def new_listing(kind: str) -> ResponseReturnValue:
    return _form_page(Kind(kind), None)


@bp.route("/correction/<int:listing_id>", methods=["GET", "POST"])
@limit_posts
def correction(listing_id: int) -> ResponseReturnValue:
    listing: Listing | None = public_listing(listing_id)
    if listing is None:
        abort(404)
    return _form_page(listing.kind, listing)


def _form_page(kind: Kind, listing: Listing | None) -> ResponseReturnValue:
    """The suggestion form (a correction when `listing` is given): show it, or store what was
    sent as pending and show the reference; on an error, show every message and keep it all."""
    form = form_class(kind.value, correction=listing is not None)()
    paused: str | None = None
    if listing is not None and not form.is_submitted():
        form.fill(to_data(listing))
    elif form.validate_on_submit():
        try:
            sub, _created = moderation.submit(
                listing_kind=kind,
                listing=listing,
                data=form.to_data(),
                geocoding=geocoder(),
                problem=form.problem.data if listing is not None else None,
                note=form.note.data or None,
                relation=form.submitter_relation.data or None,
                email=(form.submitter_email.data or "").lower() or None,
                client_address=get_remote_address(),
            )
        except moderation.SubmissionsPaused as exc:
            # The form comes back as typed, with the reason at the top.
            paused = translated(str(exc))
        else:
            return redirect(url_for("submit.sent", reference=sub.reference), code=303)
    page = render_template(
        "submit/listing_form.html",
        form=form,
        kind=kind,
        listing=listing,
        paused=paused,
        edit_open=listing is not None and _edit_open(form, listing),
    )
    return page, (429 if paused else 400 if form.errors else 200)


def _edit_open(form: Any, listing: Listing) -> bool:
    """Whether a correction's full edit starts open: when the person has used it (a value
    differs from the listing's, so what they typed is in view when the page comes back) or one
    of its fields has a message. A first visit shows only "What's wrong?"."""
    if not form.is_submitted():
        return False
    if set(form.errors) - CORRECTION_FIRST_STEP:
        return True
    current = form.__class__(formdata=None, meta={"csrf": False})
    current.fill(to_data(listing))
    return any(
        _comparable(field.data) != _comparable(current[field.name].data)
        for field in form
        if field.name not in CORRECTION_FIRST_STEP
    )


def _comparable(value: Any) -> Any:
    # Ticked boxes come back in the form's order, a listing's lists in their own.
    return sorted(value) if isinstance(value, list) else (value or None)


@bp.get("/sent/<reference>")
def sent(reference: str) -> ResponseReturnValue:
    # The page shows only the reference back: nothing of what was sent, so guessing one
    # reveals nothing.
    if not (reference.startswith("LDN-") and len(reference) == 10 and reference[4:].isalnum()):
        abort(404)
    return render_template("submit/sent.html", reference=reference)
