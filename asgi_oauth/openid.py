"""OpenID Connect on top of OAuth 2.0: ID tokens, user claims and ``id_token_hint``.

An ID token (OpenID Connect Core §2) says who signed in, to which client,
when and how. Claims about the user beyond ``sub`` come from a hook the host
application gives, filtered by the scopes granted (§5.4).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from .jws_algorithms import half_hash
from .jwt_access_tokens import is_json_int
from .keys import InvalidJWTError, KeySet
from .models import Client

#: The host's claims about a user: subject and granted scopes in, claims out.
UserClaims = Callable[[str, frozenset[str]], Awaitable[Mapping[str, object]]]

OPENID_SCOPE = "openid"

#: OpenID Connect Core §5.4: the standard claims each scope asks for.
SCOPE_CLAIMS: Mapping[str, frozenset[str]] = {
    "profile": frozenset(
        {
            "name",
            "family_name",
            "given_name",
            "middle_name",
            "nickname",
            "preferred_username",
            "profile",
            "picture",
            "website",
            "gender",
            "birthdate",
            "zoneinfo",
            "locale",
            "updated_at",
        }
    ),
    "email": frozenset({"email", "email_verified"}),
    "address": frozenset({"address"}),
    "phone": frozenset({"phone_number", "phone_number_verified"}),
}
_STANDARD_CLAIMS = frozenset().union(*SCOPE_CLAIMS.values())
#: Claims the server sets itself; a hook cannot override them.
_PROTOCOL_CLAIMS = frozenset(
    {
        "iss", "sub", "aud", "exp", "iat", "nbf", "jti", "auth_time", "nonce", "acr",
        "amr", "azp", "at_hash", "c_hash", "sid", "scope", "client_id", "cnf",
    }
)  # fmt: skip


def is_openid(scope: frozenset[str]) -> bool:
    return OPENID_SCOPE in scope


def allowed_claims(claims: Mapping[str, object], scope: frozenset[str]) -> dict[str, object]:
    """The hook's claims a client may see: standard ones only with their scope (§5.4),
    the host's own ones as given, never one that would override a protocol claim."""
    granted = frozenset().union(*(SCOPE_CLAIMS.get(s, frozenset()) for s in scope))
    return {
        name: value
        for name, value in claims.items()
        if name not in _PROTOCOL_CLAIMS and (name in granted or name not in _STANDARD_CLAIMS)
    }


@dataclass(frozen=True, slots=True)
class Authentication:
    """Who signed in, and when and how: what every ID token of a grant repeats."""

    subject: str
    auth_time: int | None = None
    acr: str | None = None
    amr: tuple[str, ...] = ()
    nonce: str | None = None


def id_token_claims(
    *,
    issuer: str,
    client: Client,
    authentication: Authentication,
    now: int,
    lifetime: int,
    user_claims: Mapping[str, object] | None = None,
    access_token: str | None = None,
    code: str | None = None,
) -> dict[str, object]:
    """The claims of an ID token (OpenID Connect Core §2, §3.3.2.11), the hashes by
    the algorithm ``client`` registered, which signs it."""
    claims: dict[str, object] = dict(user_claims or {})
    claims.update(
        iss=issuer,
        sub=authentication.subject,
        aud=client.client_id,
        exp=now + lifetime,
        iat=now,
    )
    if authentication.auth_time is not None:
        claims["auth_time"] = authentication.auth_time
    if authentication.nonce is not None:
        claims["nonce"] = authentication.nonce
    if authentication.acr is not None:
        claims["acr"] = authentication.acr
    if authentication.amr:
        claims["amr"] = list(authentication.amr)
    alg = client.id_token_signed_response_alg
    if access_token is not None:
        claims["at_hash"] = half_hash(access_token, alg)
    if code is not None:
        claims["c_hash"] = half_hash(code, alg)
    return claims


async def id_token_hint_subject(
    keys: KeySet, hint: str, *, issuer: str, client_id: str, now: int, leeway: int
) -> str:
    """The ``sub`` of an ID token we issued to this client and that has not expired
    (OpenID Connect Core §3.1.2.1); ``InvalidJWTError`` for anything else."""
    header, claims = await keys.verify_fresh(hint)
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    exp = claims.get("exp")
    subject = claims.get("sub")
    if header.get("typ") not in (None, "JWT"):
        raise InvalidJWTError("not an ID token")
    if claims.get("iss") != issuer or not isinstance(audiences, list) or client_id not in audiences:
        raise InvalidJWTError("issued by another server or to another client")
    if not is_json_int(exp) or exp + leeway <= now:
        raise InvalidJWTError("expired")
    if not isinstance(subject, str) or not subject:
        raise InvalidJWTError("no subject")
    return subject


async def logout_hint_claims(
    keys: KeySet, hint: str, *, issuer: str
) -> tuple[str, tuple[str, ...]]:
    """The ``sub`` and audiences of an ID token we issued, expired or not: the
    ``id_token_hint`` of a sign-out request (RP-Initiated Logout 1.0 §2 accepts one
    whose lifetime has passed); ``InvalidJWTError`` for anything else."""
    header, claims = await keys.verify_fresh(hint)
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    subject = claims.get("sub")
    if header.get("typ") not in (None, "JWT"):
        raise InvalidJWTError("not an ID token")
    if claims.get("iss") != issuer:
        raise InvalidJWTError("issued by another server")
    if not isinstance(audiences, list) or not audiences:
        raise InvalidJWTError("no audience")
    if not all(isinstance(a, str) for a in audiences):
        raise InvalidJWTError("an audience is not a string")
    if not isinstance(subject, str) or not subject:
        raise InvalidJWTError("no subject")
    return subject, tuple(audiences)
