"""A Starlette host application for the real-server tests (``tests/test_real_servers.py``).

``OAuth2App`` is mounted at ``/oauth2`` and its metadata is also served at the
host's root well-known URI (RFC 8414 §3.1). ``/api`` is the resource-server side
on the same instance: ``GET /api/me`` behind ``BearerTokenMiddleware`` with an
in-process ``LocalIntrospector``, answering who the token speaks for. The
configuration comes from the environment, set by the test that starts the
server process (``tests/servers/process.py``):

* ``ASGI_OAUTH_TEST_DB``: the store, a database URL or a SQLite file path;
* ``ASGI_OAUTH_TEST_ISSUER``: ``http://127.0.0.1:<port>/oauth2``;
* ``ASGI_OAUTH_TEST_SECRET_KEY`` (optional): the session key instances share;
* ``ASGI_OAUTH_TEST_CACHE_TTL`` (optional): seconds ``/api`` caches an answer;
* ``ASGI_OAUTH_TEST_KEY_ENCRYPTION_KEY`` (optional): turns OpenID Connect on.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, Router

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.middleware import BearerTokenMiddleware, BearerUser, LocalIntrospector
from asgi_oauth.storage import open_storage

server = AuthorizationServer(
    open_storage(os.environ["ASGI_OAUTH_TEST_DB"]),
    Settings(
        issuer=os.environ["ASGI_OAUTH_TEST_ISSUER"],
        insecure_transport=True,
        scope_descriptions={"read": "Read your data", "write": "Change your data"},
        # Polling every second keeps the device-flow tests short.
        device_poll_interval=1,
        secret_key=os.environ.get("ASGI_OAUTH_TEST_SECRET_KEY"),
        key_encryption_key=os.environ.get("ASGI_OAUTH_TEST_KEY_ENCRYPTION_KEY"),
    ),
)
oauth_app = OAuth2App(server)

_cache_ttl = os.environ.get("ASGI_OAUTH_TEST_CACHE_TTL")
introspector = (
    LocalIntrospector(server)
    if _cache_ttl is None
    else LocalIntrospector(server, cache_ttl=float(_cache_ttl))
)


async def me(request: Request) -> JSONResponse:
    """Who the bearer token speaks for, as the middleware published it."""
    user = request.user
    assert isinstance(user, BearerUser)
    return JSONResponse(
        {
            "sub": user.subject,
            "client_id": user.client_id,
            "scope": " ".join(sorted(request.auth.scopes)),
        }
    )


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await server.close()


app = Starlette(
    routes=[
        Route(oauth_app.metadata_path, endpoint=oauth_app.metadata_app),
        Mount("/oauth2", app=oauth_app),
        # Only this mount is behind the middleware: every path below it needs a token.
        Mount(
            "/api",
            app=BearerTokenMiddleware(Router([Route("/me", me)]), introspector=introspector),
        ),
    ],
    lifespan=lifespan,
)
