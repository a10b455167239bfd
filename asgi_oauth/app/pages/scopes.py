"""What each scope means to a person, as the consent pages say it: the operator's
``Settings.scope_descriptions`` first, then a sentence for the standard scopes
(OpenID Connect Core §5.4, §11), then "Use “<scope>”" for any other."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from ...errors import N_
from ..i18n import localized, translator

#: The standard scopes' sentences: OpenID Connect Core §5.4 (the claims each asks
#: for) and §11 (``offline_access``: a refresh token while the person is away).
DEFAULT_SCOPE_DESCRIPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "openid": N_("Confirm who you are"),
        "profile": N_("See your name, username and picture"),
        "email": N_("See your e-mail address"),
        "address": N_("See your postal address"),
        "phone": N_("See your phone number"),
        "offline_access": N_("Keep access while you are away"),
    }
)
#: A configured description: the same text in every language, or one per language.
ScopeDescription = str | Mapping[str, str]


def describe_scope(
    scope: str, descriptions: Mapping[str, ScopeDescription], lang: str = "en"
) -> str:
    """One scope as a sentence in ``lang``; a configured description always wins (a
    ``{lang: text}`` one in ``lang``, its language, else English); the default
    sentences come from the catalogue."""
    configured = descriptions.get(scope)
    if configured is not None:
        text = localized(configured, lang)
        if text is not None:
            return text
    _ = translator(lang)
    default = DEFAULT_SCOPE_DESCRIPTIONS.get(scope)
    return _(default) if default else _("Use “{scope}”").format(scope=scope)


def describe_scopes(
    scopes: Iterable[str], descriptions: Mapping[str, ScopeDescription], lang: str = "en"
) -> tuple[tuple[str, str], ...]:
    """(scope, sentence) pairs in a stable order, for ``ConsentPage.scopes``."""
    return tuple((scope, describe_scope(scope, descriptions, lang)) for scope in sorted(scopes))
