"""The language of the pages: chosen from the authorization request's ``ui_locales``
(OpenID Connect Core §3.1.2.1), else the browser's ``Accept-Language`` (RFC 9110
§12.5.4), and the gettext catalogue that translates them.

The catalogues are the standard gettext ones: ``locale/<lang>/LC_MESSAGES/asgi_oauth.po``
beside the ``.mo`` compiled from it, read with the standard library; ``scripts/i18n``
extracts, updates and compiles them. English is the source language: a text missing
from a catalogue shows in English.
"""

from __future__ import annotations

import gettext
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from starlette.types import Scope

from ..errors import N_, OAuth2Error

#: Where the catalogues live, one directory per language.
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "asgi_oauth"
DEFAULT_LANGUAGE = "en"
#: Languages written right to left (their primary subtag).
_RTL = frozenset({"ar", "he", "fa", "ur"})
#: The most of a header or parameter read: a longer one is cut, not parsed whole.
_MAX_HEADER = 1024

Translate = Callable[[str], str]


@lru_cache(maxsize=1)
def available_languages() -> tuple[str, ...]:
    """English, and each language with a compiled catalogue."""
    found = sorted(
        path.parent.parent.name for path in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.mo")
    )
    return (DEFAULT_LANGUAGE, *(lang for lang in found if lang != DEFAULT_LANGUAGE))


@lru_cache(maxsize=64)
def translations(lang: str) -> gettext.NullTranslations:
    """The catalogue of ``lang``, read once; nothing (English) for a language without one."""
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang], fallback=True)


def translator(lang: str) -> Translate:
    """``gettext`` in ``lang``: a text in, its translation (or itself) out."""
    return translations(lang).gettext


def direction(lang: str) -> str:
    """``rtl`` for a language written right to left, else ``ltr`` (HTML ``dir``)."""
    return "rtl" if _primary(lang) in _RTL else "ltr"


def negotiate(
    ui_locales: str | None,
    accept_language: str | None,
    available: Iterable[str] | None = None,
) -> str:
    """The language to show: the first of ``ui_locales`` (space-separated, in order of
    preference, OpenID Connect Core §3.1.2.1) that is available, else the most wanted of
    ``Accept-Language`` (q-values, RFC 9110 §12.5.4), else English. A tag with a
    region falls back to its language (``fr-CA`` → ``fr``)."""
    offered = {lang.lower(): lang for lang in (available or available_languages())}
    for tag in (ui_locales or "")[:_MAX_HEADER].split():
        found = _lookup(tag, offered)
        if found is not None:
            return found
    for tag in _by_preference(accept_language or ""):
        found = _lookup(tag, offered)
        if found is not None:
            return found
    return DEFAULT_LANGUAGE if DEFAULT_LANGUAGE in offered else next(iter(offered.values()))


def language(scope: Scope, params: Mapping[str, str]) -> str:
    """The language of the pages answering a browser's request: the ``ui_locales`` of
    the authorization request (a parameter, or within ``next``, the request that the
    sign-in page comes back to, so it holds for the whole flow), else its
    ``Accept-Language``."""
    ui_locales = params.get("ui_locales") or _ui_locales_in(params.get("next", ""))
    accept = ",".join(
        value.decode("latin-1") for name, value in scope["headers"] if name == b"accept-language"
    )
    return negotiate(ui_locales, accept)


def _ui_locales_in(next_url: str) -> str | None:
    values = parse_qs(urlsplit(next_url[: _MAX_HEADER * 8]).query).get("ui_locales", [])
    return values[0] if len(values) == 1 else None


def localized(text: str | Mapping[str, str], lang: str) -> str | None:
    """One of a setting's texts in ``lang``: a plain string is the same in every
    language; a mapping ``{lang: text}`` gives ``lang``'s, its language's (``fr`` for
    ``fr-CA``), else English's, else None."""
    if isinstance(text, str):
        return text
    for key in (lang, _primary(lang), DEFAULT_LANGUAGE):
        if key in text:
            return text[key]
    return None


#: What an error means, for a description the catalogue does not have.
_ERROR_MEANINGS = {
    "access_denied": N_("Access was not granted."),
    "invalid_client": N_("The application could not be identified."),
    "invalid_grant": N_("This code is not valid or has expired."),
    "invalid_scope": N_("The application asked for permissions that cannot be granted."),
    "unauthorized_client": N_("The application is not allowed to do this."),
    "server_error": N_("Something went wrong on our side."),
    "temporarily_unavailable": N_("The service is unavailable for a moment. Please try again."),
}
_ERROR_TITLES = {
    400: N_("This request cannot be completed"),
    403: N_("Please start again"),
}


def error_title(error: OAuth2Error, lang: str) -> str:
    """The heading of an error page, by its HTTP status."""
    return translator(lang)(_ERROR_TITLES.get(error.status, N_("Something went wrong")))


def error_message(error: OAuth2Error, lang: str) -> str:
    """An error's description for a person: its template translated, then filled in
    with its values. In a language whose catalogue lacks the description, what its
    error code means stands in for it, rather than a sentence in English."""
    translate = translator(lang)
    meaning = _ERROR_MEANINGS.get(error.error, N_("The request is not valid."))
    template = error.template
    if template is None:
        return translate(meaning)
    translated = translate(template)
    if translated == template and _primary(lang) != DEFAULT_LANGUAGE:
        return translate(meaning)
    try:
        return translated.format(**error.params) if error.params else translated
    except (KeyError, IndexError, ValueError):
        # A translation whose placeholders do not match: the English text, filled in.
        return error.description or translate(meaning)


def _lookup(tag: str, offered: Mapping[str, str]) -> str | None:
    """``tag`` itself if offered, else its primary language (RFC 4647 §3.4 lookup)."""
    tag = tag.strip().lower()
    if tag in offered:
        return offered[tag]
    return offered.get(_primary(tag))


def _primary(tag: str) -> str:
    return tag.split("-", 1)[0].split("_", 1)[0].lower()


def _by_preference(header: str) -> list[str]:
    """The language ranges of an ``Accept-Language`` value, most wanted first (a stable
    sort keeps the header's order between equal weights); ``q=0`` means not wanted."""
    weighted: list[tuple[float, str]] = []
    for item in header[:_MAX_HEADER].split(","):
        tag, *params = (part.strip() for part in item.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if tag and tag != "*" and 0 < weight <= 1:
            weighted.append((weight, tag))
    weighted.sort(key=lambda pair: -pair[0])
    return [tag for _, tag in weighted]
