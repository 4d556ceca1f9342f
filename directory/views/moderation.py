"""Moderator pages: the queue, review and decisions, listing upkeep, the audit log, accounts.

Every route here requires a signed-in moderator (checked in before_request, so a new route
can't forget); admin pages also carry @admin_required. The decisions themselves live in
directory/moderation.py.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from .. import moderation
from ..extensions import db, login_manager
from ..forms import (
    AccountForm,
    ActionForm,
    FlagForm,
    PinForm,
    ReasonForm,
    StatusForm,
    VerifyForm,
    form_class,
)
from ..listings import FIELD_LABELS, fields_for
from ..models import (
    AuditEntry,
    Listing,
    Role,
    Submission,
    SubmissionStatus,
    SubmissionType,
    User,
)
from ..security import admin_required
from ..validation import parse_id

bp = Blueprint("moderation", __name__, url_prefix="/moderation")

AUDIT_PAGE = 100


@bp.before_request
def _require_moderator():  # type: ignore[no-untyped-def]
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


def _user() -> User:
    return current_user._get_current_object()  # type: ignore[attr-defined,no-any-return]


def _submission_or_404(submission_id: int) -> Submission:
    sub = db.session.get(Submission, submission_id)
    if sub is None:
        abort(404)
    return sub


def _listing_or_404(listing_id: int) -> Listing:
    listing = db.session.get(Listing, listing_id)
    if listing is None:
        abort(404)
    return listing


def _done(message: str, target: str):  # type: ignore[no-untyped-def]
    flash(message, "success")
    return redirect(target, code=303)


def _refused(exc: moderation.ModerationError, target: str):  # type: ignore[no-untyped-def]
    flash(str(exc), "error")
    return redirect(target, code=303)


# --- the queue --------------------------------------------------------------------------------


@bp.get("/")
def queue():  # type: ignore[no-untyped-def]
    return render_template(
        "moderation/queue.html",
        counts=moderation.queue_counts(),
        submissions=moderation.pending(),
        due=moderation.due_for_reverification(),
    )


def _review_context(sub: Submission, **forms) -> dict:  # type: ignore[no-untyped-def]
    changes = moderation.diff(sub.listing, sub.data) if sub.listing else []
    dup_listings = {
        d["id"]: db.session.get(Listing, d["id"]) for d in sub.duplicates if d["type"] == "listing"
    }
    dup_subs = {
        d["id"]: db.session.get(Submission, d["id"])
        for d in sub.duplicates
        if d["type"] == "submission"
    }
    context = {
        "sub": sub,
        "changes": changes,
        "field_labels": FIELD_LABELS,
        "fields": fields_for(sub.listing_kind),
        "dup_listings": dup_listings,
        "dup_subs": dup_subs,
        "action_form": ActionForm(),
        "reason_form": ReasonForm(),
        "pin_form": PinForm(),
    }
    context.update(forms)
    return context


@bp.get("/submissions/<int:submission_id>")
def review(submission_id: int):  # type: ignore[no-untyped-def]
    sub = _submission_or_404(submission_id)
    return render_template("moderation/review.html", **_review_context(sub))


def _pin_from_request() -> tuple[float, float] | None | str:
    """The moderator's hand-set pin, None when not given, or a message when it is invalid."""
    raw_lat, raw_lon = request.form.get("lat", "").strip(), request.form.get("lon", "").strip()
    if not raw_lat and not raw_lon:
        return None
    try:
        lat, lon = float(raw_lat), float(raw_lon)
    except ValueError:
        return "Latitude and longitude must both be numbers."
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return "Latitude must be -90 to 90 and longitude -180 to 180."
    return lat, lon


@bp.post("/submissions/<int:submission_id>/approve")
def approve(submission_id: int):  # type: ignore[no-untyped-def]
    sub = _submission_or_404(submission_id)
    here = url_for(".review", submission_id=sub.id)
    if not ActionForm().validate_on_submit():
        abort(400)
    pin = _pin_from_request()
    if isinstance(pin, str):
        flash(pin, "error")
        return redirect(here, code=303)
    fields = request.form.getlist("fields") if sub.type == SubmissionType.CORRECTION else None
    try:
        listing = moderation.approve(
            sub.id,
            _user(),
            fields=fields,
            pin=pin,
            verify_method=request.form.get("verify_method") or None,
        )
    except moderation.ModerationError as exc:
        return _refused(exc, here)
    return _done(
        f"Approved {sub.reference}: it is live.",
        url_for(".listing", listing_id=listing.id),
    )


