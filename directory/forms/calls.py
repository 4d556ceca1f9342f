"""The call list's forms: its filters (a GET form) and the one-screen confirm form, with a
pharmacy's and a prescriber's questions. Choices come from the vocabulary and its tables; a
value outside them is a message next to the field (and a 400), never a crash."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from ..models import CallOutcome, Kind, SRPolicy
from ..moderation.calls import CallFilters
from ..vocabulary import CallDue
from .fields import STRIP, TRI_STATE, MultiCheckboxField, none_if_empty
from .listing import _states

ANY = ("", "Any")
# WTForms takes invalid_choice_message; its type stubs leave it out.
FROM_THE_LIST: dict[str, Any] = {"invalid_choice_message": "Please choose from the list."}


class CallFilterForm(FlaskForm):
    """The list's filters, from the query string (no CSRF: it changes nothing)."""

    class Meta:
        csrf = False

    # Default "" (any): a missing argument is "any", and is among the choices.
    state = SelectField("State", default="", **FROM_THE_LIST)
    kind = SelectField("Kind", choices=[ANY, *Kind.choices()], default="", **FROM_THE_LIST)
    due = SelectField(
        "Why it is on the list",
        choices=[ANY, *CallDue.choices()],
        default="",
        **FROM_THE_LIST,
    )
    page = IntegerField("Page", default=1, validators=[Optional(), NumberRange(min=1)])

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state.choices = [("", "Any state"), *_states()]

    def filters(self) -> CallFilters:
        return CallFilters(
            region=self.state.data or None,
            kind=Kind.parse(self.kind.data) if self.kind.data else None,
            due=CallDue.parse(self.due.data) if self.due.data else None,
            page=self.page.data or 1,
        )

    def args(self, **changes: Any) -> dict[str, Any]:
        """The filters as query-string arguments, to keep them from one screen to the next."""
        out = {
            "state": self.state.data or None,
            "kind": self.kind.data or None,
            "due": self.due.data or None,
        }
        out.update(changes)
        return {k: v for k, v in out.items() if v}


def _yes_no(value: str | None) -> bool | None:
    return {"yes": True, "no": False}.get(value or "")


class CallForm(FlaskForm):
    """How the call went, and what they said. Only a confirmed call's answers are saved, so
    the answers' radio buttons are not required (a missing one is its default); a value
    outside their choices is still an error."""

    outcome = RadioField(
        "How did the call go?",
        **FROM_THE_LIST,
        choices=CallOutcome.choices(),
        validators=[InputRequired("Please say how the call went.")],
    )
    note = TextAreaField(
        "Note for other volunteers (optional)",
        validators=[Optional(), Length(max=500)],
        filters=[none_if_empty],
        description="Who you spoke to, when to call back. Not shown to patients.",
    )

    kind: Kind

    def answers(self) -> dict[str, Any]:
        raise NotImplementedError

    def fill(self, data: dict[str, Any]) -> None:
        raise NotImplementedError


class PharmacyCallForm(CallForm):
    kind = Kind.PHARMACY
    sr_policy = RadioField(
        "Immediate-release or slow-release?",
        **FROM_THE_LIST,
        choices=SRPolicy.choices(),
        default=SRPolicy.UNKNOWN.value,
        validators=[],
    )
    fillers = MultiCheckboxField("Which filler do they use in capsules?")
    fillers_unknown = BooleanField("They didn't say which filler")
    dosage_forms = MultiCheckboxField("Which forms do they make?")
    mail_order = RadioField(
        "Do they mail prescriptions?",
        **FROM_THE_LIST,
        choices=[("yes", "Yes"), ("no", "No")],
        default="no",
        validators=[],
    )
    ships_to = MultiCheckboxField("To which states?")
    price_notes = StringField(
        "Rough price",
        validators=[Optional(), Length(max=500)],
        filters=STRIP,
        description="For example: about $30 for 30 capsules of 4.5 mg.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from ..models import DosageForm, Filler, vocabulary_rows

        self.dosage_forms.choices = [(d.code, d.name) for d in vocabulary_rows(DosageForm)]
        self.fillers.choices = [(f.code, f.name) for f in vocabulary_rows(Filler)]
        self.ships_to.choices = _states()

    def answers(self) -> dict[str, Any]:
        return {
            "sr_policy": self.sr_policy.data,
            "fillers": None if self.fillers_unknown.data else sorted(self.fillers.data or []),
            "dosage_forms": sorted(self.dosage_forms.data or []),
            "mail_order": self.mail_order.data == "yes",
            "ships_to": sorted(self.ships_to.data or []) if self.mail_order.data == "yes" else [],
            "price_notes": self.price_notes.data or None,
        }

    def fill(self, data: dict[str, Any]) -> None:
        self.sr_policy.data = data.get("sr_policy") or SRPolicy.UNKNOWN.value
        self.fillers_unknown.data = data.get("fillers") is None
        self.fillers.data = data.get("fillers") or []
        self.dosage_forms.data = data.get("dosage_forms") or []
        self.mail_order.data = "yes" if data.get("mail_order") else "no"
        self.ships_to.data = [c for c in data.get("ships_to") or [] if c.startswith("US-")]
        self.price_notes.data = data.get("price_notes") or ""


class PrescriberCallForm(CallForm):
    kind = Kind.PRESCRIBER
    telehealth = RadioField(
        "Do they see patients by telehealth?",
        **FROM_THE_LIST,
        choices=[("yes", "Yes"), ("no", "No")],
        default="no",
        validators=[],
    )
    licensed_in = MultiCheckboxField("In which states are they licensed?")
    accepting_new_patients = RadioField(
        "Are they taking new patients?",
        **FROM_THE_LIST,
        choices=TRI_STATE,
        default="unknown",
        validators=[],
    )
    conditions = MultiCheckboxField("Which conditions do they treat with LDN?")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from ..models import Condition, vocabulary_rows

        self.licensed_in.choices = _states()
        self.conditions.choices = [(c.code, c.name) for c in vocabulary_rows(Condition)]

    def answers(self) -> dict[str, Any]:
        return {
            "telehealth": self.telehealth.data == "yes",
            "licensed_in": sorted(self.licensed_in.data or []),
            "accepting_new_patients": _yes_no(self.accepting_new_patients.data),
            "conditions": sorted(self.conditions.data or []),
        }

    def fill(self, data: dict[str, Any]) -> None:
        self.telehealth.data = "yes" if data.get("telehealth") else "no"
        self.licensed_in.data = [c for c in data.get("licensed_in") or [] if c.startswith("US-")]
        new = data.get("accepting_new_patients")
        self.accepting_new_patients.data = "unknown" if new is None else ("yes" if new else "no")
        self.conditions.data = data.get("conditions") or []


def call_form(kind: Kind, **kwargs: Any) -> CallForm:
    cls = PharmacyCallForm if kind == Kind.PHARMACY else PrescriberCallForm
    return cls(**kwargs)
