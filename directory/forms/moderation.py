"""Moderators' forms: signing in, decisions on submissions, listing upkeep, accounts."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    DecimalField,
    Field,
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
    ValidationError,
)

from .. import validation
from ..geomath import LAT_RANGE, LON_RANGE
from ..models import FlagType, Status
from .fields import STRIP


class LoginForm(FlaskForm):
    username = StringField(
        "Name",
        validators=[DataRequired("Enter your moderator name."), Length(max=60)],
        filters=STRIP,
    )
    password = PasswordField(
        "Password", validators=[DataRequired("Enter your password."), Length(max=200)]
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


class VerifyForm(FlaskForm):
    method = RadioField(
        "How did you check?",
        choices=[("phone", "By phone"), ("website", "On its website"), ("in_person", "In person")],
        validators=[InputRequired("Choose how you checked.")],
    )
    verified_on = DateField(
        "Date you checked", validators=[InputRequired("Enter the date you checked.")]
    )
    note = StringField("Note (optional)", validators=[Optional(), Length(max=500)], filters=STRIP)


class FlagForm(FlaskForm):
    type = SelectField("Kind", choices=[(t.value, t.value.replace("_", " ")) for t in FlagType])
    label = StringField("What it says", validators=[DataRequired(), Length(max=200)], filters=STRIP)
    source = StringField("Who says so", validators=[DataRequired(), Length(max=200)], filters=STRIP)
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


class PinForm(FlaskForm):
    lat = DecimalField("Latitude", places=6, validators=[InputRequired(), NumberRange(*LAT_RANGE)])
    lon = DecimalField("Longitude", places=6, validators=[InputRequired(), NumberRange(*LON_RANGE)])


class AccountForm(FlaskForm):
    username = StringField(
        "Name", validators=[DataRequired(), Length(min=2, max=60)], filters=STRIP
    )
    password = PasswordField(
        "Password (at least 12 characters)",
        validators=[DataRequired(), Length(min=12, max=200, message="At least 12 characters.")],
    )
    role = SelectField("Role", choices=[("moderator", "Moderator"), ("admin", "Admin")])
