"""BearerTokenMiddleware in front of Starlette, FastAPI and a bare ASGI app (RFC 6750).

The server's clock starts at the wall clock here, so the introspection cache
(which runs on ``time.time``) really holds active tokens, as in production.
The other ``test_middleware_*`` modules import the helpers defined here.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.authentication import BaseUser, requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asgi_oauth import (
    AuthorizationServer,
    IntrospectionResult,
    Settings,
    StorageError,
    TokenResponse,
)
from asgi_oauth.middleware import (
    BearerCredentials,
    BearerTokenMiddleware,
    BearerUser,
    IntrospectionUnavailable,
    LocalIntrospector,
)
from asgi_oauth.storage import MemoryStorage
from asgi_oauth.types import DPOP_SIGNING_ALGORITHMS

from ..conftest import ISSUER, Credentials, FakeClock
from ..helpers import request
from ..test_grant_authorization_code import exchange, issue_code
from .conftest import register_caller

pytestmark = pytest.mark.anyio

AppFactory = Callable[..., ASGIApp]


# -- helpers shared by the test_middleware_* modules --------------------------


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def challenge(response: httpx.Response) -> dict[str, str]:
    """The attributes of the ``Bearer`` challenge in ``WWW-Authenticate``."""
    header = response.headers["www-authenticate"]
    assert header.startswith("Bearer "), header
    return dict(re.findall(r'([a-z_]+)="([^"]*)"', header.partition(", DPoP ")[0]))


def no_token(realm: str = "api", metadata: str | None = None, scope: str | None = None) -> str:
    """The challenges for a request without a token: Bearer, and DPoP (RFC 9449 §7.2),
    naming the ``scope`` the request needs if it needs any."""
    tail = "" if metadata is None else f', resource_metadata="{metadata}"'
    needs = "" if scope is None else f', scope="{scope}"'
    algs = " ".join(DPOP_SIGNING_ALGORITHMS)
    return f'Bearer realm="{realm}"{needs}{tail}, DPoP realm="{realm}"{needs}, algs="{algs}"{tail}'


@contextlib.asynccontextmanager
async def connect(app: ASGIApp, **transport: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for ``app`` in this process."""
    asgi = httpx.ASGITransport(app=app, **transport)
    async with httpx.AsyncClient(transport=asgi, base_url="https://api.example") as client:
        yield client


def describe(auth: object, user: object) -> dict[str, object]:
    """What a route learns from the middleware, as JSON."""
    assert isinstance(auth, BearerCredentials)
    assert isinstance(user, BaseUser)
    seen: dict[str, object] = {
        "authenticated": user.is_authenticated,
        "scopes": auth.scopes,
        "error": None if auth.error is None else auth.error.error,
        "error_status": None if auth.error is None else auth.error.status,
    }
    if isinstance(user, BearerUser):
        seen["client_id"] = user.client_id
        seen["subject"] = user.subject
        seen["claims"] = user.introspection.to_dict()
    return seen


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """A bare ASGI app answering with ``scope["user"]``/``scope["auth"]`` and the body."""
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    payload = {
        **describe(scope["auth"], scope["user"]),
        "path": scope["path"],
        "body": body.decode(),
    }
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


def plain_app(**options: Any) -> ASGIApp:
    return BearerTokenMiddleware(echo, **options)


async def starlette_echo(request: Request) -> JSONResponse:
    body = (await request.body()).decode()
    return JSONResponse(
        {**describe(request.auth, request.user), "path": request.url.path, "body": body}
    )


def starlette_app(**options: Any) -> ASGIApp:
    return Starlette(
        routes=[Route("/{path:path}", starlette_echo, methods=["GET", "POST"])],
        middleware=[Middleware(BearerTokenMiddleware, **options)],
    )


def fastapi_app(**options: Any) -> ASGIApp:
    api = FastAPI()
    api.add_middleware(BearerTokenMiddleware, **options)

    @api.api_route("/{path:path}", methods=["GET", "POST"])
    async def route(request: Request) -> dict[str, object]:
        body = (await request.body()).decode()
        return {**describe(request.auth, request.user), "path": request.url.path, "body": body}

    return api


async def access_token(server: AuthorizationServer, creds: Credentials, scope: str) -> str:
    """A client-credentials access token (no ``sub``)."""
    form = {"grant_type": "client_credentials", "scope": scope}
    return (await server.token(request(creds, **form))).access_token


async def user_tokens(server: AuthorizationServer, creds: Credentials, scope: str) -> TokenResponse:
    """An access and refresh token for ``user-1``, by the authorization code grant."""
    code = await issue_code(server, creds, scope=scope)
    return await server.token(request(creds, **exchange(creds, code)))


