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
- ``local-jwt``: ``local`` with a server that signs JWT access tokens (RFC 9068:
  ``key_encryption_key`` set, ``access_token_format="jwt"``, RS256), which the
  ``LocalIntrospector`` checks here: signature, claims and the revocation list,
  not the token's row. ``BENCH_TOKENS`` (default 1) tokens are issued, one per
  line in ``BENCH_TOKEN_FILE``;
- ``remote``: ``BearerTokenMiddleware`` with a ``RemoteIntrospector`` asking
  ``BENCH_INTROSPECTION_URL`` (``apps:oauth`` in another process) as the
  resource server ``apps.RESOURCE_SERVER_ID``.

The protected variants need a valid token on every path and keep the
introspectors' default cache (10 s for an active token) unless ``BENCH_CACHE_TTL``
gives another ``cache_ttl`` (``0``: every request is a cache miss, concurrent ones
sharing one lookup; a verified JWT is remembered until it expires, whatever this
says). ``BENCH_MAX_CACHE_SIZE`` bounds the local introspector's caches (a JWT
scenario sending more distinct tokens than that verifies every one it gets).
``BENCH_ISSUER`` is set by ``run.serve``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from apps import RESOURCE_SERVER_ID, RESOURCE_SERVER_SECRET, storage_from_env
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_oauth import AuthorizationServer, OAuthRequest, Settings
from asgi_oauth.middleware import BearerTokenMiddleware, LocalIntrospector, RemoteIntrospector

PATH = "/api/hello"
#: Encrypts the JWT scenario's signing keys in its throwaway store: a bench constant.
KEY_ENCRYPTION_KEY = "bench-key-encryption-key-not-a-secret-0123456789"
#: Tokens issued at once at startup (their writes share SQLite's group commits).
ISSUE_BATCH = 50

Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


def bare(lifespan: Lifespan | None = None) -> Starlette:
    return Starlette(routes=[Route(PATH, hello)], lifespan=lifespan)


def _cache_ttl() -> float | None:
    """The introspectors' ``cache_ttl`` from ``BENCH_CACHE_TTL``; None: their default."""
    ttl = os.environ.get("BENCH_CACHE_TTL")
    return float(ttl) if ttl else None


def local(*, jwt: bool = False) -> Starlette:
    settings = Settings(issuer=os.environ["BENCH_ISSUER"], insecure_transport=True)
    if jwt:
        settings = Settings(
            issuer=settings.issuer,
            insecure_transport=True,
            key_encryption_key=KEY_ENCRYPTION_KEY,
            access_token_format="jwt",
        )
    server = AuthorizationServer(storage_from_env(), settings)
    token_file = Path(os.environ["BENCH_TOKEN_FILE"])
    count = int(os.environ.get("BENCH_TOKENS", "1"))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await _issue_tokens(server, token_file, count)
            yield
        finally:
            await server.close()

    app = bare(lifespan)
    options: dict[str, Any] = {}
    ttl = _cache_ttl()
    if ttl is not None:
        options["cache_ttl"] = ttl
    max_cache_size = os.environ.get("BENCH_MAX_CACHE_SIZE")
    if max_cache_size:
        options["max_cache_size"] = int(max_cache_size)
    app.add_middleware(BearerTokenMiddleware, introspector=LocalIntrospector(server, **options))
    return app


async def _issue_tokens(server: AuthorizationServer, token_file: Path, count: int) -> None:
    """``count`` access tokens for one client, one per line in ``token_file``."""
    registered = await server.register_client(
        name="bench-local", grant_types=["client_credentials"], scope=["read"]
    )
    assert registered.client_secret is not None
    pair = f"{registered.client.client_id}:{registered.client_secret}".encode()
    request = OAuthRequest(
        form={"grant_type": "client_credentials"},
        authorization="Basic " + base64.b64encode(pair).decode(),
    )
    tokens: list[str] = []
    while len(tokens) < count:
        batch = min(ISSUE_BATCH, count - len(tokens))
        issued = await asyncio.gather(*(server.token(request) for _ in range(batch)))
        tokens += [response.access_token for response in issued]
    partial = token_file.with_suffix(".partial")
    partial.write_text("\n".join(tokens) + "\n")
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


_BUILDERS: dict[str, Callable[[], Starlette]] = {
    "bare": bare,
    "local": local,
    "local-jwt": functools.partial(local, jwt=True),
    "remote": remote,
}

app = _BUILDERS[os.environ.get("BENCH_SCENARIO", "bare")]()
