"""The UserInfo endpoint is the authorization server's own resource (RFC 8707).

An access token asked for with ``resource`` is meant for that resource only: its
``aud`` names it, and the UserInfo endpoint (OpenID Connect Core §5.3) refuses it
with 401 ``invalid_token`` and a challenge, as any other resource would. A token
asked for without a resource is for any, this endpoint included. Both are checked
for opaque and for JWT access tokens (RFC 9068), issued through the whole flow.
"""

from __future__ import annotations

import re

import httpx
import pytest

from asgi_oauth import AuthorizationServer, Settings, User

from .conftest import ISSUER, REDIRECT_URI, Credentials
from .dpop_helpers import PASSWORD, USERNAME, authorization_code, token_request
from .openid_helpers import openid_settings

pytestmark = pytest.mark.anyio

API = "https://api.example.com/mcp"
USERINFO = ISSUER + "/userinfo"


@pytest.fixture(params=["opaque", "jwt"])
def settings(request: pytest.FixtureRequest) -> Settings:
    return openid_settings(resources=(API,), access_token_format=request.param)


@pytest.fixture
async def alice(server: AuthorizationServer) -> User:
    return await server.create_user(USERNAME, PASSWORD)


@pytest.fixture
async def rp(server: AuthorizationServer) -> Credentials:
    registered = await server.register_client(
        name="Relying party", redirect_uris=[REDIRECT_URI], scope=["openid", "read"]
    )
    return Credentials(registered.client.client_id, registered.client_secret)


async def access_token(http: httpx.AsyncClient, rp: Credentials, *resources: str) -> str:
    """Alice's access token with ``openid``, from the code flow, for ``resources``."""
    params = [
        ("client_id", rp.client_id),
        ("response_type", "code"),
        ("scope", "openid read"),
        ("state", "xyz"),
        *(("resource", r) for r in resources),
    ]
    code = await authorization_code(http, params)
    issued = await token_request(http, rp, {"grant_type": "authorization_code", "code": code})
    assert issued.status_code == 200, issued.text
    token: str = issued.json()["access_token"]
    return token


async def test_userinfo_refuses_a_token_meant_for_another_resource(
    http: httpx.AsyncClient, rp: Credentials, alice: User
) -> None:
    token = await access_token(http, rp, API)
    response = await http.get(USERINFO, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    assert response.json() == {
        "error": "invalid_token",
        "error_description": "the access token is meant for another resource",
    }
    header = response.headers["www-authenticate"]
    assert header.startswith("Bearer "), header
    attributes = dict(re.findall(r'([a-z_]+)="([^"]*)"', header))
    assert attributes["realm"] == "userinfo" and attributes["error"] == "invalid_token"
    assert "resource_metadata" not in attributes


async def test_userinfo_answers_a_token_asked_for_without_a_resource(
    http: httpx.AsyncClient, rp: Credentials, alice: User
) -> None:
    token = await access_token(http, rp)
    response = await http.get(USERINFO, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.json() == {"sub": alice.user_id}


async def test_userinfo_serves_no_protected_resource_metadata(http: httpx.AsyncClient) -> None:
    response = await http.get("/.well-known/oauth-protected-resource/oauth2/userinfo")
    assert response.status_code == 404
