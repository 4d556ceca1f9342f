"""The search form: what the page, the API and the CLI accept as a search, and the message for
each thing that is wrong with one. A GET form bound to the query string (the CLI maps its
options onto the same names), so a search has a shareable address. The values it offers
(radius bounds, units, kinds, filters) come from directory/search.py and the vocabulary tables;
the template prints them from here."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import Field, SearchField, SelectField
from wtforms.validators import ValidationError
from wtforms.widgets import CheckboxInput, HiddenInput, Input, NumberInput, TextInput

from .. import geomath, search
from ..i18n import N_, translated
from ..models import Condition, DosageForm, Kind, vocabulary_rows
from .fields import none_if_empty

MAX_PLACE_LENGTH = 200
# What people type when they mean "where I am": the place search can't answer that, the
# browser's location can.
HERE_WORDS = frozenset(
    {"near me", "me", "here", "nearby", "near", "my location", "current location", "my area"}
)
TRUE_VALUES = frozenset({"1", "true", "on", "yes", "y"})
# Which kind of listing a filter applies to, as its hint says it.
KIND_HINTS: dict[str, str] = {Kind.PHARMACY: N_("pharmacies"), Kind.PRESCRIBER: N_("prescribers")}
FALSE_VALUES = frozenset({"", "0", "false", "off", "no", "n"})
# Plain decimal numbers only: float() would also take "1_0", "1e-7" and Arabic-Indic digits.
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
# A typed-back value that was wrong is shown as typed, cut to this length.
_SHOWN_BACK = 20

NEED_A_PLACE = _l("Please tell us where you are: a ZIP code, a city and state, or an address.")
PLACE_TOO_LONG = _l("Please use a shorter place name: a ZIP code or a city and state is enough.")
USE_MY_LOCATION = _l(
    "To search near where you are, use the “Use my location” button, or type your ZIP code or town."
)
TOGETHER = _l("Latitude and longitude must be given together.")
LAT_MESSAGE = _l(
    "Latitude must be a number between %(low)g and %(high)g.",
    low=geomath.LAT_RANGE[0],
    high=geomath.LAT_RANGE[1],
)
LON_MESSAGE = _l(
    "Longitude must be a number between %(low)g and %(high)g.",
    low=geomath.LON_RANGE[0],
    high=geomath.LON_RANGE[1],
)
RADIUS_NOT_A_NUMBER = _l("The distance must be a number, like 25.")
RADIUS_RANGE = _l(
    "The distance must be a number from %(low)d to %(high)d.",
    low=search.MIN_RADIUS,
    high=search.MAX_RADIUS,
)
UNIT_MESSAGE = _l("The unit must be mi (miles) or km (kilometres).")
KIND_MESSAGE = _l("Choose pharmacies, prescribers or both.")
PAGE_MESSAGE = _l("The page must be a whole number from 1 to %(high)d.", high=search.MAX_PAGE)


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _choice_or(default: str) -> Callable[[object], str]:
    """A filter: the typed choice, trimmed and lower-cased, or `default` when none was sent."""
    return lambda value: _text(value).lower() or default


class TypedNumberField(Field):
    """A number as people type it. `text` keeps what was typed (trimmed), `data` the number,
    or None when the text is not one; with nothing typed, `data` is the default."""

    widget: Input = TextInput()
    text = ""

    def parse(self, text: str) -> float | int | None:
        return float(text) if _DECIMAL.fullmatch(text) else None

    def process_formdata(self, valuelist: list[Any]) -> None:
        if valuelist:
            self.text = _text(valuelist[0])
            self.data = self.parse(self.text) if self.text else self.default

    def check(self, low: float, high: float, message: str, not_a_number: str) -> None:
        """Out of range or not a number: the message, and the default in its place."""
        if not self.text:
            return
        if self.data is None or not low <= self.data <= high:
            wrong = message if self.data is not None else not_a_number
            self.data = self.default
            raise ValidationError(wrong)

    def _value(self) -> str:
        if self.errors:
            return self.text[:_SHOWN_BACK]
        return search.format_number(self.data) if self.data is not None else ""


class WholeNumberField(TypedNumberField):
    def parse(self, text: str) -> int | None:
        # ASCII digits only, and short: "²".isdigit() is True but int("²") raises, and int()
        # refuses strings of more than 4300 digits.
        return int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else None


class CoordinateField(TypedNumberField):
    """Latitude or longitude from the browser, kept in a hidden field between searches."""

    widget = HiddenInput()

    def _value(self) -> str:
        return f"{self.data:.5f}" if self.data is not None else ""


class FlagField(Field):
    """A filter that is on or off: a checkbox on the page, `name=1` in the API."""

    widget = CheckboxInput()
    text = ""

    def process_formdata(self, valuelist: list[Any]) -> None:
        if valuelist:
            self.text = _text(valuelist[0]).lower()
            self.data = self.text in TRUE_VALUES

    def pre_validate(self, form: Any) -> None:
        if self.text not in TRUE_VALUES | FALSE_VALUES:
            self.data = False
            raise ValidationError(_("%(name)s must be 1 or 0.", name=self.name))

    def _value(self) -> str:
        return "1"


class VocabularyField(SelectField):
    """A code from a vocabulary table, or none ("Any"). The table is read only when the
    choices are (the page's drop-down, or a search that names a code), so most API searches
    never query it."""

    def __init__(
        self, label: str, model: type[DosageForm] | type[Condition], applies: str, **kwargs: Any
    ) -> None:
        super().__init__(
            label,
            description=_l(KIND_HINTS[applies]),
            choices=lambda: [
                ("", _("Any")),
                *((row.code, translated(row.name)) for row in vocabulary_rows(model)),
            ],
            validate_choice=False,
            filters=[none_if_empty],
            **kwargs,
        )

    def pre_validate(self, form: Any) -> None:
        if self.data and self.data not in {choice[0] for choice in self.iter_choices()}:
            self.data = None
            what = self.name.replace("_", " ")
            raise ValidationError(_("Unknown %(what)s: choose one from the list.", what=what))


class PlaceField(SearchField):
    """The place box. A wrong place is shown back as typed (cut to the box's size)."""

    def _value(self) -> str:
        if self.errors and self.raw_data:
            return str(self.raw_data[0])[:MAX_PLACE_LENGTH]
        return self.data or ""


class _WhereAndHowFar(FlaskForm):
    """The search form's first fields; the flag filters follow them (see below), so the
    messages of a search come in the order of the form."""

    class Meta:
        # A search changes nothing and its address is meant to be shared and bookmarked.
        csrf = False

    near = PlaceField(
        _l("Where are you?"),
        description=_l("ZIP code, city and state, or an address"),
        filters=[_text],
        render_kw={"maxlength": MAX_PLACE_LENGTH, "autocomplete": "postal-code"},
    )
    lat = CoordinateField(default=None)
    lon = CoordinateField(default=None)
    radius = TypedNumberField(
        _l("Within"),
        default=search.DEFAULT_RADIUS,
        widget=NumberInput(step="any", min=search.MIN_RADIUS, max=search.MAX_RADIUS),
        render_kw={"inputmode": "decimal"},
    )
    unit = SelectField(
        _l("Unit"),
        choices=[(code, _l(unit.name)) for code, unit in search.UNITS.items()],
        validate_choice=False,
        filters=[_choice_or(search.DEFAULT_UNIT)],
    )
    kind = SelectField(
        _l("Looking for"),
        choices=[(kind, _l(label)) for kind, label in search.KIND_CHOICES],
        validate_choice=False,
        filters=[_choice_or(search.BOTH)],
    )
    page = WholeNumberField(default=1)


# One checkbox per filter in search.FLAG_FILTERS, named as the API names it; the hint says
# which kind of listing a filter applies to.
_FLAG_FIELDS = {
    name: FlagField(
        _l(label),
        id=f"f-{name}",
        default=False,
        description="" if applies == search.BOTH else _l(KIND_HINTS[applies]),
    )
    for name, (applies, label) in search.FLAG_FILTERS.items()
}


# How the folded filter panel names each filter on, in a few words: its one-line summary reads
# "Pharmacies · immediate-release only · fillers fine or take care · 25 mi". The same words as
# the checkboxes and the cards' badges, shorter.
SUMMARY_WORDS = {
    "reliable": _l("on a curated list"),
    "verified": _l("checked in the last 12 months"),
    "ir_only": _l("immediate-release only"),
    "safe_fillers": _l("fillers fine or take care"),
    "confirmed": _l("confirmed to make LDN"),
    "telehealth": _l("offers telehealth"),
    "accepting": _l("accepting new patients"),
}
KIND_WORDS = {
    search.BOTH: _l("Pharmacies and prescribers"),
    "pharmacy": _l("Pharmacies"),
    "prescriber": _l("Prescribers"),
}


class SearchForm(_WhereAndHowFar):
    dosage_form = VocabularyField(
        _l("Form of LDN"), DosageForm, search.CHOICE_FILTERS["dosage_form"]
    )
    condition = VocabularyField(
        _l("Condition treated"), Condition, search.CHOICE_FILTERS["condition"]
    )

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> SearchForm:
        """The form bound to query-string style data (request.args, or the CLI's options)."""
        formdata = args if isinstance(args, MultiDict) else MultiDict(args)
        return cls(formdata=formdata)

    def validate(self, extra_validators: Mapping[str, Sequence[Any]] | None = None) -> bool:
        super().validate(extra_validators)
        if not self.near.data and self.position() is None:
            if not (self.lat.errors or self.lon.errors):
                self.near.errors = [*self.near.errors, NEED_A_PLACE]
        return not self.errors

    def validate_near(self, field: Field) -> None:
        if len(field.data) > MAX_PLACE_LENGTH:
            field.data = field.data[:MAX_PLACE_LENGTH]
            raise ValidationError(PLACE_TOO_LONG)
        if " ".join(re.findall(r"\w+", field.data.casefold())) in HERE_WORDS:
            raise ValidationError(USE_MY_LOCATION)

    def _position_sent(self) -> bool:
        # A typed place wins over a browser position (the form keeps the last one in hidden
        # fields), so a stale or broken position never blocks a new search.
        return not self.near.data and bool(self.lat.text or self.lon.text)

    def validate_lat(self, field: Field) -> None:
        if not self._position_sent():
            self.lat.data = self.lon.data = None
        elif not (self.lat.text and self.lon.text):
            self.lat.data = self.lon.data = None
            raise ValidationError(TOGETHER)
        # Each part on its own, so each gets its own message. A number out of range stays in
        # the (hidden) field, as sent.
        elif self.lat.data is None or not geomath.valid_lat_lon(self.lat.data, 0.0):
            raise ValidationError(LAT_MESSAGE)

    def validate_lon(self, field: Field) -> None:
        if not (self._position_sent() and self.lat.text and self.lon.text):
            self.lon.data = None
        elif self.lon.data is None or not geomath.valid_lat_lon(0.0, self.lon.data):
            raise ValidationError(LON_MESSAGE)

    def validate_radius(self, field: TypedNumberField) -> None:
        field.check(search.MIN_RADIUS, search.MAX_RADIUS, RADIUS_RANGE, RADIUS_NOT_A_NUMBER)

    def validate_unit(self, field: Field) -> None:
        if field.data not in search.UNITS:
            field.data = search.DEFAULT_UNIT
            raise ValidationError(UNIT_MESSAGE)

    def validate_kind(self, field: Field) -> None:
        if field.data not in search.KINDS:
            field.data = search.BOTH
            raise ValidationError(KIND_MESSAGE)

    def validate_page(self, field: TypedNumberField) -> None:
        field.check(1, search.MAX_PAGE, PAGE_MESSAGE, PAGE_MESSAGE)

    # --- what the search and the template read -----------------------------------------------

    def position(self) -> tuple[float, float] | None:
        if self.lat.data is None or self.lon.data is None:
            return None
        return self.lat.data, self.lon.data

    def flag_fields(self) -> Iterator[FlagField]:
        for name in search.FLAG_FILTERS:
            yield self[name]

    def params(self) -> search.Params:
        """The search this form asks for; after validate(), wrong values are the defaults."""
        lat, lon = self.position() or (None, None)
        return search.Params(
            near=self.near.data or "",
            lat=lat,
            lon=lon,
            radius=self.radius.data,
            unit=self.unit.data,
            kind=self.kind.data,
            page=self.page.data,
            filters=frozenset(f.name for f in self.flag_fields() if f.data),
            dosage_form=self.dosage_form.data,
            condition=self.condition.data,
        )

    def add_errors(self, errors: Mapping[str, str]) -> None:
        """Messages found by running the search (an unknown place, a page past the last)."""
        for name, message in errors.items():
            self[name].errors = [*self[name].errors, message]

    def messages(self) -> dict[str, str]:
        """One message per parameter, for the API's `fields` and the page's summary."""
        # str(): a message may be a lazy translation, which JSON and str.join don't take.
        return {name: str(errors[0]) for name, errors in self.errors.items() if errors}

    @property
    def filters_on(self) -> int:
        return sum(1 for f in self.flag_fields() if f.data) + sum(
            1 for f in (self.dosage_form, self.condition) if f.data
        )

    @property
    def filters_open(self) -> bool:
        """The filters open only when one of them has a message. After a search they fold, so
        on a phone the results come first; the summary line says which are on."""
        return bool(set(self.errors) - {"near"})

    def summary(self) -> list[str]:
        """The search's settings in a few words each, for the folded panel's one line: what it
        looks for, the filters that are on, the distance."""
        parts = [str(KIND_WORDS.get(self.kind.data, KIND_WORDS[search.BOTH]))]
        parts += [str(SUMMARY_WORDS[f.name]) for f in self.flag_fields() if f.data]
        for choice in (self.dosage_form, self.condition):
            if choice.data:
                names = dict((code, name) for code, name, *_rest in choice.iter_choices())
                parts.append(str(names.get(choice.data, choice.data)))
        radius = self.radius.data if self.radius.data is not None else search.DEFAULT_RADIUS
        unit = self.unit.data if self.unit.data in search.UNITS else search.DEFAULT_UNIT
        parts.append(_("%(radius)s %(unit)s", radius=search.format_number(radius), unit=unit))
        return parts

    @property
    def has_place(self) -> bool:
        return bool(self.near.data) or self.position() is not None


for _name, _field in _FLAG_FIELDS.items():
    setattr(SearchForm, _name, _field)
