"""What OpenID Connect tests share: settings with signing keys, and checking what the
server signed with PyJWT, a JOSE implementation the server does not use."""

from __future__ import annotations

import base64
import hashlib
from typing import Any, cast

import httpx
import jwt
from jwt.types import Options

from asgi_oauth import Settings

from .conftest import ISSUER

#: A key-encryption key for tests (the real one comes from a secret store).
KEK = "test-key-encryption-key-0123456789abcdef"


def openid_settings(**overrides: Any) -> Settings:
    """Settings with OpenID Connect on (a key-encryption key) at the test issuer."""
    values: dict[str, Any] = {"issuer": ISSUER, "key_encryption_key": KEK, **overrides}
    return Settings(**values)


def half_hash(value: str) -> str:
    """at_hash / c_hash as OpenID Connect Core §3.3.2.11 defines them for RS256 and ES256."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


async def fetch_jwks(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/oauth2/jwks")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def decode(
    token: str, jwks: dict[str, Any], *, audience: str | None, issuer: str = ISSUER, **options: Any
) -> dict[str, Any]:
    """Verify ``token`` against the published key its ``kid`` names, with PyJWT."""
    header = jwt.get_unverified_header(token)
    matches = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    assert len(matches) == 1, f"kid {header['kid']} published {len(matches)} times"
    key = jwt.PyJWK(matches[0])
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=[matches[0]["alg"]],
        audience=audience,
        issuer=issuer,
        options=cast("Options", {"verify_aud": audience is not None, **options}),
    )
    return claims
