"""Issuing JWT access tokens (RFC 9068): which clients get one, and what it says.

Every token is checked with PyJWT against the published JWK Set, not with the
server's own JOSE code. The server's clock is the wall clock here, so PyJWT's
``exp`` and ``iat`` checks hold as they would for a resource server.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.jwt_access_tokens import looks_like_jwt
from asgi_oauth.storage import MemoryStorage

from .conftest import ISSUER, REDIRECT_URI, Credentials, FakeClock
from .openid_helpers import KEK, decode, fetch_jwks, openid_settings
from .test_grant_authorization_code import exchange, issue_code

pytestmark = pytest.mark.anyio

TOKEN = "/oauth2/token"


@pytest.fixture
def clock() -> FakeClock:
    """The wall clock, so PyJWT's own exp and iat checks apply."""
    return FakeClock(time.time())


@pytest.fixture
def settings() -> Settings:
    """Every client gets JWT access tokens unless it says otherwise."""
    return openid_settings(access_token_format="jwt")


@asynccontextmanager
async def serve(server: AuthorizationServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for ``server``'s app mounted at /oauth2, as the ``http`` fixture."""
    app = Starlette(routes=[Mount("/oauth2", app=OAuth2App(server))])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://as.example") as client:
        yield client


async def register(
    server: AuthorizationServer, access_token_format: Any = None, **options: Any
) -> Credentials:
    registered = await server.register_client(
        name="App",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "client_credentials", "refresh_token"],
        scope=["read", "write"],
        access_token_format=access_token_format,
        **options,
    )
    return Credentials(registered.client.client_id, registered.client_secret)


async def post_token(http: httpx.AsyncClient, creds: Credentials, **form: str) -> dict[str, Any]:
    response = await http.post(TOKEN, data=form, auth=creds.basic)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def client_token(http: httpx.AsyncClient, creds: Credentials, scope: str = "read") -> str:
    body = await post_token(http, creds, grant_type="client_credentials", scope=scope)
    token: str = body["access_token"]
    return token


async def code_tokens(
    http: httpx.AsyncClient, server: AuthorizationServer, creds: Credentials
) -> dict[str, Any]:
    """Tokens for ``user-1`` by the authorization code grant, through /token."""
    code = await issue_code(server, creds, scope="read write")
    return await post_token(http, creds, **exchange(creds, code))


def assert_opaque(token: str) -> None:
    assert not looks_like_jwt(token)
    with pytest.raises(jwt.DecodeError):
        jwt.get_unverified_header(token)


# -- which clients get a JWT ---------------------------------------------------------------


async def test_the_global_setting_issues_a_signed_at_jwt_for_client_credentials(
    http: httpx.AsyncClient, confidential: Credentials, clock: FakeClock
) -> None:
    token = await client_token(http, confidential, "read write")
    jwks = await fetch_jwks(http)
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "RS256"
    assert header["kid"] in {k["kid"] for k in jwks["keys"] if k["alg"] == "RS256"}
    claims = decode(token, jwks, audience=ISSUER)
    assert set(claims) == {"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"}
    assert claims["iss"] == ISSUER
    assert claims["aud"] == ISSUER
    # RFC 9068 §2.2: without a resource owner, sub names the client.
    assert claims["sub"] == confidential.client_id
    assert claims["client_id"] == confidential.client_id
    assert claims["scope"] == "read write"
    assert claims["iat"] == int(clock.now)
    assert claims["exp"] == claims["iat"] + 3600
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16


async def test_every_jwt_has_its_own_jti(
    http: httpx.AsyncClient, confidential: Credentials
) -> None:
    jwks = await fetch_jwks(http)
    tokens = [await client_token(http, confidential) for _ in range(3)]
    jtis = {decode(t, jwks, audience=ISSUER)["jti"] for t in tokens}
    assert len(jtis) == 3


async def test_authorization_code_jwt_names_the_user_as_sub_and_the_refresh_token_is_opaque(
    http: httpx.AsyncClient, server: AuthorizationServer, confidential: Credentials
) -> None:
    body = await code_tokens(http, server, confidential)
    claims = decode(body["access_token"], await fetch_jwks(http), audience=ISSUER)
    assert claims["sub"] == "user-1"
    assert claims["client_id"] == confidential.client_id
    assert claims["scope"] == "read write"
    assert_opaque(body["refresh_token"])
    refresh = await server.introspect_token(body["refresh_token"])
    assert refresh.active and refresh.token_type == "refresh_token"


