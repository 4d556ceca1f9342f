"""Every fixed set of values the directory stores, each value with its plain-words label and
its tone, in one place.

Models store the values, forms offer `choices()`, templates show `.label` and colour by
`.tone` (CSS has tone classes, never value selectors), the OpenAPI document lists `values()`.
Adding a value here is the whole change: nothing else types the values out.

Tones say what a value means for a patient: good (a reason to trust), warn (take care),
bad (a reason to look elsewhere), unknown (nobody has said), neutral (just a fact).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Self

from flask_babel import LazyString, lazy_gettext

from .i18n import N_, translated


class Tone(StrEnum):
    GOOD = "good"
    WARN = "warn"
    BAD = "bad"
    UNKNOWN = "unknown"
    NEUTRAL = "neutral"


class Term(StrEnum):
    """A stored value with its label and tone: `Status.CLOSED.label`, `.tone`."""

    _value_: str
    label: str
    tone: Tone

    if TYPE_CHECKING:
        # `Kind("pharmacy")` is a lookup by value (Enum's metaclass never calls __new__ for it);
        # type checkers read it as a call to __new__, so they are shown a signature that allows it.
        def __new__(cls, value: str, label: str = ..., tone: Tone = ...) -> Self: ...
    else:

        def __new__(cls, value: str, label: str, tone: Tone = Tone.NEUTRAL) -> Self:
            member = str.__new__(cls, value)
            member._value_ = value
            member.label = label
            member.tone = tone
            return member

    @property
    def text(self) -> str:
        """The label in the visitor's language (`label` stays English: moderation, the
        exports and the API's descriptions use it)."""
        return translated(self.label)

    @classmethod
    def values(cls) -> list[str]:
        return [m.value for m in cls]

    @classmethod
    def values_text(cls) -> str:
        """The values as a message lists them: "fine, caution or advised_against"."""
        *most, last = cls.values()
        return f"{', '.join(most)} or {last}" if most else last

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        """(value, label) pairs for a WTForms SelectField or RadioField."""
        return [(m.value, m.label) for m in cls]

    @classmethod
    def lazy_choices(cls) -> list[tuple[str, LazyString]]:
        """choices() for a public form defined at import time: each label in the language of
        the request that shows it."""
        return [(m.value, lazy_gettext(m.label)) for m in cls]

    @classmethod
    def parse(cls, value: object) -> Self | None:
        """The member for a value typed by a person or read from a file, or None."""
        text = str(value)
        return next((m for m in cls if m.value == text), None)


class Kind(Term):
    PHARMACY = "pharmacy", N_("Pharmacy")
    PRESCRIBER = "prescriber", N_("Prescriber")


class Precision(Term):
    """How exactly a map pin stands for its place ("Map pin placed by street address")."""

    COORDINATES = "coordinates", N_("exact point")
    ADDRESS = "address", N_("street address")
    POSTAL_CODE = "postal_code", N_("postal code area")
    CITY = "city", N_("city")
    REGION = "region", N_("state or country")


class SRPolicy(Term):
    IR_ONLY = "ir_only", N_("Makes immediate-release LDN only"), Tone.GOOD
    SR_ON_REQUEST = (
        "sr_on_request",
        N_("Makes slow-release LDN only when a prescription asks for it"),
        Tone.WARN,
    )
    SR_DEFAULT = "sr_default", N_("Makes slow-release LDN unless told otherwise"), Tone.BAD
    UNKNOWN = "unknown", N_("We don't know whether it makes slow-release LDN"), Tone.UNKNOWN


class Status(Term):
    OPEN = "open", N_("Open"), Tone.GOOD
    TEMPORARILY_CLOSED = "temporarily_closed", N_("Temporarily closed"), Tone.WARN
    CLOSED = "closed", N_("Closed"), Tone.BAD


class Guidance(Term):
    """What the curated lists say of a filler, worst last (the order matters: see
    ListingFacts.worst_filler_guidance)."""

    FINE = "fine", N_("Fine"), Tone.GOOD
    CAUTION = "caution", N_("Take care"), Tone.WARN
    ADVISED_AGAINST = "advised_against", N_("Advised against"), Tone.BAD


class FlagType(Term):
    CURATED_LIST = "curated_list", N_("On a curated list"), Tone.GOOD
    ACCREDITATION = "accreditation", N_("Accreditation"), Tone.GOOD
    PROBLEM_REPORT = "problem_report", N_("Problem report"), Tone.BAD


class VerifyMethod(Term):
    """How a moderator checked; the label finishes "Verified 3 months ago …"."""

    PHONE = "phone", N_("by phone")
    WEBSITE = "website", N_("from its website")
    IN_PERSON = "in_person", N_("in person")


class RegionRole(Term):
    SHIPS_TO = "ships_to", "Ships to"
    LICENSED_IN = "licensed_in", "Licensed in"


class Role(Term):
    MODERATOR = "moderator", "Moderator"
    ADMIN = "admin", "Admin"


class SubmissionType(Term):
    NEW = "new", "New listing"
    CORRECTION = "correction", "Correction"


class SubmissionStatus(Term):
    PENDING = "pending", "Waiting for review", Tone.WARN
    APPROVED = "approved", "Approved", Tone.GOOD
    REJECTED = "rejected", "Rejected", Tone.BAD
    MERGED = "merged", "Merged into a listing", Tone.NEUTRAL


class Problem(Term):
    """What a correction says is wrong (the first question of the correction form)."""

    WRONG_DETAILS = "wrong_details", N_("Some details are wrong")
    CLOSED = "closed", N_("It has closed"), Tone.BAD
    MOVED = "moved", N_("It has moved"), Tone.WARN
    NO_LDN = "no_ldn", N_("It doesn't make LDN"), Tone.BAD
    WRONG_PHONE = "wrong_phone", N_("The phone number is wrong"), Tone.WARN
    QUALITY = "quality", N_("A quality concern"), Tone.BAD
    SR_FILLERS = "sr_fillers", N_("The slow-release or filler information is wrong"), Tone.WARN
    OTHER = "other", N_("Something else")


class Resolution(Term):
    """What a moderator decides on a problem report, besides approving its proposed values:
    each does exactly what its label says (moderation.resolve)."""

    CLOSE = "close", "Mark closed and resolve", Tone.BAD
    NOT_LDN = "not_ldn", "Mark as not making LDN and resolve", Tone.BAD


# The decision a problem report asks for, offered first on its review page.
SUGGESTED_RESOLUTION = {Problem.CLOSED: Resolution.CLOSE, Problem.NO_LDN: Resolution.NOT_LDN}


class Relation(Term):
    """How the person who sent a suggestion knows the place (in their own words)."""

    STAFF = "staff", N_("I work there")
    PATIENT = "patient", N_("I am a patient there")
    OTHER = "other", N_("Other")


class CallOutcome(Term):
    """How a volunteer's call to a listing ended (the call list's confirm screen)."""

    CONFIRMED = "confirmed", "They answered: save their answers", Tone.GOOD
    NO_ANSWER = "no_answer", "No answer / call back later", Tone.UNKNOWN
    NO_LDN = "no_ldn", "Does not make or prescribe LDN", Tone.BAD
    CLOSED = "closed", "Closed for good", Tone.BAD


class CallDue(Term):
    """Why a listing is on the call list: nobody has ever confirmed it, or the last
    confirmation is over a year old (facts.STALE_AFTER)."""

    NEVER = "never", "Never confirmed"
    STALE = "stale", "Confirmed over a year ago"
