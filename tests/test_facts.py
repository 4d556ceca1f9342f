"""The vocabulary (directory/vocabulary.py) and the listing facts pages read instead of comparing
values themselves (directory/facts.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from directory import vocabulary
from directory.models import Guidance, Precision, SRPolicy, Status
from directory.vocabulary import Term, Tone

from . import builders

ROOT = Path(__file__).resolve().parent.parent
TERMS = [
    cls
    for cls in vars(vocabulary).values()
    if isinstance(cls, type) and issubclass(cls, Term) and cls is not Term
]


@pytest.mark.parametrize("cls", TERMS, ids=lambda cls: cls.__name__)
def test_every_value_has_words_and_a_tone(cls: type[Term]) -> None:
    for member in cls:
        assert member.label.strip(), member
        assert isinstance(member.tone, Tone), member
    assert cls.values() == [m.value for m in cls]
    assert cls.choices() == [(m.value, m.label) for m in cls]
    first = next(iter(cls))
    assert cls.parse(first.value) is first and cls(first.value) is first
    assert cls.parse("no such value") is None


def test_a_value_without_words_is_refused() -> None:
    with pytest.raises(TypeError, match="label"):

        class Bare(Term):
            ONLY = "only"


def test_every_tone_a_template_can_show_is_styled_once() -> None:
    css = (ROOT / "directory/static/css/site.css").read_text()
    marks = {Tone.GOOD: "✓", Tone.WARN: "!", Tone.BAD: "✕", Tone.UNKNOWN: "?"}
    for tone, mark in marks.items():
        assert len(re.findall(rf"^\.badge\.tone-{tone}::before \{{", css, re.M)) == 1, tone
        block = css.split(f".badge.tone-{tone}::before {{", 1)[1].split("}", 1)[0]
        assert f'content: "{mark}"' in block, tone
    for tone in (Tone.GOOD, Tone.WARN, Tone.BAD):
        block = css.split(f"\n.tone-{tone} {{", 1)[1].split("}", 1)[0]
        assert f"--tone: var(--{tone});" in block and f"--tone-bg: var(--{tone}-bg);" in block


def test_templates_and_stylesheets_name_no_stored_value_in_a_class() -> None:
    """Colour comes from a tone (`tone-bad`), never from a value (`status-closed`), so a new
    value needs no CSS and no template change."""
    coloured = {m.value for cls in TERMS for m in cls if m.tone != Tone.NEUTRAL}
    named = r"(?!tone-)\w+-(?:" + "|".join(sorted(coloured)) + r")(?![\w-])"
    in_html = re.compile(r"(?<![\w-])" + named + r"|-\{\{[^}]*\.value")
    in_css = re.compile(r"\." + named)
    for path in ROOT.glob("templates/**/*.html"):
        for classes in re.findall(r'class="([^"]*)"', path.read_text()):
            assert not in_html.search(classes), (path.name, classes)
    for path in ROOT.glob("directory/static/css/*.css"):
        assert not in_css.findall(path.read_text()), path.name


def test_templates_type_out_no_values() -> None:
    """Templates show labels and compare members: a stored value typed into a template is a
    second home for it (renaming the value would silently break the page)."""
    values = sorted({v for term in TERMS for v in term.values()}, key=len, reverse=True)
    alternatives = "|".join(map(re.escape, values))
    # A comparison, or a Jinja keyword argument (single quotes: HTML attributes use double).
    quoted = re.compile(rf"""(==|!=)\s*['"]({alternatives})['"]|\w='({alternatives})'""")
    for path in ROOT.glob("templates/**/*.html"):
        text = path.read_text()
        assert not re.search(r"\.value\b", text), path.name
        assert not quoted.search(text), (path.name, quoted.search(text))


def test_status_facts(app) -> None:
    for status in Status:
        listing = builders.pharmacy(status=status.value)
        assert listing.is_open == (status == Status.OPEN)
        assert listing.is_closed == (status == Status.CLOSED)
        assert listing.is_temporarily_closed == (status == Status.TEMPORARILY_CLOSED)


@pytest.mark.parametrize(
    ("fillers", "guidance", "tone"),
    [
        (None, None, Tone.UNKNOWN),
        ([], Guidance.FINE, Tone.GOOD),
        (["mcc"], Guidance.FINE, Tone.GOOD),
        (["mcc", "lactose"], Guidance.CAUTION, Tone.WARN),
        (["lactose", "calcium_carbonate"], Guidance.ADVISED_AGAINST, Tone.BAD),
    ],
)
def test_filler_verdict_and_its_tone(app, fillers, guidance, tone) -> None:
    listing = builders.pharmacy(fillers=fillers)
    assert listing.worst_filler_guidance == guidance
    assert listing.filler_tone == tone


def test_slow_release_advice_follows_every_policy_but_immediate_release(app) -> None:
    assert builders.pharmacy(sr_policy=None).may_make_slow_release is False
    for policy in SRPolicy:
        listing = builders.pharmacy(sr_policy=policy.value)
        assert listing.may_make_slow_release == (policy != SRPolicy.IR_ONLY), policy


def test_makes_ldn_tone(app) -> None:
    assert builders.pharmacy(makes_ldn=True).makes_ldn_tone == Tone.GOOD
    assert builders.pharmacy(makes_ldn=False).makes_ldn_tone == Tone.BAD
    assert builders.pharmacy(makes_ldn=None).makes_ldn_tone == Tone.UNKNOWN


def test_public_pin(app) -> None:
    assert builders.pharmacy().has_public_pin
    assert not builders.pharmacy(lat=None, lon=None, geo_precision=None).has_public_pin
    office = builders.prescriber(telehealth=True)
    remote = builders.prescriber(telehealth=True, telehealth_only=True)
    assert office.has_public_pin and remote.lat is not None and not remote.has_public_pin
    assert remote.geo_precision == Precision.ADDRESS


def test_values_as_a_message_lists_them() -> None:
    assert Guidance.values_text() == "fine, caution or advised_against"
    assert Status.values_text() == "open, temporarily_closed or closed"