class Called:
    """An ASGI app that records that it ran, and answers 204."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


class Unavailable:
    """An introspector that cannot decide."""

    async def introspect_token(self, token: str) -> IntrospectionResult:
        raise IntrospectionUnavailable("the authorization server is down")


class Broken:
    """An introspector with a bug of its own."""

    async def introspect_token(self, token: str) -> IntrospectionResult:
        raise RuntimeError("introspector bug")


# -- fixtures ------------------------------------------------------------------


@pytest.fixture(
    params=[starlette_app, fastapi_app, plain_app], ids=["starlette", "fastapi", "asgi"]
)
def framework(request: pytest.FixtureRequest) -> AppFactory:
    factory: AppFactory = request.param
    return factory


@pytest.fixture
async def api(
    framework: AppFactory, server: AuthorizationServer
) -> AsyncIterator[httpx.AsyncClient]:
    """Every path needs a token; /admin needs admin and write."""
    app = framework(introspector=server, protect={"/": "", "/admin": "admin write"})
    async with connect(app) as client:
        yield client


# -- the outcomes, in every framework -----------------------------------------


async def test_no_token_is_401_with_a_challenge_without_error(api: httpx.AsyncClient) -> None:
    response = await api.get("/things")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == no_token()
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"error_description": "a bearer token is required"}


async def test_garbage_token_is_401_invalid_token(api: httpx.AsyncClient) -> None:
    response = await api.get("/things", headers=bearer("not-a-token"))
    assert response.status_code == 401
    assert challenge(response)["error"] == "invalid_token"
    assert response.json()["error"] == "invalid_token"


async def test_expired_token_is_401_invalid_token(
    api: httpx.AsyncClient, server: AuthorizationServer, caller: Credentials, clock: FakeClock
) -> None:
    token = await access_token(server, caller, "read")
    clock.advance(server.settings.access_token_lifetime)
    response = await api.get("/things", headers=bearer(token))
    assert response.status_code == 401
    assert challenge(response)["error"] == "invalid_token"


async def test_revoked_token_is_refused_at_once_although_it_was_cached(
    api: httpx.AsyncClient,
    server: AuthorizationServer,
    caller: Credentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = await access_token(server, caller, "read")
    assert (await api.get("/things", headers=bearer(token))).status_code == 200
    lookups: list[str] = []
    get_token = server.storage.get_token

    async def counted(token_hash: str) -> Any:
        lookups.append(token_hash)
        return await get_token(token_hash)

    monkeypatch.setattr(server.storage, "get_token", counted)
    assert (await api.get("/things", headers=bearer(token))).status_code == 200
    assert lookups == []  # answered from the cache
    await server.revoke(request(caller, token=token))
    response = await api.get("/things", headers=bearer(token))
    assert response.status_code == 401
    assert challenge(response)["error"] == "invalid_token"


async def test_refresh_token_as_bearer_is_401_invalid_token(
    api: httpx.AsyncClient, server: AuthorizationServer, caller: Credentials
) -> None:
    pair = await user_tokens(server, caller, "read")
    assert pair.refresh_token is not None
    assert (await server.introspect_token(pair.refresh_token)).active
    response = await api.get("/things", headers=bearer(pair.refresh_token))
    assert response.status_code == 401
    assert challenge(response)["error"] == "invalid_token"


async def test_insufficient_scope_is_403_naming_the_needed_scopes(
    api: httpx.AsyncClient, server: AuthorizationServer, caller: Credentials
) -> None:
    token = await access_token(server, caller, "read admin")
    response = await api.get("/admin/users", headers=bearer(token))
    assert response.status_code == 403
    attributes = challenge(response)
    assert attributes["error"] == "insufficient_scope"
    # What /admin needs, and what the token already has (MCP SEP-835).
    assert attributes["scope"] == "admin read write"
    assert response.json()["error"] == "insufficient_scope"


async def test_token_with_the_needed_scopes_reaches_the_protected_prefix(
    api: httpx.AsyncClient, server: AuthorizationServer, caller: Credentials
) -> None:
    token = await access_token(server, caller, "admin write")
    response = await api.get("/admin/users", headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["scopes"] == ["admin", "write"]


async def test_valid_token_reaches_the_route_with_user_and_claims(
    api: httpx.AsyncClient, server: AuthorizationServer, caller: Credentials
) -> None:
    pair = await user_tokens(server, caller, "read write")
    response = await api.get("/things", headers=bearer(pair.access_token))
    assert response.status_code == 200
    seen = response.json()
    assert seen["authenticated"] is True
    assert seen["scopes"] == ["read", "write"]
    assert seen["client_id"] == caller.client_id
    assert seen["subject"] == "user-1"
    claims = (await server.introspect_token(pair.access_token)).to_dict()
    assert seen["claims"] == claims
    assert claims["iss"] == ISSUER and claims["token_type"] == "Bearer"
    assert seen["error"] is None


async def test_client_credentials_token_has_no_subject(
    api: httpx.AsyncClient, server: AuthorizationServer, caller: Credentials
) -> None:
    token = await access_token(server, caller, "read")
    seen = (await api.get("/things", headers=bearer(token))).json()
    assert seen["subject"] is None
    assert seen["client_id"] == caller.client_id


async def test_starlette_requires_works_behind_the_middleware(
    server: AuthorizationServer, caller: Credentials
) -> None:
    @requires("read")
    async def reader(request: Request) -> JSONResponse:
        return JSONResponse({"reader": request.user.identity})

    app = Starlette(
        routes=[Route("/read", reader)],
        middleware=[Middleware(BearerTokenMiddleware, introspector=server)],
    )
    async with connect(app) as client:
        allowed = await client.get(
            "/read", headers=bearer(await access_token(server, caller, "read"))
        )
        refused = await client.get(
            "/read", headers=bearer(await access_token(server, caller, "write"))
        )
    assert allowed.status_code == 200
    assert allowed.json() == {"reader": caller.client_id}
    assert refused.status_code == 403


@pytest.fixture
async def short_lived() -> AsyncIterator[AuthorizationServer]:
    """A server on the wall clock whose access tokens live one second."""
    server = AuthorizationServer(MemoryStorage(), Settings(issuer=ISSUER, access_token_lifetime=1))
    yield server
    await server.close()


async def test_token_cached_as_active_is_refused_once_its_exp_passes(
    short_lived: AuthorizationServer,
) -> None:
    """The cache runs on the wall clock, so this one waits (at most a second) for exp."""
    caller = await register_caller(short_lived)
    token = await access_token(short_lived, caller, "read")
    async with connect(plain_app(introspector=short_lived)) as client:
        first = await client.get("/", headers=bearer(token))
        assert first.status_code == 200
        exp = first.json()["claims"]["exp"]
        assert (await client.get("/", headers=bearer(token))).status_code == 200
        await anyio.sleep(max(0.0, exp - time.time()) + 0.05)
        assert time.time() >= exp
        response = await client.get("/", headers=bearer(token))
    assert response.status_code == 401
    assert challenge(response)["error"] == "invalid_token"


# -- failing closed -----------------------------------------------------------


async def test_unavailable_introspection_is_503_and_the_app_is_not_called() -> None:
    app = Called()
    async with connect(BearerTokenMiddleware(app, introspector=Unavailable())) as client:
        response = await client.get("/things", headers=bearer("some-token"))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "temporarily_unavailable"
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'
    assert app.calls == 0


async def test_unavailable_introspection_on_a_public_path_gives_an_anonymous_user() -> None:
    app = BearerTokenMiddleware(echo, introspector=Unavailable(), public=["/"])
    async with connect(app) as client:
        response = await client.get("/things", headers=bearer("some-token"))
    assert response.status_code == 200
    seen = response.json()
    assert seen["authenticated"] is False
    assert seen["error"] == "temporarily_unavailable"
    assert seen["error_status"] == 503


class BrokenStore(MemoryStorage):
    async def get_token(self, token_hash: str) -> Any:
        raise StorageError("database is locked")


async def test_local_introspector_over_a_failing_store_is_503() -> None:
    server = AuthorizationServer(BrokenStore(), Settings(issuer=ISSUER))
    app = Called()
    async with connect(BearerTokenMiddleware(app, introspector=server)) as client:
        response = await client.get("/things", headers=bearer("some-token"))
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert app.calls == 0


@pytest.mark.parametrize("public", [(), ("/",)], ids=["protected", "public"])
async def test_unexpected_introspector_error_propagates_and_the_app_is_not_called(
    public: tuple[str, ...],
) -> None:
    app = Called()
    async with connect(BearerTokenMiddleware(app, introspector=Broken(), public=public)) as client:
        with pytest.raises(RuntimeError, match="introspector bug"):
            await client.get("/things", headers=bearer("some-token"))
    assert app.calls == 0


async def test_unexpected_introspector_error_is_a_500_from_the_server() -> None:
    app = BearerTokenMiddleware(Called(), introspector=Broken())
    async with connect(app, raise_app_exceptions=False) as client:
        response = await client.get("/things", headers=bearer("some-token"))
    assert response.status_code == 500


# -- other scopes and construction ---------------------------------------------


async def test_lifespan_passes_through_untouched() -> None:
    seen: list[tuple[Scope, Receive, Send]] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, receive, send))
        await send({"type": "lifespan.startup.complete"})

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    await BearerTokenMiddleware(inner, introspector=Unavailable())(scope, receive, send)
    assert seen == [(scope, receive, send)]
    assert "auth" not in scope and "user" not in scope
    assert sent == [{"type": "lifespan.startup.complete"}]


async def test_a_server_is_wrapped_in_a_local_introspector(server: AuthorizationServer) -> None:
    middleware = BearerTokenMiddleware(echo, introspector=server)
    assert isinstance(middleware.introspector, LocalIntrospector)
    assert middleware.introspector.server is server


async def test_custom_realm_is_named_in_the_challenge() -> None:
    app = BearerTokenMiddleware(Called(), introspector=Unavailable(), realm="photos")
    async with connect(app) as client:
        response = await client.get("/")
    assert response.headers["www-authenticate"] == no_token("photos")