async def test_a_refreshed_access_token_is_a_new_jwt_and_the_new_refresh_token_is_opaque(
    http: httpx.AsyncClient, server: AuthorizationServer, confidential: Credentials
) -> None:
    first = await code_tokens(http, server, confidential)
    second = await post_token(
        http, confidential, grant_type="refresh_token", refresh_token=first["refresh_token"]
    )
    assert second["access_token"] != first["access_token"]
    jwks = await fetch_jwks(http)
    old = decode(first["access_token"], jwks, audience=ISSUER)
    new = decode(second["access_token"], jwks, audience=ISSUER)
    assert jwt.get_unverified_header(second["access_token"])["typ"] == "at+jwt"
    assert new["jti"] != old["jti"]
    assert new["sub"] == "user-1"
    assert new["client_id"] == confidential.client_id
    assert_opaque(second["refresh_token"])


async def test_a_client_that_asks_for_opaque_tokens_gets_them_under_the_global_jwt_setting(
    http: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    opaque = await register(server, "opaque")
    following = await register(server)
    assert_opaque(await client_token(http, opaque))
    assert looks_like_jwt(await client_token(http, following))


async def test_a_jwt_client_gets_a_jwt_under_the_global_opaque_setting() -> None:
    server = AuthorizationServer(MemoryStorage(), openid_settings())
    try:
        jwt_client = await register(server, "jwt")
        following = await register(server)
        async with serve(server) as http:
            token = await client_token(http, jwt_client)
            claims = decode(token, await fetch_jwks(http), audience=ISSUER)
            assert_opaque(await client_token(http, following))
        assert claims["client_id"] == jwt_client.client_id
        assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    finally:
        await server.close()


# -- introspection, settings ---------------------------------------------------------------


async def test_introspection_reports_a_jwt_active_with_its_audience(
    http: httpx.AsyncClient, confidential: Credentials, resource_server: Credentials
) -> None:
    token = await client_token(http, confidential, "read")
    claims = decode(token, await fetch_jwks(http), audience=ISSUER)
    response = await http.post(
        "/oauth2/introspect", data={"token": token}, auth=resource_server.basic
    )
    assert response.status_code == 200
    body = response.json()
    assert body["active"] is True
    assert body["aud"] in (ISSUER, [ISSUER])
    assert body["client_id"] == confidential.client_id
    assert body["scope"] == "read"
    assert body["exp"] == claims["exp"] and body["iat"] == claims["iat"]
    assert body["iss"] == ISSUER


async def test_a_revoked_jwt_is_inactive_at_the_introspection_endpoint(
    http: httpx.AsyncClient, confidential: Credentials, resource_server: Credentials
) -> None:
    token = await client_token(http, confidential)
    revoked = await http.post("/oauth2/revoke", data={"token": token}, auth=confidential.basic)
    assert revoked.status_code == 200
    response = await http.post(
        "/oauth2/introspect", data={"token": token}, auth=resource_server.basic
    )
    assert response.json() == {"active": False}


async def test_the_audience_setting_is_the_aud_claim() -> None:
    audience = "https://api.example"
    server = AuthorizationServer(
        MemoryStorage(), openid_settings(access_token_format="jwt", access_token_audience=audience)
    )
    try:
        creds = await register(server)
        async with serve(server) as http:
            token = await client_token(http, creds)
            claims = decode(token, await fetch_jwks(http), audience=audience)
        assert claims["aud"] == audience
        assert (await server.introspect_token(token)).aud == (audience,)
    finally:
        await server.close()


async def test_the_es256_setting_signs_with_es256() -> None:
    server = AuthorizationServer(
        MemoryStorage(),
        openid_settings(access_token_format="jwt", access_token_signing_alg="ES256"),
    )
    try:
        creds = await register(server)
        async with serve(server) as http:
            token = await client_token(http, creds)
            jwks = await fetch_jwks(http)
        header = jwt.get_unverified_header(token)
        assert header["alg"] == "ES256" and header["typ"] == "at+jwt"
        assert header["kid"] in {k["kid"] for k in jwks["keys"] if k["alg"] == "ES256"}
        assert decode(token, jwks, audience=ISSUER)["client_id"] == creds.client_id
    finally:
        await server.close()


async def test_registering_a_jwt_client_without_signing_keys_is_refused() -> None:
    server = AuthorizationServer(MemoryStorage(), Settings(issuer=ISSUER))
    try:
        with pytest.raises(ValueError, match="key_encryption_key"):
            await register(server, "jwt")
        assert await server.storage.list_clients() == []
    finally:
        await server.close()


def test_jwt_access_tokens_without_a_key_encryption_key_are_refused() -> None:
    with pytest.raises(ValueError, match="key_encryption_key"):
        Settings(issuer=ISSUER, access_token_format="jwt")
    assert Settings(issuer=ISSUER, access_token_format="jwt", key_encryption_key=KEK)
