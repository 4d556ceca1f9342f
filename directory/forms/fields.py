"""Field types and filters every form uses."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import SelectMultipleField
from wtforms.validators import ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ..i18n import N_


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def pre_validate(self, form: Any) -> None:
        # Unknown codes (a forged request) get a message, not a crash.
        known = {choice[0] for choice in (self.choices or [])}
        unknown = [v for v in (self.data or []) if v not in known]
        if unknown:
            raise ValidationError(_("Please choose from the list."))


def strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def none_if_empty(value: Any) -> Any:
    value = strip(value)
    return value or None


STRIP = [strip]
TRI_STATE = [("yes", _l("Yes")), ("no", _l("No")), ("unknown", _l("Don't know"))]
COUNTRY_HINT = N_("Two-letter country code, e.g. US, GB, CA.")
