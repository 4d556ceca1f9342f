"""The volunteers' call list (/moderation/calls/): the list, claiming an item, the one-screen
confirm form, and after each save the next item on the list with the same filters.

Moderators only: the moderation blueprint's own server-side check runs for these routes.
Each view reads a form, calls one function of directory/moderation/calls.py and renders."""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select

from .. import moderation
from ..extensions import db
from ..forms import ActionForm
from ..forms.calls import CallFilterForm, CallForm, call_form
from ..listings import to_data
from ..models import CallOutcome, Listing, User
from ..moderation import calls
from . import moderation as moderation_views

bp = Blueprint("calls", __name__, url_prefix="/calls")
# Nested in the moderation blueprint (/moderation/calls/, endpoints moderation.calls.*): its
# sign-in check, 404 handling and the sweeps over "moderation." routes cover these too.
moderation_views.bp.register_blueprint(bp)


@bp.context_processor
def _vocabulary() -> dict[str, Any]:
    return {"nearby_miles": calls.NEARBY_MILES, "claim_minutes": calls.CLAIM_MINUTES}


def _user() -> User:
    return cast(User, current_user._get_current_object())


def _filters() -> CallFilterForm:
    """The list's filters from the query string; bad ones are dropped (each page says so
    next to the field on the list itself)."""
    form = CallFilterForm(request.args)
    if not form.validate():
        return CallFilterForm(formdata=None)
    return form


@bp.get("/")
def index() -> ResponseReturnValue:
    form = CallFilterForm(request.args)
    valid = form.validate()
    page = calls.call_list(form.filters() if valid else calls.CallFilters())
    return render_template(
        "moderation/calls/list.html", form=form, page=page, args=form.args() if valid else {}
    ), (200 if valid else 400)


@bp.get("/progress")
def progress() -> ResponseReturnValue:
    return render_template("moderation/calls/progress.html", progress=calls.progress())


@bp.post("/<int:listing_id>/claim")
def claim(listing_id: int) -> ResponseReturnValue:
    filters = _filters()
    if not ActionForm().validate_on_submit():
        flash("The form had expired; please try again.", "error")
        return redirect(url_for(".index", **filters.args()), code=303)
    try:
        calls.claim(listing_id, _user())
    except moderation.ModerationError as exc:
        flash(str(exc), "error")
        return redirect(url_for(".index", **filters.args()), code=303)
    return redirect(url_for(".screen", listing_id=listing_id, **filters.args()), code=303)


def _screen(
    listing: Listing, form: CallForm, filters: CallFilterForm, status: int = 200
) -> ResponseReturnValue:
    held = calls.holder(listing.id)
    return render_template(
        "moderation/calls/confirm.html",
        listing=listing,
        form=form,
        held=held,
        mine=held is not None and held.username == _user().username,
        args=filters.args(),
        action_form=ActionForm(),
        attempts=calls.attempts(listing.id),
    ), status


@bp.get("/<int:listing_id>")
def screen(listing_id: int) -> ResponseReturnValue:
    listing = moderation.get_listing(listing_id)
    form = call_form(listing.kind, formdata=None)
    form.fill(to_data(listing))
    return _screen(listing, form, _filters())


@bp.post("/<int:listing_id>")
def save(listing_id: int) -> ResponseReturnValue:
    # Only the kind and the name here: record_call reads the listing again under the write
    # lock, and the whole listing (its relationships too) is loaded only to show the form back.
    row = db.session.execute(
        select(Listing.kind, Listing.name).where(Listing.id == listing_id)
    ).first()
    if row is None:
        raise moderation.NotFound(f"There is no listing number {listing_id}.")  # a 404
    kind, name = row
    filters = _filters()
    form = call_form(kind)
    if not form.validate_on_submit():
        return _screen(moderation.get_listing(listing_id), form, filters, 400)
    outcome = CallOutcome(form.outcome.data)
    try:
        calls.record_call(
            listing_id,
            _user(),
            outcome,
            answers=form.answers() if outcome == CallOutcome.CONFIRMED else None,
            note=form.note.data,
        )
    except moderation.ModerationError as exc:
        flash(str(exc), "error")
        return redirect(url_for(".index", **filters.args()), code=303)
    flash(f"Saved {name}: {outcome.label.lower()}.", "success")
    next_id = calls.claim_next(filters.filters(), _user(), skip=[listing_id])
    if next_id is None:
        flash("That was the last one on this list. Thank you!", "success")
        return redirect(url_for(".index", **filters.args()), code=303)
    return redirect(url_for(".screen", listing_id=next_id, **filters.args()), code=303)


@bp.post("/<int:listing_id>/release")
def release(listing_id: int) -> ResponseReturnValue:
    filters = _filters()
    if ActionForm().validate_on_submit():
        calls.release(listing_id, _user())
        flash("Released: someone else can call it now.", "success")
    return redirect(url_for(".index", **filters.args()), code=303)
