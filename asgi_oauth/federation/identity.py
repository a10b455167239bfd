"""Who an upstream provider says signed in: its stable subject, and claims in our words.

An OpenID Connect provider says it in its ID token (checked by ``id_token``) and, when
it has one, its userinfo endpoint, whose ``sub`` must be the ID token's (OpenID
Connect Core §5.3.4). A plain OAuth 2.0 provider says it through its user API, whose
``subject_field`` is the stable id (GitHub's numeric ``id``: a login can be renamed,
an e-mail address can change hands).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .providers import UpstreamProvider

#: The longest claim value kept; anything longer is dropped, not cut.
_MAX_CLAIM = 2048


@dataclass(frozen=True, slots=True)
class UpstreamTokens:
    """The provider's tokens, for the application to call its API as the person."""

    access_token: str
    refresh_token: str | None = None
    #: When the access token expires; None when the provider did not say.
    expires_at: int | None = None
    scope: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamIdentity:
    """A person as one upstream provider knows them."""

    provider: UpstreamProvider
    issuer: str
    subject: str
    #: Claims in OpenID Connect's words (``name``, ``email``, ``email_verified``,
    #: ``picture``...), as ``UpstreamProvider.claims`` maps them.
    claims: Mapping[str, object]
    #: Everything the provider said: the ID token's claims and userinfo, or the user API.
    raw: Mapping[str, object] = field(repr=False)
    groups: tuple[str, ...] = ()
    organizations: tuple[str, ...] = ()
    #: When the person signed in there (OpenID Connect ``auth_time``), if it said.
    auth_time: int | None = None
    amr: tuple[str, ...] = ()
    tokens: UpstreamTokens | None = field(default=None, repr=False)

    @property
    def verified_email(self) -> str | None:
        """The e-mail address, only if the provider says it verified it."""
        email = self.claims.get("email")
        if isinstance(email, str) and self.claims.get("email_verified") is True:
            return email
        return None


def mapped_claims(provider: UpstreamProvider, raw: Mapping[str, object]) -> dict[str, object]:
    """The provider's fields under our claim names, keeping only plain short values."""
    claims: dict[str, object] = {}
    for ours, theirs in provider.claims.items():
        value = raw.get(theirs)
        if isinstance(value, bool) or (isinstance(value, str) and 0 < len(value) <= _MAX_CLAIM):
            claims[ours] = value
    if claims.get("email_verified") is not True:
        # Only a provider's explicit ``true`` counts (Core §5.1: a boolean).
        claims.pop("email_verified", None)
    return claims


def words(value: object) -> tuple[str, ...]:
    """A claim holding a list of names (groups), as a tuple; anything else as none."""
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


def subject_of(raw: Mapping[str, object], field_name: str) -> str | None:
    """The stable id in a user API answer: a non-empty string, or a number made one."""
    value: Any = raw.get(field_name)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= 255:
        return value
    return None


def primary_email(entries: object) -> tuple[str, bool] | None:
    """The primary address of a GitHub-shaped ``/user/emails`` list, and whether verified."""
    if not isinstance(entries, list):
        return None
    for entry in entries:
        if isinstance(entry, dict) and entry.get("primary") is True:
            email = entry.get("email")
            if isinstance(email, str) and email:
                return email, entry.get("verified") is True
    return None


def tokens_from(response: Mapping[str, Any], now: int) -> UpstreamTokens:
    """What a token response (RFC 6749 §5.1) gives the application to keep."""
    expires_in = response.get("expires_in")
    refresh = response.get("refresh_token")
    scope = response.get("scope")
    return UpstreamTokens(
        access_token=str(response["access_token"]),
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        expires_at=now + int(expires_in)
        if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool)
        else None,
        scope=scope if isinstance(scope, str) else None,
    )
