"""Challenges that tell a client what to ask for (RFC 6750 §3, RFC 9728 §5.1, MCP SEP-835).

A 401 names the scopes the path needs beside ``resource_metadata``, or no
``scope`` when the path needs none (the client then falls back to the
metadata's ``scopes_supported``); a 403 ``insufficient_scope`` names every
scope the request needs together with those the token already has, so a client
that re-authorizes with exactly the challenge's scopes loses nothing. Route-level
checks (``require_scopes``, FastAPI's ``OAuth2Scopes``) answer in the same shape.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Security
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from asgi_oauth import AuthorizationServer
from asgi_oauth.middleware import BearerTokenMiddleware, BearerUser, require_scopes
from asgi_oauth.middleware.fastapi import OAuth2Scopes
from asgi_oauth.models import IntrospectionResult

from .conftest import ISSUER, Credentials, FakeClock
from .middleware.conftest import register_caller
from .middleware.test_bearer import access_token, bearer, connect, echo
from .test_examples import free_port, run_example

pytestmark = pytest.mark.anyio

RESOURCE = "https://api.example"
METADATA = RESOURCE + "/.well-known/oauth-protected-resource"
#: Every path needs "read"; /admin needs "admin write"; /open needs no token.
PROTECT = {"/": "read", "/admin": "admin write", "/any": ""}


@pytest.fixture
def clock() -> FakeClock:
    """The server's clock agrees with the wall clock the middleware's cache reads."""
    return FakeClock(time.time())


@pytest.fixture
async def caller(server: AuthorizationServer) -> Credentials:
    return await register_caller(server)


def challenges(response: httpx.Response) -> dict[str, dict[str, str]]:
    """Each challenge of ``WWW-Authenticate`` by scheme: its attributes."""
    header = response.headers["www-authenticate"]
    found: dict[str, dict[str, str]] = {}
    for scheme, rest in re.findall(r'(Bearer|DPoP) ((?:[a-z_]+="[^"]*"(?:, )?)+)', header):
        found[scheme] = dict(re.findall(r'([a-z_]+)="([^"]*)"', rest))
    return found


def bearer_challenge(response: httpx.Response) -> dict[str, str]:
    return challenges(response)["Bearer"]


def api(server: AuthorizationServer | Any, **options: Any) -> ASGIApp:
    options = {"protect": PROTECT, "public": ["/open"], "resource": RESOURCE, **options}
    return BearerTokenMiddleware(echo, introspector=server, **options)


class Says:
    """An introspector that answers what it is told, as a remote one might."""

    def __init__(self, result: IntrospectionResult) -> None:
        self.result = result

    async def introspect_token(self, token: str) -> IntrospectionResult:
        return self.result


# -- the 401: what the path needs, beside resource_metadata ---------------------------


@pytest.mark.parametrize(("path", "scope"), [("/things", "read"), ("/admin/users", "admin write")])
async def test_no_token_is_told_the_scopes_the_path_needs(
    server: AuthorizationServer, path: str, scope: str
) -> None:
    async with connect(api(server)) as client:
        response = await client.get(path)
    assert response.status_code == 401
    # Both schemes a client may use (RFC 9449 §7.2) say the same.
    for attributes in challenges(response).values():
        assert attributes["scope"] == scope
        assert attributes["resource_metadata"] == METADATA
        assert "error" not in attributes


async def test_an_invalid_token_is_told_the_scopes_the_path_needs(
    server: AuthorizationServer,
) -> None:
    async with connect(api(server)) as client:
        response = await client.get("/admin/users", headers=bearer("not-a-token"))
    assert response.status_code == 401
    assert bearer_challenge(response) == {
        "realm": "api",
        "error": "invalid_token",
        "error_description": "the access token is not valid",
        "scope": "admin write",
        "resource_metadata": METADATA,
    }


async def test_a_token_for_another_resource_is_told_the_scopes_too(
    server: AuthorizationServer,
) -> None:
    other = IntrospectionResult(active=True, scope=frozenset({"read"}), aud=("https://x.example",))
    async with connect(api(Says(other))) as client:
        response = await client.get("/things", headers=bearer("t"))
    assert response.status_code == 401
    assert bearer_challenge(response)["error"] == "invalid_token"
    assert bearer_challenge(response)["scope"] == "read"


async def test_a_path_that_needs_no_scope_names_none_and_the_metadata_lists_them(
    server: AuthorizationServer,
) -> None:
    """SEP-835: without ``scope`` the client asks for the metadata's ``scopes_supported``."""
    async with connect(api(server)) as client:
        response = await client.get("/any/thing")
        metadata = await client.get(METADATA)
    assert response.status_code == 401
    for attributes in challenges(response).values():
        assert "scope" not in attributes
        assert attributes["resource_metadata"] == METADATA
    assert metadata.json()["scopes_supported"] == ["admin", "read", "write"]


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        ({"authorization": "Bearer a b"}, 400, "invalid_request"),
        ({"authorization": "DPoP t", "dpop": "not-a-proof"}, 401, "invalid_dpop_proof"),
    ],
    ids=["malformed", "bad-dpop-proof"],
)
async def test_refusals_that_are_not_about_getting_a_token_name_no_scope(
    server: AuthorizationServer, headers: dict[str, str], status: int, error: str
) -> None:
    async with connect(api(server)) as client:
        response = await client.get("/admin", headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert "scope=" not in response.headers["www-authenticate"]


async def test_an_unavailable_introspector_is_503_without_scope() -> None:
    from .middleware.test_bearer import Unavailable

    async with connect(api(Unavailable())) as client:
        response = await client.get("/admin", headers=bearer("t"))
    assert response.status_code == 503
    assert "scope=" not in response.headers["www-authenticate"]


# -- the 403: everything the request needs, with what the token has -------------------


async def test_insufficient_scope_names_what_is_needed_and_what_the_token_holds(
    server: AuthorizationServer, caller: Credentials
) -> None:
    token = await access_token(server, caller, "read admin")
    async with connect(api(server)) as client:
        response = await client.get("/admin/users", headers=bearer(token))
    assert response.status_code == 403
    assert bearer_challenge(response) == {
        "realm": "api",
        "error": "insufficient_scope",
        "error_description": "the access token lacks scope",
        "scope": "admin read write",
        "resource_metadata": METADATA,
    }


async def test_offline_access_is_never_named_from_the_token() -> None:
    """MCP 2026-07-28: a resource leaves ``offline_access`` out of its challenges."""
    held = IntrospectionResult(active=True, scope=frozenset({"read", "offline_access"}))
    async with connect(api(Says(held))) as client:
        response = await client.get("/admin", headers=bearer("t"))
    assert response.status_code == 403
    assert bearer_challenge(response)["scope"] == "admin read write"


async def test_a_hostile_introspection_answer_cannot_add_challenge_attributes() -> None:
    """A remote introspector's scopes are attacker-shaped text: quotes and backslashes
    are dropped (RFC 6750 §3), so nothing breaks out of the ``scope`` value."""
    evil = 'read", error="none", resource_metadata="https://evil.example'
    held = IntrospectionResult(active=True, scope=frozenset({evil, "x\\"}))
    async with connect(api(Says(held))) as client:
        response = await client.get("/admin", headers=bearer("t"))
    assert response.status_code == 403
    header = response.headers["www-authenticate"]
    attributes = bearer_challenge(response)
    assert attributes["error"] == "insufficient_scope"
    assert attributes["resource_metadata"] == METADATA
    assert header.count('resource_metadata="') == 1
    assert header.count('error="') == 1
    assert "\\" not in header


async def test_a_client_that_follows_only_the_challenges_loses_nothing(
    server: AuthorizationServer, caller: Credentials
) -> None:
    """A client of MCP 2025-11-25 asks for exactly the challenge's scopes, replacing what
    it had; with the token's scopes in the 403 it keeps reaching the paths it could."""
    async with connect(api(server)) as client:
        first = await client.get("/things")
        token = await access_token(server, caller, bearer_challenge(first)["scope"])
        assert (await client.get("/things", headers=bearer(token))).status_code == 200

        step_up = await client.get("/admin/users", headers=bearer(token))
        assert step_up.status_code == 403
        token = await access_token(server, caller, bearer_challenge(step_up)["scope"])

        assert (await client.get("/admin/users", headers=bearer(token))).status_code == 200
        assert (await client.get("/things", headers=bearer(token))).status_code == 200


# -- route-level checks give the same shape -------------------------------------------


@require_scopes("admin")
async def administer(request: Request) -> Response:
    return JSONResponse({"admin": True})


def starlette_api(server: AuthorizationServer) -> ASGIApp:
    app = Starlette(routes=[Route("/admin", administer), Route("/open/admin", administer)])
    return BearerTokenMiddleware(
        app, introspector=server, protect={"/": "read"}, public=["/open"], resource=RESOURCE
    )


oauth2 = OAuth2Scopes(issuer=ISSUER, scopes={"read": "Read", "admin": "Administer"})


def fastapi_api(server: AuthorizationServer) -> ASGIApp:
    app = FastAPI()

    @app.get("/admin")
    @app.get("/open/admin")
    async def admin(user: Annotated[BearerUser, Security(oauth2, scopes=["admin"])]) -> str:
        return user.identity

    return BearerTokenMiddleware(
        app, introspector=server, protect={"/": "read"}, public=["/open"], resource=RESOURCE
    )


@pytest.fixture(params=[starlette_api, fastapi_api], ids=["require_scopes", "OAuth2Scopes"])
def route_checked(request: pytest.FixtureRequest, server: AuthorizationServer) -> ASGIApp:
    app: ASGIApp = request.param(server)
    return app


async def test_route_level_401_names_the_routes_scopes_beside_the_metadata(
    route_checked: ASGIApp,
) -> None:
    async with connect(route_checked) as client:
        missing = await client.get("/open/admin")
        invalid = await client.get("/open/admin", headers=bearer("not-a-token"))
    assert missing.status_code == invalid.status_code == 401
    for attributes in challenges(missing).values():
        assert attributes["scope"] == "admin"
        assert attributes["resource_metadata"] == METADATA
    assert bearer_challenge(invalid)["error"] == "invalid_token"
    assert bearer_challenge(invalid)["scope"] == "admin"


async def test_route_level_403_names_the_full_set_the_request_needs(
    route_checked: ASGIApp, server: AuthorizationServer, caller: Credentials
) -> None:
    """The path's rule needs read and the route admin: the 403 names both, as the
    middleware's own 403 would, and a token with them gets through."""
    token = await access_token(server, caller, "read")
    async with connect(route_checked) as client:
        refused = await client.get("/admin", headers=bearer(token))
        enough = await access_token(server, caller, bearer_challenge(refused)["scope"])
        allowed = await client.get("/admin", headers=bearer(enough))
    assert refused.status_code == 403
    assert bearer_challenge(refused) == {
        "realm": "api",
        "error": "insufficient_scope",
        "error_description": "the access token lacks scope",
        "scope": "admin read",
        "resource_metadata": METADATA,
    }
    assert allowed.status_code == 200, allowed.text


# -- over real HTTP: the MCP example --------------------------------------------------


@pytest.mark.slow
def test_the_mcp_example_tells_a_client_without_a_token_what_to_ask_for(
    tmp_path: Path,
) -> None:
    command = [sys.executable, "-m", "examples.mcp_server"]
    database = str(tmp_path / "example.db")
    with (
        run_example("mcp_server", tmp_path, free_port(), command, EXAMPLE_DB=database) as mcp,
        httpx.Client(base_url=mcp.url, timeout=10) as http,
    ):
        metadata_url = f"{mcp.url}/.well-known/oauth-protected-resource/mcp"
        refused = http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        metadata = http.get(metadata_url)
    assert refused.status_code == 401
    for attributes in challenges(refused).values():
        assert attributes["scope"] == "mcp"
        assert attributes["resource_metadata"] == metadata_url
    assert metadata.json()["scopes_supported"] == ["mcp"]