@bp.route("/submissions/<int:submission_id>/edit", methods=["GET", "POST"])
def edit(submission_id: int):  # type: ignore[no-untyped-def]
    """Edit the submitted values, then approve them as edited."""
    sub = _submission_or_404(submission_id)
    form = form_class(sub.listing_kind.value)(prefix="edit")
    if request.method == "GET":
        form.fill(sub.data)
    elif form.validate_on_submit():
        data = form.to_data()
        try:
            listing = moderation.approve(
                sub.id,
                _user(),
                data=data,
                fields=list(data) if sub.type == SubmissionType.CORRECTION else None,
            )
        except moderation.ModerationError as exc:
            return _refused(exc, url_for(".review", submission_id=sub.id))
        return _done(
            f"Approved {sub.reference} with your edits: it is live.",
            url_for(".listing", listing_id=listing.id),
        )
    if sub.status != SubmissionStatus.PENDING:
        flash("This submission was already handled; saving will not change anything.", "error")
    return render_template("moderation/edit.html", sub=sub, form=form), (
        400 if form.errors else 200
    )


@bp.post("/submissions/<int:submission_id>/reject")
def reject(submission_id: int):  # type: ignore[no-untyped-def]
    sub = _submission_or_404(submission_id)
    form = ReasonForm()
    if not form.validate_on_submit():
        return render_template(
            "moderation/review.html", **_review_context(sub, reason_form=form)
        ), 400
    try:
        moderation.reject(sub.id, _user(), form.reason.data)
    except moderation.ModerationError as exc:
        return _refused(exc, url_for(".review", submission_id=sub.id))
    return _done(f"Rejected {sub.reference}.", url_for(".queue"))


@bp.post("/submissions/<int:submission_id>/merge")
def merge(submission_id: int):  # type: ignore[no-untyped-def]
    sub = _submission_or_404(submission_id)
    here = url_for(".review", submission_id=sub.id)
    if not ActionForm().validate_on_submit():
        abort(400)
    target = parse_id(request.form.get("listing_id"))
    if target is None:
        flash("Choose the listing to merge into.", "error")
        return redirect(here, code=303)
    try:
        listing = moderation.merge(sub.id, target, _user())
    except moderation.ModerationError as exc:
        return _refused(exc, here)
    return _done(
        f"Merged {sub.reference} into {listing.name}.", url_for(".listing", listing_id=listing.id)
    )


# --- listing upkeep ---------------------------------------------------------------------------


def _listing_context(listing: Listing, **forms) -> dict:  # type: ignore[no-untyped-def]
    verify = VerifyForm(prefix="verify")
    if not verify.verified_on.data:
        verify.verified_on.data = date.today()
    flag = FlagForm(prefix="flag")
    status = StatusForm(prefix="status")
    status.status.data = status.status.data or listing.status.value
    context = {
        "listing": listing,
        "history": moderation.history(listing.id),
        "verify_form": verify,
        "flag_form": flag,
        "status_form": status,
        "pin_form": PinForm(prefix="pin"),
        "reason_form": ReasonForm(prefix="remove"),
    }
    context.update(forms)
    return context


@bp.get("/listings/<int:listing_id>")
def listing(listing_id: int):  # type: ignore[no-untyped-def]
    return render_template(
        "moderation/listing.html", **_listing_context(_listing_or_404(listing_id))
    )


def _listing_form_failed(listing: Listing, **forms):  # type: ignore[no-untyped-def]
    return render_template("moderation/listing.html", **_listing_context(listing, **forms)), 400


@bp.post("/listings/<int:listing_id>/verify")
def verify(listing_id: int):  # type: ignore[no-untyped-def]
    listing = _listing_or_404(listing_id)
    form = VerifyForm(prefix="verify")
    if not form.validate_on_submit():
        return _listing_form_failed(listing, verify_form=form)
    try:
        moderation.mark_verified(
            listing.id, _user(), form.method.data, form.verified_on.data, form.note.data or None
        )
    except moderation.ModerationError as exc:
        form.verified_on.errors = [str(exc)]
        return _listing_form_failed(listing, verify_form=form)
    return _done("Marked as verified.", url_for(".listing", listing_id=listing.id))


@bp.post("/listings/<int:listing_id>/flags")
def add_flag(listing_id: int):  # type: ignore[no-untyped-def]
    listing = _listing_or_404(listing_id)
    form = FlagForm(prefix="flag")
    if not form.validate_on_submit():
        return _listing_form_failed(listing, flag_form=form)
    moderation.add_flag(
        listing.id,
        _user(),
        type=form.type.data,
        label=form.label.data,
        source=form.source.data,
        as_of=form.as_of.data,
        url=form.url.data or None,
    )
    return _done("Flag added.", url_for(".listing", listing_id=listing.id))


