"""What the DPoP, pushed-request and resource-indicator tests share over HTTP.

Alice signs in and approves through ``Person``, the scripted browser user;
clients call the token and introspection endpoints as ``httpx`` sends them.
DPoP proofs (RFC 9449 §4.2) are made here as a client makes them, with PyJWT
and ``cryptography`` keys, never with the server's JOSE code (joserfc); the key
thumbprint is computed from the JWK members as RFC 7638 §3 spells out. A
``LedgerStorage`` is a memory store that records every token and pushed
request it saves, so a test can say that a refused request stored nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from asgi_oauth.models import PushedAuthorizationRequest, Token
from asgi_oauth.storage import MemoryStorage

from .conftest import ISSUER, REDIRECT_URI, Credentials
from .user_agent import Person

AUTHORIZE_URL = ISSUER + "/authorize"
TOKEN_URL = ISSUER + "/token"
PAR_URL = ISSUER + "/par"
USERNAME = "alice"
PASSWORD = "correct horse battery staple"
#: A form body, said so even when httpx would send an empty one without it.
FORM = {"content-type": "application/x-www-form-urlencoded"}

#: Request parameters: a mapping, or pairs when one repeats (``resource``).
Params = Mapping[str, str] | Sequence[tuple[str, str]]

Alg = Literal["ES256", "RS256"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 §3: SHA-256 of the required members (§3.2), sorted, without whitespace."""
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}[jwk["kty"]]
    members = {name: jwk[name] for name in required}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return b64(hashlib.sha256(canonical.encode()).digest())


def new_private_key(alg: Alg) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class DPoPKey:
    """A client's DPoP key pair, making proofs for requests (RFC 9449 §4.2)."""

    def __init__(self, alg: Alg = "ES256", private_key: PrivateKey | None = None) -> None:
        self.alg = alg
        self.private_key = new_private_key(alg) if private_key is None else private_key
        algorithm = jwt.get_algorithm_by_name(alg)
        self.jwk: dict[str, Any] = algorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        #: Every member of the key, the private ones too: what a proof must never carry.
        self.private_jwk: dict[str, Any] = algorithm.to_jwk(self.private_key, as_dict=True)
        self.jkt = thumbprint(self.jwk)

    def claims(
        self,
        htu: str,
        *,
        iat: int,
        htm: str = "POST",
        jti: str | None = None,
        nonce: str | None = None,
        access_token: str | None = None,
    ) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "jti": jti or secrets.token_urlsafe(16),
            "htm": htm,
            "htu": htu,
            "iat": iat,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if access_token is not None:
            # §4.2: the base64url SHA-256 of the ASCII access token.
            claims["ath"] = b64(hashlib.sha256(access_token.encode("ascii")).digest())
        return claims

    def header(self, **changes: Any) -> dict[str, Any]:
        """The JOSE header (without ``alg``, which PyJWT sets); a ``None`` change drops one."""
        header: dict[str, Any] = {"typ": "dpop+jwt", "jwk": self.jwk}
        header.update(changes)
        return {k: v for k, v in header.items() if v is not None}

    def proof(
        self,
        htu: str = TOKEN_URL,
        *,
        iat: int,
        signer: PrivateKey | None = None,
        header: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A proof for a request to ``htu``, signed with this key unless ``signer`` is given."""
        return jwt.encode(
            self.claims(htu, iat=iat, **claims),
            signer or self.private_key,
            algorithm=self.alg,
            headers=self.header() if header is None else header,
        )


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A JWS with ``alg: none`` and an empty signature (RFC 7519 §6)."""
    parts = (json.dumps(header).encode(), json.dumps(claims).encode())
    return ".".join(b64(part) for part in parts) + "."


def error_of(response: httpx.Response, status: int = 400) -> str:
    """The ``error`` of a JSON error response with ``status``."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json", response.text
    error: str = response.json()["error"]
    return error


class LedgerStorage(MemoryStorage):
    """A memory store that records the tokens and pushed requests it saved."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: list[Token] = []
        self.pushed: list[PushedAuthorizationRequest] = []

    async def save_tokens(self, tokens: Sequence[Token]) -> None:
        await super().save_tokens(tokens)
        self.tokens.extend(tokens)

    async def redeem_authorization_code(
        self, code_hash: str, *, tokens: Sequence[Token], now: int
    ) -> bool:
        redeemed = await super().redeem_authorization_code(code_hash, tokens=tokens, now=now)
        if redeemed:
            self.tokens.extend(tokens)
        return redeemed

    async def rotate_refresh_token(
        self,
        token_hash: str,
        *,
        tokens: Sequence[Token],
        now: int,
        sealed_response: str | None = None,
    ) -> bool:
        rotated = await super().rotate_refresh_token(
            token_hash, tokens=tokens, now=now, sealed_response=sealed_response
        )
        if rotated:
            self.tokens.extend(tokens)
        return rotated

    async def redeem_device_code(
        self, device_code_hash: str, *, tokens: Sequence[Token], now: int
    ) -> bool:
        redeemed = await super().redeem_device_code(device_code_hash, tokens=tokens, now=now)
        if redeemed:
            self.tokens.extend(tokens)
        return redeemed

    async def save_pushed_authorization_request(self, request: PushedAuthorizationRequest) -> None:
        await super().save_pushed_authorization_request(request)
        self.pushed.append(request)


# -- requests ---------------------------------------------------------------------------------


def authorize_url(params: Params) -> str:
    return f"{AUTHORIZE_URL}?{urlencode(params)}"


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


async def callback(http: httpx.AsyncClient, url: str) -> dict[str, str]:
    """Alice opens ``url``, signs in and approves: what the redirect to the client carries."""
    location = await Person(http, USERNAME, PASSWORD).authorize(url)
    assert location.partition("?")[0] == REDIRECT_URI, location
    return query_of(location)


async def authorization_code(http: httpx.AsyncClient, params: Params) -> str:
    """A code from the whole front channel: sign-in, consent, the redirect."""
    query = await callback(http, authorize_url(params))
    assert "code" in query, query
    return query["code"]


def client_auth(creds: Credentials, form: Params) -> dict[str, Any]:
    """``httpx`` arguments: Basic for a confidential client, ``client_id`` for a public one."""
    pairs = list(form.items()) if isinstance(form, Mapping) else list(form)
    if creds.client_secret is None:
        return {"content": urlencode([("client_id", creds.client_id), *pairs])}
    return {"content": urlencode(pairs), "auth": creds.basic}


async def token_request(
    http: httpx.AsyncClient, creds: Credentials, form: Params, *, dpop: str | None = None
) -> httpx.Response:
    headers = dict(FORM) if dpop is None else {**FORM, "dpop": dpop}
    return await http.post(TOKEN_URL, headers=headers, **client_auth(creds, form))


async def introspect(
    http: httpx.AsyncClient, resource_server: Credentials, token: str
) -> dict[str, Any]:
    """What the introspection endpoint tells a resource server about ``token``."""
    response = await http.post(
        ISSUER + "/introspect", data={"token": token}, auth=resource_server.basic
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
