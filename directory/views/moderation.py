"""Moderator pages: the queue, review and decisions, listing upkeep, the audit log, accounts.

Every route here requires a signed-in moderator (checked in before_request, so a new route
can't forget); admin pages also carry @admin_required. Each view reads a form, calls one
function of directory/moderation/ and renders; a form with bad input comes back with the
message next to the field and status 400.
"""

from __future__ import annotations

from datetime import date
from typing import Any, cast

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user
from werkzeug.exceptions import NotFound as HTTPNotFound

from .. import moderation
from ..extensions import login_manager
from ..forms import (
    AccountForm,
    ActionForm,
    ApproveForm,
    AuditFilterForm,
    EditApproveForm,
    FlagForm,
    MergeForm,
    PinForm,
    ReasonForm,
    ResolveForm,
    RoleForm,
    StatusForm,
    VerifyForm,
    form_class,
)
from ..listings import FIELD_LABELS, fields_for
from ..models import Listing, Role, SubmissionStatus, SubmissionType, User
from ..security import admin_required
from ..vocabulary import SUGGESTED_RESOLUTION, CallDue, Kind, Resolution

bp = Blueprint("moderation", __name__, url_prefix="/moderation")

AUDIT_PAGE = 100


@bp.before_request
def _require_moderator() -> ResponseReturnValue | None:
    if not current_user.is_authenticated:
        return cast(ResponseReturnValue, login_manager.unauthorized())
    return None


@bp.context_processor
def _vocabulary() -> dict[str, Any]:
    # Templates compare with the members, never with values typed out.
    return {
        "SubmissionType": SubmissionType,
        "SubmissionStatus": SubmissionStatus,
        "CallDue": CallDue,
    }


@bp.errorhandler(moderation.NotFound)
def _not_found(exc: moderation.NotFound) -> ResponseReturnValue:
    # The site's own 404 page; raising from an error handler would end as a 500.
    return current_app.handle_http_exception(HTTPNotFound())


def _user() -> User:
    return cast(User, current_user._get_current_object())


def _done(message: str, target: str) -> ResponseReturnValue:
    flash(message, "success")
    return redirect(target, code=303)


def _refused(exc: moderation.ModerationError, target: str) -> ResponseReturnValue:
    flash(str(exc), "error")
    return redirect(target, code=303)


def _decided(message: str, submission_id: int) -> ResponseReturnValue:
    """After any decision: say what changed, then open the next submission waiting (or the
    queue when none is), so a moderator works through the queue without going back."""
    following = moderation.next_pending(after=submission_id)
    if following is None:
        return _done(message + " Nothing else is waiting.", url_for(".queue"))
    return _done(message, url_for(".review", submission_id=following))


# --- the queue --------------------------------------------------------------------------------


@bp.get("/")
def queue() -> ResponseReturnValue:
    page = request.args.get("page", "1")
    number = int(page) if page.isascii() and page.isdigit() and len(page) < 8 else 1
    return render_template(
        "moderation/queue.html",
        queue=moderation.queue_page(number),
        due=moderation.due_for_reverification(),
    )


def _approve_form(review: moderation.Review) -> ApproveForm:
    return ApproveForm(review.submission.listing_kind, [name for name, _, _ in review.changes])


def _review_page(review: moderation.Review, status: int = 200, **forms: Any) -> ResponseReturnValue:
    sub = review.submission
    context: dict[str, Any] = {
        "sub": sub,
        "changes": review.changes,
        "field_labels": FIELD_LABELS,
        "fields": fields_for(sub.listing_kind),
        "dup_listings": review.dup_listings,
        "dup_subs": review.dup_subs,
        "approve_form": _approve_form(review),
        "reason_form": ReasonForm(),
        "merge_form": MergeForm(review.dup_listings),
        "resolve_form": ResolveForm(),
        "resolutions": _resolutions(review),
        "history": moderation.submission_history(sub.id),
    }
    context.update(forms)
    return render_template("moderation/review.html", **context), status