@bp.post("/listings/<int:listing_id>/flags/<int:flag_id>/remove")
def remove_flag(listing_id: int, flag_id: int):  # type: ignore[no-untyped-def]
    listing = _listing_or_404(listing_id)
    form = ReasonForm(prefix="remove")
    if not form.validate_on_submit():
        return _listing_form_failed(listing, reason_form=form)
    try:
        moderation.remove_flag(listing.id, flag_id, _user(), form.reason.data)
    except moderation.ModerationError as exc:
        return _refused(exc, url_for(".listing", listing_id=listing.id))
    return _done("Flag removed.", url_for(".listing", listing_id=listing.id))


@bp.post("/listings/<int:listing_id>/status")
def set_status(listing_id: int):  # type: ignore[no-untyped-def]
    listing = _listing_or_404(listing_id)
    form = StatusForm(prefix="status")
    if not form.validate_on_submit():
        return _listing_form_failed(listing, status_form=form)
    try:
        moderation.set_status(listing.id, _user(), form.status.data, form.reason.data)
    except moderation.ModerationError as exc:
        form.status.errors = [str(exc)]
        return _listing_form_failed(listing, status_form=form)
    return _done("Status changed.", url_for(".listing", listing_id=listing.id))


@bp.post("/listings/<int:listing_id>/pin")
def set_pin(listing_id: int):  # type: ignore[no-untyped-def]
    listing = _listing_or_404(listing_id)
    form = PinForm(prefix="pin")
    if not form.validate_on_submit():
        return _listing_form_failed(listing, pin_form=form)
    moderation.set_pin(listing.id, _user(), float(form.lat.data), float(form.lon.data))
    return _done("Map pin moved.", url_for(".listing", listing_id=listing.id))


# --- admins: the audit log and accounts -------------------------------------------------------


def _audit_query():  # type: ignore[no-untyped-def]
    stmt = select(AuditEntry)
    action = request.args.get("action", "").strip()
    actor = request.args.get("actor", "").strip()
    listing_id = request.args.get("listing", "").strip()
    since = request.args.get("since", "").strip()
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if actor:
        stmt = stmt.where(AuditEntry.actor_label == actor)
    if parse_id(listing_id) is not None:
        stmt = stmt.where(AuditEntry.listing_id == parse_id(listing_id))
    if since:
        try:
            stmt = stmt.where(AuditEntry.at >= datetime.fromisoformat(since))
        except ValueError:
            flash("'Since' must be a date like 2026-11-01.", "error")
    return stmt.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())


@bp.get("/audit")
@admin_required
def audit():  # type: ignore[no-untyped-def]
    entries = db.session.scalars(_audit_query().limit(AUDIT_PAGE)).all()
    actions = db.session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action))
    return render_template("moderation/audit.html", entries=entries, actions=list(actions))


@bp.get("/audit.csv")
@admin_required
def audit_csv():  # type: ignore[no-untyped-def]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["id", "at", "actor", "action", "listing_id", "submission_id", "reason", "before", "after"]
    )
    import json

    for e in db.session.scalars(_audit_query()):
        writer.writerow(
            [
                e.id,
                e.at.isoformat(timespec="seconds"),
                e.actor_label,
                e.action,
                e.listing_id or "",
                e.submission_id or "",
                _csv_safe(e.reason or ""),
                _csv_safe(json.dumps(e.before, sort_keys=True) if e.before else ""),
                _csv_safe(json.dumps(e.after, sort_keys=True) if e.after else ""),
            ]
        )
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=ldn-directory-audit.csv"},
    )


def _csv_safe(value: str) -> str:
    # A cell starting with = + - @ is run as a formula by spreadsheet programs.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@bp.route("/accounts", methods=["GET", "POST"])
@admin_required
def accounts():  # type: ignore[no-untyped-def]
    form = AccountForm()
    if form.validate_on_submit():
        try:
            moderation.save_account(
                form.username.data,
                form.password.data,
                Role(form.role.data),
                actor=_user(),
                create_only=True,
            )
        except moderation.ModerationError as exc:
            form.username.errors = [str(exc)]
        else:
            return _done(f"Created {form.username.data}.", url_for(".accounts"))
    users = db.session.scalars(select(User).order_by(User.username)).all()
    return render_template(
        "moderation/accounts.html", form=form, users=users, action_form=ActionForm()
    ), (400 if form.errors else 200)


@bp.post("/accounts/<int:user_id>/active")
@admin_required
def toggle_active(user_id: int):  # type: ignore[no-untyped-def]
    if not ActionForm().validate_on_submit():
        abort(400)
    account = db.session.get(User, user_id)
    if account is None:
        abort(404)
    if account.id == _user().id:
        flash("You can't deactivate your own account.", "error")
        return redirect(url_for(".accounts"), code=303)
    moderation.set_account_active(account.id, not account.active, actor=_user())
    return _done("Account updated.", url_for(".accounts"))
