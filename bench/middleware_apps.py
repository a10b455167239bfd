"""The resource-server apps ``bench/middleware.py`` serves with uvicorn (``middleware_apps:app``).

One Starlette app with one route, ``GET /api/hello`` → ``{"hello": "world"}``;
``BENCH_SCENARIO`` says what stands in front of it:

- ``bare``: nothing;
- ``local``: ``BearerTokenMiddleware`` with a ``LocalIntrospector`` over an
  ``AuthorizationServer`` in this process, on the store ``apps.storage_from_env``
  names (``BENCH_STORE``: ``sqlite`` with ``BENCH_DB``, or ``postgres`` with
  ``BENCH_POSTGRES_*``). At lifespan startup, on uvicorn's loop, a client is
  registered and one access token issued to it (client credentials, in-process);
  the token is written to ``BENCH_TOKEN_FILE`` before the server accepts
  connections;
- ``remote``: ``BearerTokenMiddleware`` with a ``RemoteIntrospector`` asking
  ``BENCH_INTROSPECTION_URL`` (``apps:oauth`` in another process) as the
  resource server ``apps.RESOURCE_SERVER_ID``.

Both protected variants need a valid token on every path and keep the
introspectors' default cache (10 s for an active token) unless ``BENCH_CACHE_TTL``
gives another ``cache_ttl`` (``0``: every request is a cache miss, concurrent ones
sharing one lookup). ``BENCH_ISSUER`` is set by ``run.serve``.
"""

from __future__ import annotations

import base64
import functools
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from apps import RESOURCE_SERVER_ID, RESOURCE_SERVER_SECRET, storage_from_env
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_oauth import AuthorizationServer, OAuthRequest, Settings
from asgi_oauth.middleware import BearerTokenMiddleware, LocalIntrospector, RemoteIntrospector

PATH = "/api/hello"

Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


def bare(lifespan: Lifespan | None = None) -> Starlette:
    return Starlette(routes=[Route(PATH, hello)], lifespan=lifespan)


def _cache_ttl() -> float | None:
    """The introspectors' ``cache_ttl`` from ``BENCH_CACHE_TTL``; None: their default."""
    ttl = os.environ.get("BENCH_CACHE_TTL")
    return float(ttl) if ttl else None


def local() -> Starlette:
    server = AuthorizationServer(
        storage_from_env(),
        Settings(issuer=os.environ["BENCH_ISSUER"], insecure_transport=True),
    )
    token_file = Path(os.environ["BENCH_TOKEN_FILE"])

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await _issue_token(server, token_file)
            yield
        finally:
            await server.close()

    app = bare(lifespan)
    ttl = _cache_ttl()
    introspector = (
        LocalIntrospector(server) if ttl is None else LocalIntrospector(server, cache_ttl=ttl)
    )
    app.add_middleware(BearerTokenMiddleware, introspector=introspector)
    return app


async def _issue_token(server: AuthorizationServer, token_file: Path) -> None:
    registered = await server.register_client(
        name="bench-local", grant_types=["client_credentials"], scope=["read"]
    )
    assert registered.client_secret is not None
    pair = f"{registered.client.client_id}:{registered.client_secret}".encode()
    request = OAuthRequest(
        form={"grant_type": "client_credentials"},
        authorization="Basic " + base64.b64encode(pair).decode(),
    )
    issued = await server.token(request)
    partial = token_file.with_suffix(".partial")
    partial.write_text(issued.access_token)
    partial.replace(token_file)  # the reader never sees half a token


def remote() -> Starlette:
    make = functools.partial(
        RemoteIntrospector,
        os.environ["BENCH_INTROSPECTION_URL"],
        client_id=RESOURCE_SERVER_ID,
        client_secret=RESOURCE_SERVER_SECRET,
    )
    ttl = _cache_ttl()
    introspector = make() if ttl is None else make(cache_ttl=ttl)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await introspector.aclose()

    app = bare(lifespan)
    app.add_middleware(BearerTokenMiddleware, introspector=introspector)
    return app


_BUILDERS: dict[str, Callable[[], Starlette]] = {"bare": bare, "local": local, "remote": remote}

app = _BUILDERS[os.environ.get("BENCH_SCENARIO", "bare")]()
