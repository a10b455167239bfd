"""``BearerTokenMiddleware(audiences=...)``: the ``aud`` values a resource answers to,
checked as ``resource`` checks them (RFC 8707), without serving RFC 9728 metadata."""

from __future__ import annotations

import pytest

from asgi_oauth import AuthorizationServer
from asgi_oauth.middleware import BearerTokenMiddleware

from ..conftest import ISSUER
from .test_bearer import bearer, challenge, connect, echo
from .test_dpop import stored_token

pytestmark = pytest.mark.anyio

OWN = "https://as.example/oauth2/userinfo"
OTHER = "https://api.example.com/mcp"
RESOURCE = "https://api.example/v1"


@pytest.mark.parametrize(
    ("audience", "status"),
    [((), 200), ((OWN,), 200), ((ISSUER,), 200), ((OTHER, ISSUER), 200), ((OTHER,), 401)],
    ids=["none", "named", "the-issuer", "a-list-naming-one", "another-resource-only"],
)
async def test_audiences_alone_decide_which_tokens_pass(
    server: AuthorizationServer, audience: tuple[str, ...], status: int
) -> None:
    token = await stored_token(server, audience)
    app = BearerTokenMiddleware(echo, introspector=server, audiences=[OWN, ISSUER])
    async with connect(app) as client:
        response = await client.get("/things", headers=bearer(token))
    assert response.status_code == status, response.text
    if status == 401:
        assert challenge(response)["error"] == "invalid_token"
        assert "resource_metadata" not in challenge(response)


async def test_audiences_serve_no_metadata(server: AuthorizationServer) -> None:
    app = BearerTokenMiddleware(echo, introspector=server, audiences=[OWN], public=["/"])
    async with connect(app) as client:
        response = await client.get("/.well-known/oauth-protected-resource")
    assert response.status_code == 200
    assert response.json()["path"] == "/.well-known/oauth-protected-resource"  # the app's


async def test_audiences_add_to_those_of_the_resource(server: AuthorizationServer) -> None:
    app = BearerTokenMiddleware(echo, introspector=server, resource=RESOURCE, audiences=[OWN])
    async with connect(app) as client:
        for audience, status in [((OWN,), 200), ((RESOURCE,), 200), ((OTHER,), 401)]:
            token = await stored_token(server, audience)
            response = await client.get("/things", headers=bearer(token))
            assert response.status_code == status, (audience, response.text)
