"""Two ``BearerTokenMiddleware`` in one application, each guarding its own resource.

Two MCP servers behind one Starlette app, say: the outer middleware protects
``/mcp-a`` for resource A, the inner one ``/mcp-b`` for resource B. Each judges
the requests for its own prefix; on the other's, the inner one leaves what the
outer one published alone, and a token meant for one resource (RFC 8707) is not
taken by the other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from asgi_oauth import AuthorizationServer, IntrospectionResult
from asgi_oauth.middleware import BearerTokenMiddleware, LocalIntrospector

from .test_bearer import bearer, challenge, connect, starlette_echo
from .test_dpop import stored_token

pytestmark = pytest.mark.anyio

RESOURCE_A = "https://api.example/mcp-a"
RESOURCE_B = "https://api.example/mcp-b"


class Counting:
    """The server's own introspector, counting the tokens it was asked about."""

    def __init__(self, server: AuthorizationServer) -> None:
        self._local = LocalIntrospector(server)
        self.calls = 0

    async def introspect_token(self, token: str) -> IntrospectionResult:
        self.calls += 1
        return await self._local.introspect_token(token)


@pytest.fixture
def inner(server: AuthorizationServer) -> Counting:
    return Counting(server)


@pytest.fixture
async def client(server: AuthorizationServer, inner: Counting) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(
        routes=[Route("/{path:path}", starlette_echo, methods=["GET", "POST"])],
        middleware=[
            Middleware(
                BearerTokenMiddleware,
                introspector=server,
                protect={"/mcp-a": "read"},
                resource=RESOURCE_A,
            ),
            Middleware(
                BearerTokenMiddleware,
                introspector=inner,
                protect={"/mcp-b": "read"},
                public=["/mcp-b/health"],
                resource=RESOURCE_B,
            ),
        ],
    )
    async with connect(app) as c:
        yield c


@pytest.mark.parametrize("path", ["/mcp-a", "/mcp-a/tools"])
async def test_the_outer_middlewares_user_reaches_the_outer_prefix(
    client: httpx.AsyncClient, server: AuthorizationServer, inner: Counting, path: str
) -> None:
    token = await stored_token(server, (RESOURCE_A,))
    response = await client.get(path, headers=bearer(token))
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["authenticated"] is True and seen["subject"] == "user-1"
    assert seen["claims"]["aud"] == RESOURCE_A
    assert inner.calls == 0


async def test_the_inner_middlewares_user_reaches_the_inner_prefix(
    client: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    token = await stored_token(server, (RESOURCE_B,))
    response = await client.get("/mcp-b/tools", headers=bearer(token))
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["authenticated"] is True and seen["claims"]["aud"] == RESOURCE_B


@pytest.mark.parametrize(
    ("audience", "path"),
    [(RESOURCE_A, "/mcp-b/tools"), (RESOURCE_B, "/mcp-a/tools")],
    ids=["a-token-at-b", "b-token-at-a"],
)
async def test_a_token_for_one_resource_is_refused_by_the_other(
    client: httpx.AsyncClient, server: AuthorizationServer, audience: str, path: str
) -> None:
    token = await stored_token(server, (audience,))
    response = await client.get(path, headers=bearer(token))
    assert response.status_code == 401, response.text
    assert challenge(response)["error"] == "invalid_token"
    assert response.json()["error_description"] == (
        "the access token is meant for another resource"
    )


async def test_a_public_path_of_the_inner_middleware_keeps_the_outer_ones_answer(
    client: httpx.AsyncClient, server: AuthorizationServer, inner: Counting
) -> None:
    token = await stored_token(server, ())
    response = await client.get("/mcp-b/health", headers=bearer(token))
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["authenticated"] is True and seen["subject"] == "user-1"
    assert inner.calls == 0


async def test_a_path_neither_protects_keeps_the_outer_ones_refusal(
    client: httpx.AsyncClient, server: AuthorizationServer, inner: Counting
) -> None:
    token = await stored_token(server, (RESOURCE_B,))
    response = await client.get("/elsewhere", headers=bearer(token))
    assert response.status_code == 200, response.text
    seen = response.json()
    # The outer middleware judged it (not for A) and said so; the inner one kept out.
    assert seen["authenticated"] is False and seen["error"] == "invalid_token"
    assert inner.calls == 0
