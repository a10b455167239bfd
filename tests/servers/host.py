"""The Starlette host application the real-server tests run, as a factory.

``OAuth2App`` is mounted at ``/oauth2`` and its metadata is also served at the
host's root well-known URI (RFC 8414 §3.1). ``/api`` is the resource-server side
on the same instance: ``GET /api/me`` behind ``BearerTokenMiddleware`` with an
in-process ``LocalIntrospector``, answering who the token speaks for.
``tests/servers/app.py`` builds it from the environment for server processes;
the concurrency contract builds it in-process on a memory store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, Router

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.middleware import BearerTokenMiddleware, BearerUser, LocalIntrospector

#: What every test server shares; ``server_settings`` adds to it.
BASE_SETTINGS: dict[str, object] = {
    "insecure_transport": True,
    "scope_descriptions": {"read": "Read your data", "write": "Change your data"},
    # Polling every second keeps the device-flow tests short.
    "device_poll_interval": 1,
}


def server_settings(issuer: str, **more: object) -> Settings:
    return Settings(issuer=issuer, **{**BASE_SETTINGS, **more})  # type: ignore[arg-type]


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


def host_app(server: AuthorizationServer, *, cache_ttl: float | None = None) -> Starlette:
    """The host application around ``server``; its lifespan closes the server's store."""
    oauth_app = OAuth2App(server)
    introspector = (
        LocalIntrospector(server)
        if cache_ttl is None
        else LocalIntrospector(server, cache_ttl=cache_ttl)
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await server.close()

    return Starlette(
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
