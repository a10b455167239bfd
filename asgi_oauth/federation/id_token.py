"""Checking an upstream provider's ID token (OpenID Connect Core §3.1.3.7), with joserfc.

The signature by one of the provider's published keys, with an algorithm it says it
uses (never ``none``, never a MAC keyed by our client secret); then ``iss``, ``aud``,
``azp``, the times and the ``nonce`` the sign-in sent, which binds the token to this
browser's sign-in.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from ..jws_algorithms import registry_of
from ..jwt_access_tokens import is_json_int

#: Signature algorithms (RFC 7518 §3, RFC 8037) accepted from a provider.
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class IDTokenError(ValueError):
    """An ID token to refuse; the message says why, for the log."""


class UnknownSigningKey(IDTokenError):
    """Signed by a key the provider did not publish (yet: it may have rotated)."""


def verify_id_token(
    token: str,
    keys: KeySet,
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    algorithms: Iterable[str],
    now: int,
    leeway: int,
) -> dict[str, object]:
    """The claims of ``token`` if it is the provider's ID token for this sign-in."""
    allowed = sorted(ASYMMETRIC.intersection(algorithms)) or ["RS256"]
    try:
        decoded = jwt.decode(token, keys, registry=registry_of(allowed))
    except InvalidKeyIdError:
        raise UnknownSigningKey("signed by a key the provider does not publish") from None
    except (JoseError, ValueError) as exc:
        raise IDTokenError(f"not a valid signed JWT: {exc}") from None
    claims = dict(decoded.claims)
    # Core §3.1.3.7 items 2-5: issued by this provider, to us and to no one else.
    if claims.get("iss") != issuer:
        raise IDTokenError("issued by another issuer")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or audiences != [client_id]:
        raise IDTokenError("issued to another audience")
    if "azp" in claims and claims["azp"] != client_id:
        raise IDTokenError("issued to another party")
    # Items 9-10: unexpired, and not issued in the future.
    exp, iat = claims.get("exp"), claims.get("iat")
    if not is_json_int(exp) or exp + leeway <= now:
        raise IDTokenError("expired")
    if not is_json_int(iat) or iat - leeway > now:
        raise IDTokenError("issued in the future")
    # Item 11: the nonce of this sign-in, which only this browser's cookie holds.
    sent = claims.get("nonce")
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
        raise IDTokenError("its nonce is not this sign-in's")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise IDTokenError("no usable subject")
    auth_time = claims.get("auth_time")
    if auth_time is not None and not is_json_int(auth_time):
        raise IDTokenError("auth_time is not a number")
    return claims
