"""JWT access tokens (RFC 9068): what they claim, and how a resource server checks one.

The server still keeps a row for each, so introspection and revocation work
as for opaque tokens; a resource server checks the signature, issuer,
audience and times locally, and asks a revocation list (see ``revocation``)
what was revoked before it expired. The row is keyed by the hash of the
token's ``jti``, not of the whole JWT: the same signature can be encoded in
more than one string (an ECDSA signature's ``s`` or ``n - s``, spare bits of
base64), and a revoked token must stay revoked in every spelling.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Mapping
from typing import Any, TypeGuard

from .crypto import hash_token
from .keys import InvalidJWTError
from .models import IntrospectionResult

#: RFC 9068 §2.1: the ``typ`` header of a JWT access token.
JWT_ACCESS_TOKEN_TYPE = "at+jwt"


def access_token_claims(
    *,
    jti: str,
    issuer: str,
    audience: tuple[str, ...],
    client_id: str,
    subject: str | None,
    scope: frozenset[str],
    now: int,
    lifetime: int,
    jkt: str | None = None,
) -> dict[str, object]:
    """RFC 9068 §2.2; without a resource owner, ``sub`` is the client (§2.2)."""
    claims: dict[str, object] = {
        "iss": issuer,
        "sub": subject if subject is not None else client_id,
        "aud": audience[0] if len(audience) == 1 else list(audience),
        "exp": now + lifetime,
        "iat": now,
        "jti": jti,
        "client_id": client_id,
    }
    if scope:
        claims["scope"] = " ".join(sorted(scope))
    if jkt is not None:
        # RFC 9449 §6.1: the token is bound to this DPoP key.
        claims["cnf"] = {"jkt": jkt}
    return claims


def looks_like_jwt(token: str) -> bool:
    """Whether to check ``token`` as a JWT: a JWS header always starts ``eyJ`` (``{"``)."""
    return token.startswith("eyJ") and token.count(".") == 2


def check_access_token(
    header: Mapping[str, Any],
    claims: Mapping[str, Any],
    *,
    issuer: str,
    audiences: Collection[str],
    now: int,
    leeway: int,
) -> IntrospectionResult:
    """What a verified JWT access token says, if it is one for us now (RFC 9068 §4).

    ``audiences``: the ``aud`` values accepted, one is enough (the resource
    server checks its own among them). Raises ``InvalidJWTError`` for an ID token
    passed as an access token, another issuer or audience, a token expired or
    not yet valid, or a malformed claim.
    """
    if str(header.get("typ", "")).lower() not in (JWT_ACCESS_TOKEN_TYPE, "application/at+jwt"):
        raise InvalidJWTError("not a JWT access token (typ)")
    if claims.get("iss") != issuer:
        raise InvalidJWTError("issued by another server")
    aud = claims.get("aud")
    claimed = [aud] if isinstance(aud, str) else aud
    if (
        not isinstance(claimed, list)
        or not all(isinstance(a, str) for a in claimed)
        or not any(a in audiences for a in claimed)
    ):
        raise InvalidJWTError("meant for another audience")
    jkt = _confirmation_jkt(claims)
    exp, iat = claims.get("exp"), claims.get("iat")
    if not is_json_int(exp) or not is_json_int(iat):
        raise InvalidJWTError("exp and iat must be integers")
    if exp + leeway <= now:
        raise InvalidJWTError("expired")
    if iat - leeway > now:
        raise InvalidJWTError("issued in the future")
    scope, sub, client_id = claims.get("scope", ""), claims.get("sub"), claims.get("client_id")
    if not isinstance(scope, str) or not isinstance(sub, str) or not isinstance(client_id, str):
        raise InvalidJWTError("scope, sub and client_id must be strings")
    return IntrospectionResult(
        active=True,
        scope=frozenset(scope.split()),
        client_id=client_id,
        token_type="Bearer",
        exp=exp,
        iat=iat,
        iss=issuer,
        # RFC 9068 §2.2 names the client as sub when there is no resource owner;
        # introspection of the same token says no sub, and so does this.
        sub=None if sub == client_id else sub,
        aud=tuple(claimed),
        jkt=jkt,
    )


def _confirmation_jkt(claims: Mapping[str, Any]) -> str | None:
    """RFC 9449 §6.1: the DPoP key thumbprint a token is bound to, if any."""
    if "cnf" not in claims:
        return None
    cnf = claims["cnf"]
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    if not isinstance(jkt, str) or not jkt:
        # A confirmation we cannot honour must not leave the token unbound.
        raise InvalidJWTError("cnf must carry a jkt")
    return jkt


def is_json_int(value: object) -> TypeGuard[int]:
    """A JSON number that is an integer: ``true`` is no time (Python's bool is an int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def jti_key(claims: Mapping[str, Any]) -> str | None:
    """The store key of a verified JWT access token: the hash of its ``jti``."""
    jti = claims.get("jti")
    return hash_token(jti) if isinstance(jti, str) and jti else None


def unverified_jti_key(token: str) -> str | None:
    """``jti_key`` of a JWT read without checking its signature: only for an operator
    revoking a token they hold (revoking by a forged ``jti`` grants nothing)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    return jti_key(claims) if isinstance(claims, dict) else None
