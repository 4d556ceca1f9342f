"""Moderators' forms: signing in, decisions on submissions, listing upkeep, accounts and the
audit log's filter. Every choice comes from the vocabulary, every length from the rule's home."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    Field,
    FloatField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
    URLField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    StopValidation,
    ValidationError,
)

from .. import geomath, validation
from ..listings import FIELD_LABELS, fields_for
from ..models import AuditEntry, FlagType, Kind, Listing, Role, Status, VerifyMethod
from ..moderation.accounts import (
    PASSWORD_LONG,
    PASSWORD_MAX,
    PASSWORD_MIN,
    PASSWORD_SHORT,
    USERNAME_MAX,
    USERNAME_MESSAGE,
    USERNAME_MIN,
)
from ..moderation.audit import AuditFilters
from ..vocabulary import Resolution
from .fields import STRIP, MultiCheckboxField

NOT_A_NUMBER = "Latitude and longitude must both be numbers."
BOTH_OR_NEITHER = "Enter both latitude and longitude, or neither."


class LoginForm(FlaskForm):
    username = StringField(
        "Name",
        validators=[DataRequired("Enter your moderator name."), Length(max=USERNAME_MAX)],
        filters=STRIP,
    )
    password = PasswordField(
        "Password", validators=[DataRequired("Enter your password."), Length(max=PASSWORD_MAX)]
    )
    next = HiddenField()


class ReasonForm(FlaskForm):
    reason = TextAreaField(
        "Reason (recorded in the history)",
        validators=[DataRequired("Please give a reason."), Length(max=2000)],
        filters=STRIP,
    )


class ActionForm(FlaskForm):
    """A bare form for one-click actions: its only job is the CSRF token."""


class CoordinateField(FloatField):
    """A latitude or longitude as typed: finite numbers only (float() takes 'nan' and 'inf')."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        text = str(valuelist[0]).strip() if valuelist else ""
        if not text:
            self.data = None
            return
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            self.data = None
            raise ValueError(NOT_A_NUMBER)
        self.data = value

    def pre_validate(self, form: Any) -> None:
        if self.process_errors:
            raise StopValidation()  # "not a number" says it all; no range message on top


def _coordinate(label: str, bounds: tuple[float, float], *, required: bool) -> CoordinateField:
    first = InputRequired(f"Enter the {label.lower()}.") if required else Optional()
    return CoordinateField(
        label,
        validators=[first, NumberRange(*bounds, message=geomath.COORDINATES_MESSAGE)],
        render_kw={"inputmode": "decimal"},
    )


class PinForm(FlaskForm):
    """A map pin set by hand, on a listing's page; on the review page ApproveForm makes it
    optional."""

    lat = _coordinate("Latitude", geomath.LAT_RANGE, required=True)
    lon = _coordinate("Longitude", geomath.LON_RANGE, required=True)

    @property
    def pin(self) -> tuple[float, float] | None:
        if self.lat.data is None or self.lon.data is None:
            return None
        return float(self.lat.data), float(self.lon.data)


VERIFY_TODAY = [("", "No")] + [(value, f"Yes, {label}") for value, label in VerifyMethod.choices()]


class ApproveForm(PinForm):
    """Approve a submission: optionally a hand-set pin, a check made today, and (for a
    correction) which of the proposed changes to apply."""

    lat = _coordinate("Latitude", geomath.LAT_RANGE, required=False)
    lon = _coordinate("Longitude", geomath.LON_RANGE, required=False)
    verify_method = SelectField(
        "I also checked the details today", choices=VERIFY_TODAY, default=""
    )
    fields = MultiCheckboxField("Apply these changes")

    def __init__(self, kind: Kind, changed: Sequence[str] = (), **kwargs: Any) -> None:
        # Every change starts ticked; once posted, what the moderator ticked is kept.
        super().__init__(data={"fields": list(changed)}, **kwargs)
        self.fields.choices = [(name, FIELD_LABELS.get(name, name)) for name in fields_for(kind)]

    def validate(self, extra_validators: Mapping[str, Sequence[Any]] | None = None) -> bool:
        valid = super().validate(extra_validators)
        blank = [f for f in (self.lat, self.lon) if not (f.raw_data and str(f.raw_data[0]).strip())]
        if len(blank) == 1:
            blank[0].errors = [*blank[0].errors, BOTH_OR_NEITHER]
            return False
        return valid


class ResolveForm(FlaskForm):
    """Resolve a problem report by doing what it reports: each choice is its own button."""

    resolution = SelectField(
        "Decision",
        choices=Resolution.choices(),
        validators=[InputRequired("Choose what to do.")],
    )
    verify_method = SelectField(
        "I also checked the details today", choices=VERIFY_TODAY, default=""
    )


