"""The ``--demo`` of ``asgi-oauth serve``: something to try the server with at once.

A confidential client (client credentials), a public PKCE client (authorization
code, device flow), a user, and ``/api/demo``: a route protected by the bearer
middleware, to try a token on. They are registered on the first start only; their
secrets are printed that once, and a later start says how to make new ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..crypto import generate_token
from ..server import AuthorizationServer
from ..types import DEVICE_CODE

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

DEMO_CLIENT_ID = "demo-client"
DEMO_APP_ID = "demo-app"
DEMO_USER = "demo"
DEMO_REDIRECT_URI = "http://127.0.0.1/callback"

_RULE = "-" * 72


async def register_demo(server: AuthorizationServer, *, hint: Callable[..., str]) -> list[str]:
    """Register what is missing of the demo; the lines telling a person how to use it.

    ``hint(*words)`` is the command line a person would type to run ``words``."""
    storage = server.storage
    lines: list[str] = []
    if await storage.get_client(DEMO_CLIENT_ID) is None:
        registered = await server.register_client(
            name="Demo client",
            grant_types=["client_credentials"],
            scope=["read", "write"],
            client_id=DEMO_CLIENT_ID,
        )
        lines.append(f"demo client_id:     {DEMO_CLIENT_ID}")
        lines.append(f"demo client_secret: {registered.client_secret}  (shown once)")
    else:
        rotate = hint("clients", "rotate-secret", DEMO_CLIENT_ID)
        lines.append(f"demo client {DEMO_CLIENT_ID!r} exists; for a new secret: {rotate}")
    if await storage.get_client(DEMO_APP_ID) is None:
        await server.register_client(
            name="Demo app",
            redirect_uris=[DEMO_REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token", DEVICE_CODE],
            scope=["read", "write", "openid", "profile"],
            public=True,
            client_id=DEMO_APP_ID,
        )
    lines.append(
        f"demo public client: {DEMO_APP_ID}  (PKCE; redirect {DEMO_REDIRECT_URI}, any port)"
    )
    if await storage.get_user(DEMO_USER) is None:
        password = generate_token(12)
        await server.create_user(DEMO_USER, password)
        lines.append(f"demo user:          {DEMO_USER} / {password}  (shown once)")
    else:
        again = hint("users", "set-password", DEMO_USER)
        lines.append(f"demo user {DEMO_USER!r} exists; for a new password: {again}")
    return lines


def framed(lines: list[str]) -> list[str]:
    """The demo credentials between two rules, so they stand out of what came before."""
    title = " demo credentials "
    head = _RULE[: (len(_RULE) - len(title)) // 2]
    top = (head + title + _RULE)[: len(_RULE)]
    if any(line.endswith("(shown once)") for line in lines):
        lines = [*lines, "store them now: they are not shown again"]
    return [top, *lines, _RULE]


def demo_api(server: AuthorizationServer, mount: str) -> tuple[Route, Middleware]:
    """``/api/demo`` below ``mount``, and the bearer middleware that protects ``/api``."""
    from starlette.middleware import Middleware
    from starlette.routing import Route

    from ..middleware import BearerTokenMiddleware

    protect = {mount + "/api": ()}
    return (
        Route(mount + "/api/demo", _demo_api),
        Middleware(BearerTokenMiddleware, introspector=server, protect=protect),
    )


async def _demo_api(request: Request) -> JSONResponse:
    from starlette.responses import JSONResponse

    return JSONResponse(
        {
            "message": "this route is protected by BearerTokenMiddleware",
            "sub": request.user.display_name,
            "scope": sorted(request.auth.scopes),
        }
    )