def _resolutions(review: moderation.Review) -> list[tuple[str, str, bool]]:
    """The one-step decisions a correction can take, the one its problem asks for first."""
    sub = review.submission
    if sub.type != SubmissionType.CORRECTION or sub.listing is None:
        return []
    offered = [
        r for r in Resolution if not (r == Resolution.NOT_LDN and sub.listing_kind != Kind.PHARMACY)
    ]
    wanted = SUGGESTED_RESOLUTION.get(sub.problem_term) if sub.problem_term else None
    # (value, label, whether the report asks for it): only that one is the prominent button.
    return [(r.value, r.label, r == wanted) for r in sorted(offered, key=lambda r: r != wanted)]


@bp.get("/submissions/<int:submission_id>")
def review(submission_id: int) -> ResponseReturnValue:
    return _review_page(moderation.review(submission_id))


@bp.post("/submissions/<int:submission_id>/approve")
def approve(submission_id: int) -> ResponseReturnValue:
    review = moderation.review(submission_id)
    sub = review.submission
    form = _approve_form(review)
    if not form.validate_on_submit():
        return _review_page(review, 400, approve_form=form)
    try:
        decision = moderation.approve(
            sub.id,
            _user(),
            fields=form.fields.data if sub.type == SubmissionType.CORRECTION else None,
            pin=form.pin,
            verify_method=form.verify_method.data or None,
        )
    except moderation.ModerationError as exc:
        return _refused(exc, url_for(".review", submission_id=sub.id))
    return _decided(decision.message, sub.id)


@bp.post("/submissions/<int:submission_id>/resolve")
def resolve(submission_id: int) -> ResponseReturnValue:
    review = moderation.review(submission_id)
    sub = review.submission
    form = ResolveForm()
    offered = [value for value, _, _ in _resolutions(review)]
    if not form.validate_on_submit() or form.resolution.data not in offered:
        if not form.resolution.errors:
            form.resolution.errors = ["That decision isn't offered for this submission."]
        return _review_page(review, 400, resolve_form=form)
    try:
        decision = moderation.resolve(
            sub.id,
            _user(),
            form.resolution.data,
            verify_method=form.verify_method.data or None,
        )
    except moderation.ModerationError as exc:
        return _refused(exc, url_for(".review", submission_id=sub.id))
    return _decided(decision.message, sub.id)


@bp.route("/submissions/<int:submission_id>/edit", methods=["GET", "POST"])
def edit(submission_id: int) -> ResponseReturnValue:
    """Edit the submitted values, then approve them as edited."""
    sub = moderation.get_submission(submission_id)
    form = form_class(sub.listing_kind.value)(prefix="edit")
    decision_form = EditApproveForm(prefix="decide")
    if request.method == "GET":
        form.fill(sub.data)
    # Both forms validate, so each shows its own messages at once.
    elif all([form.validate_on_submit(), decision_form.validate_on_submit()]):
        data = form.to_data()
        try:
            decision = moderation.approve(
                sub.id,
                _user(),
                data=data,
                fields=list(data) if sub.type == SubmissionType.CORRECTION else None,
                verify_method=decision_form.verify_method.data or None,
            )
        except moderation.ModerationError as exc:
            return _refused(exc, url_for(".review", submission_id=sub.id))
        return _decided(decision.message, sub.id)
    if sub.status != SubmissionStatus.PENDING:
        flash("This submission was already handled; saving will not change anything.", "error")
    return render_template(
        "moderation/edit.html", sub=sub, form=form, decision_form=decision_form
    ), (400 if form.errors or decision_form.errors else 200)


@bp.post("/submissions/<int:submission_id>/reject")
def reject(submission_id: int) -> ResponseReturnValue:
    review = moderation.review(submission_id)
    form = ReasonForm()
    if not form.validate_on_submit():
        return _review_page(review, 400, reason_form=form)
    sub = review.submission
    try:
        moderation.reject(sub.id, _user(), form.reason.data)
    except moderation.ModerationError as exc:
        return _refused(exc, url_for(".review", submission_id=sub.id))
    return _decided(f"Rejected {sub.reference}: no listing changed.", sub.id)