class EditApproveForm(FlaskForm):
    """The part of "Edit, then approve" that is about the decision, not the listing's values."""

    verify_method = SelectField(
        "I also checked the details today", choices=VERIFY_TODAY, default=""
    )


class MergeForm(FlaskForm):
    listing_id = StringField(
        "Listing number",
        validators=[InputRequired("Choose the listing to merge into.")],
        filters=STRIP,
        render_kw={"inputmode": "numeric"},
    )

    def __init__(self, candidates: Mapping[int, Listing] | None = None, **kwargs: Any) -> None:
        # The first possible duplicate is the likely target; the hint names them all.
        first = next(iter(candidates), None) if candidates else None
        super().__init__(data={"listing_id": str(first) if first else ""}, **kwargs)
        if candidates:
            self.listing_id.description = "Possible duplicates: " + ", ".join(
                f"{listing.name} (#{ident})" for ident, listing in candidates.items()
            )

    def validate_listing_id(self, field: Field) -> None:
        if validation.parse_id(field.data) is None:
            raise ValidationError("Enter a listing number, like 42.")

    @property
    def target(self) -> int:
        """The listing number, once the form is valid."""
        target = validation.parse_id(self.listing_id.data)
        assert target is not None, "read only after validate()"
        return target


class VerifyForm(FlaskForm):
    method = RadioField(
        "How did you check?",
        choices=[(value, label.capitalize()) for value, label in VerifyMethod.choices()],
        validators=[InputRequired("Choose how you checked.")],
    )
    verified_on = DateField(
        "Date you checked", validators=[InputRequired("Enter the date you checked.")]
    )
    note = StringField("Note (optional)", validators=[Optional(), Length(max=500)], filters=STRIP)


class FlagForm(FlaskForm):
    type = SelectField("Kind", choices=FlagType.choices())
    label = StringField(
        "What it says",
        validators=[DataRequired("Enter what the list, register or report says."), Length(max=200)],
        filters=STRIP,
    )
    source = StringField(
        "Who says so",
        validators=[
            DataRequired("Enter who says so: the list, register or person."),
            Length(max=200),
        ],
        filters=STRIP,
    )
    as_of = DateField("As of", validators=[InputRequired("Enter the date of the source.")])
    url = URLField("Link (optional)", validators=[Optional(), Length(max=300)], filters=STRIP)

    def validate_url(self, field: Field) -> None:
        if field.data:
            problem = validation.url_problem(field.data)
            if problem:
                raise ValidationError(problem)


class StatusForm(FlaskForm):
    status = SelectField("Status", choices=Status.choices())
    reason = TextAreaField(
        "Reason",
        validators=[DataRequired("Please give a reason."), Length(max=2000)],
        filters=STRIP,
    )


class AccountForm(FlaskForm):
    username = StringField(
        "Name",
        description="Letters, digits, dots, dashes and underscores.",
        validators=[
            DataRequired(USERNAME_MESSAGE),
            Length(min=USERNAME_MIN, max=USERNAME_MAX, message=USERNAME_MESSAGE),
        ],
        filters=STRIP,
    )
    password = PasswordField(
        f"Password (at least {PASSWORD_MIN} characters)",
        validators=[
            DataRequired(PASSWORD_SHORT),
            Length(min=PASSWORD_MIN, message=PASSWORD_SHORT),
            Length(max=PASSWORD_MAX, message=PASSWORD_LONG),
        ],
    )
    role = SelectField("Role", choices=Role.choices())


class RoleForm(FlaskForm):
    """An admin changes an account's role (one form per row of the accounts table)."""

    role = SelectField("Role", choices=Role.choices())


class AuditFilterForm(FlaskForm):
    """The audit log's filter: a GET form bound to the query string, so no CSRF token."""

    class Meta:
        csrf = False

    # Any action the log holds: the choices are filled from the log, an unknown one matches
    # nothing rather than being an error.
    action = SelectField("Action", choices=[("", "Any")], validate_choice=False)
    actor = StringField("Who", validators=[Optional(), Length(max=USERNAME_MAX)], filters=STRIP)
    listing = StringField(
        "Listing number", validators=[Optional()], filters=STRIP, render_kw={"inputmode": "numeric"}
    )
    since = DateField("Since", validators=[Optional()])

    def validate_listing(self, field: Field) -> None:
        if field.data and validation.parse_id(field.data) is None:
            raise ValidationError("Enter a listing number, like 42.")

    def offer(self, actions: Sequence[str]) -> None:
        self.action.choices = [("", "Any"), *((a, AuditEntry.words(a)) for a in actions)]

    def filters(self) -> AuditFilters:
        """The typed filters, once the form is valid."""
        return AuditFilters(
            action=self.action.data or None,
            actor=self.actor.data or None,
            listing_id=validation.parse_id(self.listing.data),
            since=self.since.data,
        )
