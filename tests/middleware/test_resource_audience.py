"""Resource indicators (RFC 8707) at BearerTokenMiddleware: a token for another resource
is refused where ``resource`` is configured; one asked for without a resource is not.

Opaque tokens are stored rows with an ``audience``; JWT access tokens are signed
here with PyJWT by the server's own key, so each differs in its ``aud`` only.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from asgi_oauth import AuthorizationServer, IntrospectionResult
from asgi_oauth.keys import KeyEncryption, generate_signing_key
from asgi_oauth.middleware import BearerTokenMiddleware, JWTIntrospector
from asgi_oauth.models import SigningKey
from asgi_oauth.storage import MemoryStorage

from ..conftest import ISSUER, FakeClock
from ..openid_helpers import KEK, openid_settings
from .test_bearer import bearer, challenge, connect, echo
from .test_dpop import Answer, Holder, refused, stored_token

pytestmark = pytest.mark.anyio

RESOURCE = "https://api.example/v1"
OTHER = "https://other.example/api"
FOREIGN = "the access token is meant for another resource"


def assert_foreign(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert challenge(response)["error"] == "invalid_token"
    assert response.json() == {"error": "invalid_token", "error_description": FOREIGN}


@pytest.fixture
async def client(server: AuthorizationServer) -> AsyncIterator[httpx.AsyncClient]:
    async with connect(BearerTokenMiddleware(echo, introspector=server, resource=RESOURCE)) as c:
        yield c


# -- opaque tokens -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "audience",
    [(RESOURCE,), (OTHER, RESOURCE), (), (ISSUER,)],
    ids=["this-resource", "a-list-naming-it", "none-asked", "the-authorization-server"],
)
async def test_a_token_for_this_resource_or_for_any_passes(
    client: httpx.AsyncClient, server: AuthorizationServer, audience: tuple[str, ...]
) -> None:
    token = await stored_token(server, audience)
    response = await client.get("/things", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["claims"].get("aud", []) in (list(audience), *audience)


async def test_a_token_for_another_resource_is_401_invalid_token(
    client: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    token = await stored_token(server, (OTHER,))
    assert_foreign(await client.get("/things", headers=bearer(token)))
    # The second answer comes from the introspection cache: judged all the same.
    assert_foreign(await client.get("/things", headers=bearer(token)))


async def test_without_a_resource_the_audience_is_not_checked(
    server: AuthorizationServer,
) -> None:
    token = await stored_token(server, (OTHER,))
    async with connect(BearerTokenMiddleware(echo, introspector=server)) as client:
        response = await client.get("/things", headers=bearer(token))
    assert response.status_code == 200


async def test_a_dpop_bound_token_for_another_resource_is_refused_too(
    server: AuthorizationServer,
) -> None:
    holder = Holder()
    token = await stored_token(server, (OTHER,), jkt=holder.jkt)
    app = BearerTokenMiddleware(echo, introspector=server, resource=RESOURCE)
    async with connect(app) as client:
        response = await client.get("/things", headers=holder.headers(token))
    assert refused(response, "invalid_token")["error_description"] == FOREIGN


@pytest.mark.parametrize(
    ("aud", "status"),
    [("https://idp.example", 200), (RESOURCE, 200), (OTHER, 401)],
    ids=["the-authorization-server", "this-resource", "another-resource"],
)
async def test_with_another_server_its_issuer_is_an_audience_for_any_resource(
    aud: str, status: int
) -> None:
    info = IntrospectionResult(active=True, aud=(aud,), client_id="client-1")
    app = BearerTokenMiddleware(
        echo,
        introspector=Answer(info),
        resource=RESOURCE,
        authorization_servers=["https://idp.example"],
    )
    async with connect(app) as client:
        response = await client.get("/things", headers=bearer("remote-token"))
    assert response.status_code == status


# -- JWT access tokens ---------------------------------------------------------------------------


@functools.cache
def _rs256_key() -> SigningKey:
    """Made once: generating RSA keys per test is slow."""
    return generate_signing_key("RS256", KeyEncryption(KEK), now=int(time.time()))


@pytest.fixture
async def jwt_server(clock: FakeClock) -> AsyncIterator[AuthorizationServer]:
    """A server of JWT access tokens for two resources, its signing key in the store."""
    store = MemoryStorage()
    await store.add_signing_key(_rs256_key(), retire_active_until=None, now=int(time.time()))
    settings = openid_settings(access_token_format="jwt", resources=(RESOURCE, OTHER))
    server = AuthorizationServer(store, settings, clock=clock)
    yield server
    await server.close()


def signed(aud: str | list[str], **extra: object) -> str:
    """A JWT access token (RFC 9068 §2) for ``aud``, signed by the server's key."""
    stored = _rs256_key()
    private = KeyEncryption(KEK).decrypt(stored.private_jwk, kid=stored.kid)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": aud,
        "exp": now + 600,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
        "client_id": "client-1",
        "scope": "read",
        **extra,
    }
    headers = {"kid": stored.kid, "typ": "at+jwt"}
    key = jwt.PyJWK(json.loads(private)).key
    return jwt.encode(claims, key, algorithm="RS256", headers=headers)


@pytest.mark.parametrize(
    ("aud", "passes"),
    [(RESOURCE, True), ([OTHER, RESOURCE], True), (ISSUER, True), (OTHER, False)],
    ids=["this-resource", "a-list-naming-it", "the-default-audience", "another-resource"],
)
async def test_a_jwt_access_token_is_judged_by_its_aud(
    jwt_server: AuthorizationServer, aud: str | list[str], passes: bool
) -> None:
    app = BearerTokenMiddleware(echo, introspector=jwt_server, resource=RESOURCE)
    async with connect(app) as client:
        response = await client.get("/things", headers=bearer(signed(aud)))
    if passes:
        assert response.status_code == 200, response.text
    else:
        assert_foreign(response)


async def test_a_jwt_introspector_of_this_resource_refuses_a_jwt_for_another(
    jwt_server: AuthorizationServer,
) -> None:
    assert jwt_server.keys is not None
    introspector = JWTIntrospector(
        keys=jwt_server.keys, issuer=ISSUER, audience=RESOURCE, revocations=None
    )
    app = BearerTokenMiddleware(echo, introspector=introspector, resource=RESOURCE)
    async with connect(app) as client:
        foreign = await client.get("/things", headers=bearer(signed(OTHER)))
        own = await client.get("/things", headers=bearer(signed(RESOURCE)))
    assert foreign.status_code == 401
    assert challenge(foreign)["error"] == "invalid_token"
    assert own.status_code == 200, own.text


async def test_a_dpop_bound_jwt_for_this_resource_passes_with_its_proof_only(
    jwt_server: AuthorizationServer,
) -> None:
    """RFC 9449 §6.1: ``cnf.jkt`` in the JWT binds it, as a stored ``jkt`` does."""
    holder = Holder()
    token = signed(RESOURCE, cnf={"jkt": holder.jkt})
    app = BearerTokenMiddleware(echo, introspector=jwt_server, resource=RESOURCE)
    async with connect(app) as client:
        proved = await client.get("/things", headers=holder.headers(token))
        as_bearer = await client.get("/things", headers=bearer(token))
        by_another = await client.get("/things", headers=Holder().headers(token))
    assert proved.status_code == 200, proved.text
    assert proved.json()["claims"]["cnf"] == {"jkt": holder.jkt}
    assert challenge(as_bearer)["error"] == "invalid_token"
    refused(by_another, "invalid_token")