@bp.post("/submissions/<int:submission_id>/merge")
def merge(submission_id: int) -> ResponseReturnValue:
    review = moderation.review(submission_id)
    sub = review.submission
    form = MergeForm(review.dup_listings)
    if not form.validate_on_submit():
        return _review_page(review, 400, merge_form=form)
    try:
        listing = moderation.merge(sub.id, form.target, _user())
    except moderation.AlreadyHandled as exc:
        return _refused(exc, url_for(".review", submission_id=sub.id))
    except moderation.ModerationError as exc:
        form.listing_id.errors = [str(exc)]
        return _review_page(review, 400, merge_form=form)
    return _decided(f"Merged {sub.reference} into {listing.name}.", sub.id)


# --- listing upkeep ---------------------------------------------------------------------------


def _listing_page(listing: Listing, status: int = 200, **forms: Any) -> ResponseReturnValue:
    verify = VerifyForm(prefix="verify")
    if not verify.verified_on.data:
        verify.verified_on.data = date.today()
    status_form = StatusForm(prefix="status")
    status_form.status.data = status_form.status.data or listing.status.value
    context: dict[str, Any] = {
        "listing": listing,
        "history": moderation.history(listing.id),
        "verify_form": verify,
        "flag_form": FlagForm(prefix="flag"),
        "status_form": status_form,
        "pin_form": PinForm(prefix="pin"),
        "reason_form": ReasonForm(prefix="remove"),
    }
    context.update(forms)
    return render_template("moderation/listing.html", **context), status


@bp.get("/listings/<int:listing_id>")
def listing(listing_id: int) -> ResponseReturnValue:
    return _listing_page(moderation.get_listing(listing_id))


@bp.post("/listings/<int:listing_id>/verify")
def verify(listing_id: int) -> ResponseReturnValue:
    listing = moderation.get_listing(listing_id)
    form = VerifyForm(prefix="verify")
    if not form.validate_on_submit():
        return _listing_page(listing, 400, verify_form=form)
    assert form.verified_on.data is not None  # InputRequired
    try:
        moderation.mark_verified(
            listing.id, _user(), form.method.data, form.verified_on.data, form.note.data or None
        )
    except moderation.ModerationError as exc:
        form.verified_on.errors = [str(exc)]
        return _listing_page(listing, 400, verify_form=form)
    return _done("Marked as verified.", url_for(".listing", listing_id=listing.id))


@bp.post("/listings/<int:listing_id>/flags")
def add_flag(listing_id: int) -> ResponseReturnValue:
    listing = moderation.get_listing(listing_id)
    form = FlagForm(prefix="flag")
    if not form.validate_on_submit():
        return _listing_page(listing, 400, flag_form=form)
    assert form.as_of.data is not None  # InputRequired
    moderation.add_flag(
        listing.id,
        _user(),
        type=form.type.data,
        label=form.label.data or "",
        source=form.source.data or "",
        as_of=form.as_of.data,
        url=form.url.data or None,
    )
    return _done("Flag added.", url_for(".listing", listing_id=listing.id))


@bp.post("/listings/<int:listing_id>/flags/<int:flag_id>/remove")
def remove_flag(listing_id: int, flag_id: int) -> ResponseReturnValue:
    listing = moderation.get_listing(listing_id)
    form = ReasonForm(prefix="remove")
    if not form.validate_on_submit():
        return _listing_page(listing, 400, reason_form=form)
    try:
        moderation.remove_flag(listing.id, flag_id, _user(), form.reason.data or "")
    except moderation.ModerationError as exc:
        return _refused(exc, url_for(".listing", listing_id=listing.id))
    return _done("Flag removed.", url_for(".listing", listing_id=listing.id))


