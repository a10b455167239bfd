"""``require_scopes`` on Starlette endpoints: RFC 6750 answers from the route itself."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asgi_oauth import AuthorizationServer
from asgi_oauth.middleware import BearerTokenMiddleware, require_scopes

from ..conftest import Credentials
from .test_bearer import Unavailable, access_token, bearer, challenge, connect, no_token

pytestmark = pytest.mark.anyio


@require_scopes("admin", "write")
async def administer(request: Request) -> Response:
    """Administer things."""
    return JSONResponse({"admin": request.user.identity})


@require_scopes("read", realm="photos")
async def photos(request: Request) -> Response:
    return JSONResponse({"photos": []})


ROUTES = [Route("/admin", administer), Route("/public/admin", administer), Route("/photos", photos)]


def app(public: tuple[str, ...] = ("/public",), **options: Any) -> Starlette:
    middleware = [Middleware(BearerTokenMiddleware, public=public, **options)]
    return Starlette(routes=ROUTES, middleware=middleware)


async def test_missing_scope_is_403_insufficient_scope_naming_them(
    server: AuthorizationServer, caller: Credentials
) -> None:
    token = await access_token(server, caller, "read admin")
    async with connect(app(introspector=server)) as client:
        response = await client.get("/admin", headers=bearer(token))
    assert response.status_code == 403
    assert challenge(response) == {
        "realm": "api",
        "error": "insufficient_scope",
        "error_description": "the access token lacks scope",
        "scope": "admin read write",  # with the token's own (MCP SEP-835)
    }
    assert response.json() == {
        "error": "insufficient_scope",
        "error_description": "the access token lacks scope",
    }


async def test_token_with_every_scope_reaches_the_endpoint(
    server: AuthorizationServer, caller: Credentials
) -> None:
    token = await access_token(server, caller, "admin write")
    async with connect(app(introspector=server)) as client:
        response = await client.get("/admin", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {"admin": caller.client_id}


async def test_public_path_without_a_token_is_401_without_error(
    server: AuthorizationServer,
) -> None:
    async with connect(app(introspector=server)) as client:
        response = await client.get("/public/admin")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == no_token(scope="admin write")


async def test_public_path_with_an_invalid_token_is_401_invalid_token(
    server: AuthorizationServer,
) -> None:
    async with connect(app(introspector=server)) as client:
        response = await client.get("/public/admin", headers=bearer("garbage"))
    assert response.status_code == 401
    assert challenge(response)["error"] == "invalid_token"


async def test_public_path_with_enough_scope_reaches_the_endpoint(
    server: AuthorizationServer, caller: Credentials
) -> None:
    token = await access_token(server, caller, "admin write")
    async with connect(app(introspector=server)) as client:
        response = await client.get("/public/admin", headers=bearer(token))
    assert response.status_code == 200


async def test_public_path_when_introspection_is_unavailable_is_503() -> None:
    async with connect(app(introspector=Unavailable())) as client:
        response = await client.get("/public/admin", headers=bearer("t"))
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"


async def test_decorator_refusal_carries_the_headers_the_middleware_sends() -> None:
    async with connect(app(introspector=Unavailable())) as client:
        response = await client.get("/public/admin", headers=bearer("t"))
    assert response.status_code == 503
    assert response.headers.get("retry-after") == "1"
    assert response.headers.get("cache-control") == "no-store"


async def test_without_the_middleware_every_request_is_401() -> None:
    async with connect(Starlette(routes=ROUTES)) as client:
        response = await client.get("/admin", headers=bearer("anything"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api", scope="admin write"'
    assert response.json() == {"error_description": "a bearer token is required"}


async def test_behind_the_middleware_the_decorator_answers_with_its_challenge(
    server: AuthorizationServer,
) -> None:
    resource = "https://api.example"
    async with connect(app(public=("/",), introspector=server, resource=resource)) as client:
        response = await client.get("/photos")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == no_token(
        metadata="https://api.example/.well-known/oauth-protected-resource", scope="read"
    )


async def test_without_the_middleware_the_decorator_uses_its_own_realm() -> None:
    async with connect(Starlette(routes=ROUTES)) as client:
        response = await client.get("/photos")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="photos", scope="read"'


def test_decorated_endpoint_keeps_its_name_and_docstring() -> None:
    assert administer.__name__ == "administer"
    assert administer.__doc__ == "Administer things."


async def test_decorator_checks_scopes_not_the_rules(
    server: AuthorizationServer, caller: Credentials
) -> None:
    """The middleware lets any valid token through; the endpoint still wants read."""
    token = await access_token(server, caller, "write")
    async with connect(app(introspector=server, protect={"/": ""})) as client:
        response: httpx.Response = await client.get("/photos", headers=bearer(token))
    assert response.status_code == 403
    assert challenge(response)["scope"] == "read write"
