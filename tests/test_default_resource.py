"""Clients that send no ``resource`` still get audience-bound tokens (``default_resource``).

RFC 8707 binds a token to the resources a client names; many MCP clients name
none. With ``Settings.default_resource`` their tokens are for that resource only:
its resource server takes them, another refuses them. Whatever a client does
name is kept, a resource the server does not list (the site's root) is still
``invalid_target`` (§2), and an OpenID Connect request keeps a token the
UserInfo endpoint takes. Checked through HTTP, on the memory and SQLite stores,
for every grant that issues access tokens.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from asgi_oauth import AuthorizationServer, Settings, User
from asgi_oauth.middleware import BearerTokenMiddleware
from asgi_oauth.storage import Storage
from asgi_oauth.types import DEVICE_CODE

from .conftest import ISSUER, REDIRECT_URI, Credentials, FakeClock
from .device_helpers import decide, start_ok
from .device_helpers import poll as device_poll
from .device_helpers import sign_in as device_sign_in
from .dpop_helpers import PASSWORD, USERNAME, authorization_code, introspect, token_request
from .openid_helpers import openid_settings

pytestmark = pytest.mark.anyio

API = "https://mcp.example/mcp"
FILES = "https://files.example/api"
ROOT = "https://mcp.example"
RESOURCES: dict[str, Any] = {"resources": (API, FILES), "default_resource": API}


@pytest.fixture
def settings() -> Settings:
    return Settings(issuer=ISSUER, **RESOURCES)


@pytest.fixture
async def server(
    store: Storage, settings: Settings, clock: FakeClock
) -> AsyncIterator[AuthorizationServer]:
    server = AuthorizationServer(store, settings, clock=clock)
    yield server
    await server.close()


@pytest.fixture
async def alice(server: AuthorizationServer) -> User:
    return await server.create_user(USERNAME, PASSWORD)


@pytest.fixture
async def app(server: AuthorizationServer) -> Credentials:
    registered = await server.register_client(
        name="Agent",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token", "client_credentials", DEVICE_CODE],
        scope=["openid", "read"],
    )
    return Credentials(registered.client.client_id, registered.client_secret)


async def code_flow(
    http: httpx.AsyncClient, app: Credentials, *, scope: str = "read", **resource: str
) -> dict[str, Any]:
    """Alice approves; the token response. ``resource``: at ``authorize`` and/or ``token``."""
    params = {"client_id": app.client_id, "response_type": "code", "scope": scope, "state": "s"}
    if "authorize" in resource:
        params["resource"] = resource["authorize"]
    code = await authorization_code(http, params)
    form = {"grant_type": "authorization_code", "code": code}
    if "token" in resource:
        form["resource"] = resource["token"]
    issued = await token_request(http, app, form)
    assert issued.status_code == 200, issued.text
    body: dict[str, Any] = issued.json()
    return body


async def aud(http: httpx.AsyncClient, server: AuthorizationServer, token: str) -> object:
    """The ``aud`` introspection tells a resource server (RFC 7662 §2.2), or None."""
    registered = await server.register_client(
        name=f"RS {len(await server.storage.list_clients())}",
        grant_types=["client_credentials"],
        is_resource_server=True,
    )
    rs = Credentials(registered.client.client_id, registered.client_secret)
    body = await introspect(http, rs, token)
    assert body["active"] is True, body
    return body.get("aud")


async def answer_at(server: AuthorizationServer, resource: str, token: str) -> int:
    """The status a resource server for ``resource`` answers ``token`` with."""

    async def ok(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("ok")(scope, receive, send)

    protected = BearerTokenMiddleware(
        ok, introspector=server, protect={"/": "read"}, resource=resource
    )
    transport = httpx.ASGITransport(app=protected)
    async with httpx.AsyncClient(transport=transport, base_url=resource) as client:
        response = await client.get(resource, headers={"Authorization": f"Bearer {token}"})
    return response.status_code


# -- the default ----------------------------------------------------------------------------


async def test_a_code_flow_without_resource_gets_a_token_for_the_default_only(
    http: httpx.AsyncClient, server: AuthorizationServer, app: Credentials, alice: User
) -> None:
    tokens = await code_flow(http, app)
    assert await aud(http, server, tokens["access_token"]) == API
    assert await answer_at(server, API, tokens["access_token"]) == 200
    assert await answer_at(server, FILES, tokens["access_token"]) == 401

    refreshed = await token_request(
        http, app, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert await aud(http, server, refreshed.json()["access_token"]) == API


async def test_client_credentials_without_resource_get_the_default(
    http: httpx.AsyncClient, server: AuthorizationServer, app: Credentials
) -> None:
    issued = await token_request(http, app, {"grant_type": "client_credentials", "scope": "read"})
    assert issued.status_code == 200, issued.text
    assert await aud(http, server, issued.json()["access_token"]) == API


async def test_a_device_without_resource_gets_the_default(
    http: httpx.AsyncClient, server: AuthorizationServer, app: Credentials, alice: User
) -> None:
    codes = await start_ok(http, app, scope="read")
    assert (await device_sign_in(http)).status_code == 200
    assert (await decide(http, codes["user_code"], "approve")).status_code == 200
    issued = await device_poll(http, app, codes["device_code"])
    assert issued.status_code == 200, issued.text
    assert await aud(http, server, issued.json()["access_token"]) == API


@pytest.mark.parametrize("settings", [openid_settings(access_token_format="jwt", **RESOURCES)])
async def test_a_jwt_access_tokens_aud_is_the_default(
    http: httpx.AsyncClient, server: AuthorizationServer, app: Credentials, alice: User
) -> None:
    tokens = await code_flow(http, app)
    payload = tokens["access_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["aud"] == API  # RFC 9068 §3, not the issuer as without a resource
    assert await answer_at(server, API, tokens["access_token"]) == 200
    assert await answer_at(server, FILES, tokens["access_token"]) == 401


# -- what a client names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "resource",
    [{"authorize": FILES}, {"token": FILES}, {"authorize": FILES, "token": FILES}],
)
async def test_a_named_resource_is_kept(
    http: httpx.AsyncClient,
    server: AuthorizationServer,
    app: Credentials,
    alice: User,
    resource: dict[str, str],
) -> None:
    tokens = await code_flow(http, app, **resource)
    assert await aud(http, server, tokens["access_token"]) == FILES
    assert await answer_at(server, FILES, tokens["access_token"]) == 200
    assert await answer_at(server, API, tokens["access_token"]) == 401
    # RFC 8707 §2.2: a refresh of a grant for FILES does not widen it to the default.
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    refreshed = await token_request(http, app, form)
    assert await aud(http, server, refreshed.json()["access_token"]) == (
        FILES if "authorize" in resource else API
    )


async def test_the_site_root_is_still_invalid_target(
    http: httpx.AsyncClient, app: Credentials, alice: User
) -> None:
    """The root may stand for any resource on the host: mapping it would be a guess."""
    issued = await token_request(
        http, app, {"grant_type": "client_credentials", "scope": "read", "resource": ROOT}
    )
    assert issued.status_code == 400 and issued.json()["error"] == "invalid_target"
    params = {"client_id": app.client_id, "response_type": "code", "scope": "read"}
    code = await authorization_code(http, params)
    exchanged = await token_request(
        http, app, {"grant_type": "authorization_code", "code": code, "resource": ROOT}
    )
    assert exchanged.status_code == 400 and exchanged.json()["error"] == "invalid_target"


async def test_a_token_request_cannot_widen_a_grant_bound_to_the_default(
    http: httpx.AsyncClient, app: Credentials, alice: User
) -> None:
    tokens = await code_flow(http, app, authorize=API)
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    widened = await token_request(http, app, {**form, "resource": FILES})
    assert widened.status_code == 400 and widened.json()["error"] == "invalid_target"


@pytest.mark.parametrize("settings", [openid_settings(**RESOURCES)])
async def test_an_openid_connect_request_keeps_a_token_userinfo_takes(
    http: httpx.AsyncClient, server: AuthorizationServer, app: Credentials, alice: User
) -> None:
    tokens = await code_flow(http, app, scope="openid read")
    assert await aud(http, server, tokens["access_token"]) is None
    userinfo = await http.get(
        ISSUER + "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == alice.user_id
