"""``asgi-oauth serve``: a standalone authorization server under uvicorn.

On the SQLite default (``./asgi_oauth.db``) or the database ``--db`` names.
With ``--demo`` it registers, once, a confidential client, a public PKCE client
and a user, prints their credentials, and serves ``/api/demo``: a route
protected by the bearer middleware, to try a token on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..crypto import generate_token
from ..server import AuthorizationServer
from ..storage import Storage
from ..types import DEVICE_CODE
from ._common import (
    add_command,
    add_database_option,
    key_encryption_key,
    settings,
    shown_database,
)
from .database import migrate_storage

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse

DEMO_CLIENT_ID = "demo-client"
DEMO_APP_ID = "demo-app"
DEMO_USER = "demo"
DEMO_REDIRECT_URI = "http://127.0.0.1/callback"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = add_command(commands, "serve", "run a standalone authorization server under uvicorn")
    add_database_option(run)
    run.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    run.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    run.add_argument(
        "--issuer",
        help="the server's public URL (env ASGI_OAUTH_ISSUER; default http(s)://HOST:PORT)",
    )
    run.add_argument(
        "--insecure-transport",
        action="store_true",
        default=None,
        help="allow http (local development only; env ASGI_OAUTH_INSECURE_TRANSPORT)",
    )
    run.add_argument(
        "--demo",
        action="store_true",
        help="register demo clients and a demo user once, and serve /api/demo",
    )
    run.set_defaults(run=serve)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    base = settings(args, insecure_transport=args.insecure_transport)
    scheme = "http" if base.insecure_transport else "https"
    issuer = args.issuer or os.environ.get("ASGI_OAUTH_ISSUER")
    config = settings(
        args,
        issuer=issuer or f"{scheme}://{args.host}:{args.port}",
        insecure_transport=args.insecure_transport,
    )
    # Only once the settings are known good: a refused command makes no key file.
    config = dataclasses.replace(config, key_encryption_key=key_encryption_key(args))
    asyncio.run(prepare(AuthorizationServer.from_settings(config), demo=args.demo))
    # A fresh server: uvicorn runs the app on its own event loop.
    app = build_app(AuthorizationServer.from_settings(config), demo=args.demo)
    print(f"listening on http://{args.host}:{args.port}  (database {shown_database(args)})")
    print(f"metadata: {config.issuer}/.well-known/oauth-authorization-server")
    if config.openid_enabled:
        print(f"OpenID Connect: {config.issuer}/.well-known/openid-configuration")
    else:
        print("OpenID Connect is off: set ASGI_OAUTH_KEY_ENCRYPTION_KEY to turn it on")
    if args.demo:
        print(f"demo API: {config.issuer}/api/demo  (send: Authorization: Bearer TOKEN)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


async def prepare(server: AuthorizationServer, *, demo: bool) -> None:
    """Create or migrate the database, and the demo clients and user when asked."""
    storage: Storage = server.storage
    try:
        await migrate_storage(storage)
        if demo:
            await _register_demo(server)
    finally:
        await storage.close()


async def _register_demo(server: AuthorizationServer) -> None:
    storage = server.storage
    if await storage.get_client(DEMO_CLIENT_ID) is None:
        registered = await server.register_client(
            name="Demo client",
            grant_types=["client_credentials"],
            scope=["read", "write"],
            client_id=DEMO_CLIENT_ID,
        )
        print(f"demo client_id:     {DEMO_CLIENT_ID}")
        print(f"demo client_secret: {registered.client_secret}  (shown once)")
    else:
        print(f"demo client {DEMO_CLIENT_ID!r} exists; its secret was shown when created")
    if await storage.get_client(DEMO_APP_ID) is None:
        await server.register_client(
            name="Demo app",
            redirect_uris=[DEMO_REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token", DEVICE_CODE],
            scope=["read", "write", "openid", "profile"],
            public=True,
            client_id=DEMO_APP_ID,
        )
        print(f"demo public client: {DEMO_APP_ID}  (PKCE; redirect {DEMO_REDIRECT_URI}, any port)")
    if await storage.get_user(DEMO_USER) is None:
        password = generate_token(12)
        await server.create_user(DEMO_USER, password)
        print(f"demo user:          {DEMO_USER} / {password}  (shown once)")


def build_app(server: AuthorizationServer, *, demo: bool) -> Starlette:
    """The authorization server at the issuer's path, and the demo API beside it."""
    # Imported here: the other commands start without the web stack.
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Mount, Route

    from ..app import OAuth2App
    from ..middleware import BearerTokenMiddleware

    oauth = OAuth2App(server)
    mount = server.settings.issuer_path
    routes: list[Route | Mount] = []
    middleware: list[Middleware] = []
    if demo:
        routes.append(Route(mount + "/api/demo", _demo_api))
        middleware.append(
            Middleware(BearerTokenMiddleware, introspector=server, protect={mount + "/api": ()})
        )
    if mount:
        routes.append(oauth.metadata_route)
    routes.append(Mount(mount, app=oauth) if mount else Mount("/", app=oauth))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await server.close()

    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


async def _demo_api(request: Request) -> JSONResponse:
    from starlette.responses import JSONResponse

    return JSONResponse(
        {
            "message": "this route is protected by BearerTokenMiddleware",
            "sub": request.user.display_name,
            "scope": sorted(request.auth.scopes),
        }
    )
