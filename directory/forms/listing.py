"""The public listing forms (suggest a listing, suggest a correction). They turn request data
into the plain listing dict (directory/listings.py) and back; they hold no rules beyond
checking what one person typed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import (
    BooleanField,
    EmailField,
    Field,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    URLField,
)
from wtforms.validators import (
    DataRequired,
    Email,
    InputRequired,
    Length,
    Optional,
    StopValidation,
    ValidationError,
)

from .. import regions, validation
from ..i18n import translated
from ..models import (
    Kind,
    SRPolicy,
)
from ..vocabulary import Problem, Relation
from .fields import COUNTRY_HINT, STRIP, TRI_STATE, MultiCheckboxField


def _email_field(label: str) -> EmailField:
    return EmailField(
        label,
        validators=[
            Optional(),
            Length(max=200),
            Email(_l("Enter an email address like name@example.org.")),
        ],
        filters=STRIP,
    )


# A host name with at least one dot, an optional port, then a path or nothing: a web address
# typed without its scheme ("www.example.org/ldn").
_BARE_HOST = re.compile(
    r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9-]+)+(?::\d{1,5})?(?:[/?#]|$)", re.I
)


class Honeypot(StringField):
    """Hidden from people by CSS and from screen readers; bots fill every field they see."""


def _countries() -> list[tuple[str, str]]:
    return regions.shown_countries()


def _states() -> list[tuple[str, str]]:
    return regions.shown_states()


class ListingForm(FlaskForm):
    """Fields every listing has: name, where it is, how to reach it."""

    name = StringField(
        _l("Name"),
        validators=[DataRequired(_l("Please enter the name.")), Length(max=200)],
        filters=STRIP,
    )
    street = StringField(
        _l("Street address"), validators=[Optional(), Length(max=200)], filters=STRIP
    )
    city = StringField(_l("City or town"), validators=[Optional(), Length(max=120)], filters=STRIP)
    # No Optional(): it would stop the chain on an empty choice before validate_state runs.
    state = SelectField(_l("State"), validators=[])
    region_other = StringField(
        _l("Region or province (outside the US)"),
        validators=[Optional(), Length(max=80)],
        filters=STRIP,
    )
    postal_code = StringField(
        _l("ZIP or postal code"), validators=[Optional(), Length(max=20)], filters=STRIP
    )
    country = SelectField(_l("Country"), default="US", validators=[DataRequired()])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=40)], filters=STRIP)
    website = URLField(_l("Website"), validators=[Optional(), Length(max=300)], filters=STRIP)
    email = _email_field(_l("Email"))
    # The honeypot: a plausible name so that form-filling bots take the bait.
    company_fax = Honeypot(_l("Leave this empty"), validators=[Optional()])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state.choices = [("", _("Choose a state"))] + _states()
        self.country.choices = _countries()

    def validate_state(self, field: Field) -> None:
        if self.country.data == "US" and not field.data and (self.street.data or self.city.data):
            raise ValidationError(_("Please choose the state."))
        if field.data and self.country.data != "US":
            raise ValidationError(_("States are for US addresses; use the region box instead."))

    def validate_postal_code(self, field: Field) -> None:
        if field.data:
            problem = validation.postal_code_problem(field.data, self.country.data or "US")
            if problem:
                raise ValidationError(problem)

    def validate_phone(self, field: Field) -> None:
        if field.data:
            try:
                # Shown back formatted if the page comes back; to_data() stores E.164.
                field.data = validation.format_phone(
                    validation.normalise_phone(field.data, self.country.data or "US")
                )
            except ValueError as exc:
                raise ValidationError(str(exc)) from None

    def validate_website(self, field: Field) -> None:
        if field.data and _BARE_HOST.match(field.data):
            # "oakpharmacy.com" is what people type (and what a card or a bottle shows): they
            # mean the site, so it is completed rather than refused. Only text that starts
            # with a host name is, so "javascript:..." still meets url_problem below.
            field.data = "https://" + field.data
        if field.data:
            problem = validation.url_problem(field.data)
            if problem:
                raise StopValidation(problem)

    def validate_company_fax(self, field: Field) -> None:
        if field.data:
            raise ValidationError(_("Please leave this field empty."))

    # --- to and from the listing dict ---

    def common_data(self) -> dict[str, Any]:
        country = self.country.data or "US"
        return {
            "name": self.name.data,
            "street": self.street.data or None,
            "city": self.city.data or None,
            "region": (self.state.data or None)
            if country == "US"
            else (self.region_other.data or None),
            "postal_code": (self.postal_code.data or "").upper() or None,
            "country": country,
            "phone": validation.stored_phone(self.phone.data, country),
            "website": self.website.data or None,
            "email": (self.email.data or "").lower() or None,
        }

    def fill_common(self, data: dict[str, Any]) -> None:
        for key in ("name", "street", "city", "postal_code", "website", "email"):
            getattr(self, key).data = data.get(key)
        # Stored in E.164; people read and edit it as they write it.
        self.phone.data = validation.format_phone(data.get("phone")) or None
        country = data.get("country") or "US"
        self.country.data = country
        if country == "US":
            self.state.data = data.get("region")
        else:
            self.region_other.data = data.get("region")


def _tri(value: str | None) -> bool | None:
    return {"yes": True, "no": False}.get(value or "")


def _from_tri(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _country_codes_field(label: str) -> StringField:
    return StringField(
        label,
        validators=[Optional(), Length(max=200)],
        filters=STRIP,
        description=_l("Two-letter codes separated by commas, e.g. GB, IE."),
    )


def _country_codes(text: str | None) -> list[str]:
    return [c.strip().upper() for c in (text or "").replace(";", ",").split(",") if c.strip()]


def _check_countries(field: Field) -> None:
    bad = [c for c in _country_codes(field.data) if c not in regions.countries()]
    if bad:
        raise ValidationError(
            _("Unknown country code: %(codes)s.", codes=", ".join(bad[:3])) + " " + _(COUNTRY_HINT)
        )


def _regions(states: Field, countries: Field) -> list[str]:
    """Where a pharmacy ships or a prescriber is licensed: ticked US states (US-XX) and typed
    country codes, as one list (the listing keeps them together)."""
    return sorted(set(states.data or []) | set(_country_codes(countries.data)))


def _fill_regions(codes: list[str] | None, states: Field, countries: Field) -> None:
    states.data = [c for c in codes or [] if c.startswith("US-")]
    countries.data = ", ".join(c for c in codes or [] if not c.startswith("US-"))


class PharmacyForm(ListingForm):
    makes_ldn = RadioField(
        _l("Does it make LDN?"), choices=TRI_STATE, default="yes", validators=[InputRequired()]
    )
    dosage_forms = MultiCheckboxField(_l("Which forms of LDN does it make?"))
    sr_policy = RadioField(
        _l("Does it make slow-release LDN?"),
        choices=SRPolicy.lazy_choices(),
        default=SRPolicy.UNKNOWN.value,
        validators=[InputRequired(_l("Please choose one; 'don't know' is fine."))],
    )
    fillers = MultiCheckboxField(_l("Which fillers does it use in capsules?"))
    fillers_unknown = BooleanField(_l("I don't know which fillers it uses"), default=True)
    price_notes = StringField(
        _l("Price notes"),
        validators=[Optional(), Length(max=500)],
        filters=STRIP,
        description=_l("For example: about $30 for 30 capsules of 4.5 mg."),
    )
    mail_order = RadioField(
        _l("Does it mail prescriptions?"),
        choices=[("yes", _l("Yes")), ("no", _l("No"))],
        default="no",
        validators=[InputRequired()],
    )
    ships_to = MultiCheckboxField(_l("US states it ships to"))
    ships_to_countries = _country_codes_field(_l("Countries it ships to (outside the US)"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from ..models import DosageForm, Filler, vocabulary_rows

        self.dosage_forms.choices = [
            (d.code, translated(d.name)) for d in vocabulary_rows(DosageForm)
        ]
        self.fillers.choices = [(f.code, translated(f.name)) for f in vocabulary_rows(Filler)]
        self.ships_to.choices = _states()

    def validate(self, extra_validators: Any = None) -> bool:
        ok = super().validate(extra_validators)
        if not (self.city.data or self.postal_code.data):
            self.city.errors = [
                *self.city.errors,
                _("Give the city or the ZIP code, so patients nearby can find it."),
            ]
            ok = False
        if not (self.phone.data or self.website.data or self.email.data):
            self.phone.errors = [
                *self.phone.errors,
                _("Give at least one way to reach the pharmacy: phone, website or email."),
            ]
            ok = False
        if self.fillers.data and self.fillers_unknown.data:
            # "I don't know" is ticked by default, so a filler ticked without JavaScript (which
            # unticks it) must not be an error: a chosen filler is an answer, and it wins.
            self.fillers_unknown.data = False
        return ok

    def validate_ships_to_countries(self, field: Field) -> None:
        _check_countries(field)

    def to_data(self) -> dict[str, Any]:
        data = self.common_data()
        data.update(
            makes_ldn=_tri(self.makes_ldn.data),
            dosage_forms=sorted(self.dosage_forms.data or []),
            sr_policy=self.sr_policy.data,
            fillers=None if self.fillers_unknown.data else sorted(self.fillers.data or []),
            price_notes=self.price_notes.data or None,
            mail_order=self.mail_order.data == "yes",
            ships_to=_regions(self.ships_to, self.ships_to_countries),
        )
        return data

    def fill(self, data: dict[str, Any]) -> None:
        self.fill_common(data)
        self.makes_ldn.data = _from_tri(data.get("makes_ldn"))
        self.dosage_forms.data = list(data.get("dosage_forms") or [])
        self.sr_policy.data = data.get("sr_policy") or SRPolicy.UNKNOWN.value
        self.fillers.data = list(data.get("fillers") or [])
        self.fillers_unknown.data = data.get("fillers") is None
        self.price_notes.data = data.get("price_notes")
        self.mail_order.data = "yes" if data.get("mail_order") else "no"
        _fill_regions(data.get("ships_to"), self.ships_to, self.ships_to_countries)


class PrescriberForm(ListingForm):
    name = StringField(
        _l("Name"),
        validators=[DataRequired(_l("Please enter the prescriber's name.")), Length(max=200)],
        filters=STRIP,
        description=_l("For example: Dr. Ana Rivera"),
    )
    credentials = StringField(
        _l("Credentials"),
        validators=[Optional(), Length(max=60)],
        filters=STRIP,
        description=_l("MD, DO, NP, PA-C, ND…"),
    )
    specialty = StringField(
        _l("Specialty"), validators=[Optional(), Length(max=120)], filters=STRIP
    )
    practice = StringField(
        _l("Practice or clinic"), validators=[Optional(), Length(max=200)], filters=STRIP
    )
    telehealth = RadioField(
        _l("Do they see patients by telehealth?"),
        choices=[
            ("no", _l("No, office visits only")),
            ("yes", _l("Yes, and in the office")),
            ("only", _l("Telehealth only")),
        ],
        default="no",
        validators=[InputRequired()],
    )
    licensed_in = MultiCheckboxField(_l("US states where they are licensed"))
    licensed_in_countries = _country_codes_field(
        _l("Countries where they are licensed (outside the US)")
    )
    npi = StringField(
        _l("NPI number"),
        validators=[Optional(), Length(max=14)],
        filters=STRIP,
        description=_l("10 digits, for US prescribers. Leave empty if you don't know it."),
    )
    accepting_new_patients = RadioField(
        _l("Accepting new patients?"),
        choices=TRI_STATE,
        default="unknown",
        validators=[InputRequired()],
    )
    conditions = MultiCheckboxField(_l("Conditions they treat with LDN"))
    dosing_notes = TextAreaField(
        _l("How do they dose LDN?"),
        validators=[Optional(), Length(max=1000)],
        filters=STRIP,
        description=_l("For example: starts at 1.5 mg and raises every two weeks."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from ..models import Condition, vocabulary_rows

        self.licensed_in.choices = _states()
        self.conditions.choices = [(c.code, translated(c.name)) for c in vocabulary_rows(Condition)]

    def validate_licensed_in_countries(self, field: Field) -> None:
        _check_countries(field)

    def validate_npi(self, field: Field) -> None:
        if field.data:
            try:
                field.data = validation.normalise_npi(field.data)
            except ValueError as exc:
                raise ValidationError(str(exc)) from None

    def validate(self, extra_validators: Any = None) -> bool:
        ok = super().validate(extra_validators)
        if self.telehealth.data != "only" and not (self.city.data or self.postal_code.data):
            self.city.errors = [
                *self.city.errors,
                _("Give the city or ZIP of the office, or choose 'Telehealth only'."),
            ]
            ok = False
        if (
            self.telehealth.data in ("yes", "only")
            and not self.licensed_in.data
            and self.country.data == "US"
        ):
            self.licensed_in.errors = [
                *self.licensed_in.errors,
                _("Choose at least one state for telehealth."),
            ]
            ok = False
        return ok

    def to_data(self) -> dict[str, Any]:
        data = self.common_data()
        data.update(
            credentials=self.credentials.data or None,
            specialty=self.specialty.data or None,
            practice=self.practice.data or None,
            telehealth=self.telehealth.data in ("yes", "only"),
            telehealth_only=self.telehealth.data == "only",
            licensed_in=_regions(self.licensed_in, self.licensed_in_countries),
            npi=self.npi.data or None,
            accepting_new_patients=_tri(self.accepting_new_patients.data),
            conditions=sorted(self.conditions.data or []),
            dosing_notes=self.dosing_notes.data or None,
        )
        return data

    def fill(self, data: dict[str, Any]) -> None:
        self.fill_common(data)
        for key in ("credentials", "specialty", "practice", "npi", "dosing_notes"):
            getattr(self, key).data = data.get(key)
        self.telehealth.data = (
            "only" if data.get("telehealth_only") else ("yes" if data.get("telehealth") else "no")
        )
        _fill_regions(data.get("licensed_in"), self.licensed_in, self.licensed_in_countries)
        self.accepting_new_patients.data = _from_tri(data.get("accepting_new_patients"))
        self.conditions.data = list(data.get("conditions") or [])


class SubmitterMixin:
    """About the person sending it. Private: moderators see it, the public never does."""

    submitter_relation = RadioField(
        _l("How do you know about it? (optional)"),
        choices=Relation.lazy_choices(),
        validators=[Optional()],
    )
    submitter_email = _email_field(
        _l("Your email, if a moderator may ask you a question (optional, never shown)")
    )
    note = TextAreaField(
        _l("Anything else a moderator should know? (optional)"),
        validators=[Optional(), Length(max=2000)],
        filters=STRIP,
    )


# What the correction form asks first, in the order a patient meets them: what happened to
# the place, then its details. (SR_FILLERS stays a stored value for older reports; the full
# edit below the question is where slow-release and fillers are corrected now.)
_CORRECTION_PROBLEMS = (
    Problem.CLOSED,
    Problem.MOVED,
    Problem.NO_LDN,
    Problem.WRONG_PHONE,
    Problem.WRONG_DETAILS,
    Problem.QUALITY,
    Problem.OTHER,
)


def _problem_field(*, pharmacy: bool) -> RadioField:
    return RadioField(
        _l("What's wrong?"),
        # "It doesn't make LDN" is about pharmacies: a prescriber has no such fact to correct.
        choices=[
            (p.value, _l(p.label)) for p in _CORRECTION_PROBLEMS if pharmacy or p != Problem.NO_LDN
        ],
        validators=[InputRequired(_l("Please choose what kind of problem it is."))],
    )


class CorrectionMixin(SubmitterMixin):
    problem = _problem_field(pharmacy=True)
    # On a correction the note is the answer to "What's wrong?", so it sits right under it.
    note = TextAreaField(
        _l("Tell us more (optional)"),
        validators=[Optional(), Length(max=2000)],
        filters=STRIP,
        description=_l("For example: the new phone number or address, or what happened."),
    )


class NewPharmacyForm(SubmitterMixin, PharmacyForm):
    pass


class NewPrescriberForm(SubmitterMixin, PrescriberForm):
    pass


class PharmacyCorrectionForm(CorrectionMixin, PharmacyForm):
    pass


class PrescriberCorrectionForm(CorrectionMixin, PrescriberForm):
    problem = _problem_field(pharmacy=False)


# The fields of a correction's first step ("What's wrong?" and about the sender); every other
# field is the full edit, one step further (a <details> the page opens when it has something).
CORRECTION_FIRST_STEP = frozenset(
    {"problem", "note", "submitter_relation", "submitter_email", "csrf_token", "company_fax"}
)


def form_class(kind: str, *, correction: bool = False) -> type[PharmacyForm] | type[PrescriberForm]:
    if kind == Kind.PHARMACY:
        return PharmacyCorrectionForm if correction else NewPharmacyForm
    return PrescriberCorrectionForm if correction else NewPrescriberForm


# Form fields that hold a listing-dict key under another name.
_DATA_KEY = {
    "state": "region",
    "region_other": "region",
    "fillers_unknown": "fillers",
    "ships_to_countries": "ships_to",
    "licensed_in_countries": "licensed_in",
}


class ListingRules:
    """The public form's rules for listing dicts that did not come through the form (seed rows,
    registry imports, files): `errors(kind, data)` is {listing key: messages}, empty when the
    listing would be accepted.

    Each dict is posted to the form as a browser would post it, so every rule runs as it does
    for a person: Optional() fields, the form-wide checks (an address or telehealth only, a way
    to reach a pharmacy) and the NPI check digit. One instance builds each kind's form once (its
    choices are read from the vocabulary tables then) and re-processes it for every dict: an
    import checks thousands, and building the form was most of each check's time. Needs an app
    context; make a new instance when the vocabularies may have changed."""

    def __init__(self) -> None:
        self._forms: dict[Kind, PharmacyForm | PrescriberForm] = {}

    def _form(self, kind: Kind) -> PharmacyForm | PrescriberForm:
        form = self._forms.get(kind)
        if form is None:
            form_cls = PharmacyForm if kind == Kind.PHARMACY else PrescriberForm
            form = self._forms[kind] = form_cls(formdata=None, meta={"csrf": False})
        return form

    def errors(self, kind: Kind, data: Mapping[str, Any]) -> dict[str, list[str]]:
        form = self._form(kind)
        form.process(formdata=None)  # every field back to its default
        form.fill(dict(data))
        form.process(formdata=_as_posted(form))
        if form.validate():
            return {}
        errors: dict[str, list[str]] = {}
        for name, messages in form.errors.items():
            if isinstance(name, str) and isinstance(messages, list):
                errors.setdefault(_DATA_KEY.get(name, name), []).extend(map(str, messages))
        return errors


def listing_errors(kind: Kind, data: Mapping[str, Any]) -> dict[str, list[str]]:
    """ListingRules for one dict."""
    return ListingRules().errors(kind, data)


def _as_posted(form: ListingForm) -> MultiDict[str, str]:
    """What a browser would send for the form as filled: lists as repeated keys, a ticked box
    as "y", an empty text box or select as "", and nothing for an unticked box or radio."""
    posted: MultiDict[str, str] = MultiDict()
    for field in form:
        value = field.data
        if value is None:
            if not isinstance(field, RadioField | BooleanField | SelectMultipleField):
                posted.add(field.name, "")
        elif isinstance(value, bool):
            if value:
                posted.add(field.name, "y")
        else:
            for item in value if isinstance(value, list) else [value]:
                posted.add(field.name, str(item))
    return posted