@bp.post("/listings/<int:listing_id>/status")
def set_status(listing_id: int) -> ResponseReturnValue:
    listing = moderation.get_listing(listing_id)
    form = StatusForm(prefix="status")
    if not form.validate_on_submit():
        return _listing_page(listing, 400, status_form=form)
    try:
        moderation.set_status(listing.id, _user(), form.status.data, form.reason.data or "")
    except moderation.ModerationError as exc:
        form.status.errors = [str(exc)]
        return _listing_page(listing, 400, status_form=form)
    return _done("Status changed.", url_for(".listing", listing_id=listing.id))


@bp.post("/listings/<int:listing_id>/pin")
def set_pin(listing_id: int) -> ResponseReturnValue:
    listing = moderation.get_listing(listing_id)
    form = PinForm(prefix="pin")
    pin = form.pin if form.validate_on_submit() else None
    if pin is None:
        return _listing_page(listing, 400, pin_form=form)
    moderation.set_pin(listing.id, _user(), *pin)
    return _done("Map pin moved.", url_for(".listing", listing_id=listing.id))


# --- admins: the audit log and accounts -------------------------------------------------------


@bp.get("/audit")
@admin_required
def audit() -> ResponseReturnValue:
    form = AuditFilterForm(request.args)
    valid = form.validate()
    log = moderation.audit_log(
        form.filters() if valid else moderation.AuditFilters(), limit=AUDIT_PAGE
    )
    form.offer(log.actions)
    entries = log.entries if valid else []
    return render_template("moderation/audit.html", form=form, entries=entries), (
        200 if valid else 400
    )


@bp.get("/audit.csv")
@admin_required
def audit_csv() -> ResponseReturnValue:
    form = AuditFilterForm(request.args)
    if not form.validate():
        problems = "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())
        return Response(problems, status=400, mimetype="text/plain")
    return Response(
        moderation.audit_csv(form.filters()),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=ldn-directory-audit.csv"},
    )


def _accounts_page(form: AccountForm, status: int = 200) -> ResponseReturnValue:
    users = moderation.all_accounts()
    return render_template(
        "moderation/accounts.html",
        form=form,
        users=users,
        action_form=ActionForm(),
        # One role form per account, showing its current role.
        role_forms={u.id: RoleForm(formdata=None, data={"role": u.role.value}) for u in users},
    ), status


@bp.route("/accounts", methods=["GET", "POST"])
@admin_required
def accounts() -> ResponseReturnValue:
    form = AccountForm()
    if form.validate_on_submit():
        try:
            moderation.save_account(
                form.username.data or "",
                form.password.data or "",
                moderation.known(Role, form.role.data),
                actor=_user(),
                create_only=True,
            )
        except moderation.ModerationError as exc:
            form.username.errors = [str(exc)]
        else:
            return _done(f"Created {form.username.data}.", url_for(".accounts"))
    return _accounts_page(form, 400 if form.errors else 200)


@bp.post("/accounts/<int:user_id>/active")
@admin_required
def toggle_active(user_id: int) -> ResponseReturnValue:
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        moderation.toggle_active(user_id, actor=_user())
    except moderation.ModerationError as exc:
        flash(str(exc), "error")
        return _accounts_page(AccountForm(formdata=None), 400)
    return _done("Account updated.", url_for(".accounts"))


@bp.post("/accounts/<int:user_id>/role")
@admin_required
def set_role(user_id: int) -> ResponseReturnValue:
    form = RoleForm()
    if not form.validate_on_submit():
        flash("Choose Moderator or Admin.", "error")
        return _accounts_page(AccountForm(formdata=None), 400)
    try:
        user = moderation.set_role(user_id, moderation.known(Role, form.role.data), actor=_user())
    except moderation.NotFound:
        abort(404)
    except moderation.ModerationError as exc:
        flash(str(exc), "error")
        return _accounts_page(AccountForm(formdata=None), 400)
    return _done(f"{user.username} is now {user.role.label.lower()}.", url_for(".accounts"))
