"""A Model Context Protocol server whose tools need a person's OAuth token.

The ``mcp`` package serves the tools over Streamable HTTP at ``/mcp``;
``BearerTokenMiddleware`` lets through only tokens issued for that URL, and
the ``OAuth2App`` mounted at ``/oauth2`` issues them. An MCP client needs
nothing but ``http://127.0.0.1:8000/mcp``: its first request gets 401 and a
challenge naming the resource's metadata (RFC 9728), which names the
authorization server, whose metadata (RFC 8414) has a registration endpoint.
The client registers itself (RFC 7591), or gives the https URL of its client
ID metadata document as its ``client_id``, sends the person to sign in and
approve, with PKCE and ``resource=http://127.0.0.1:8000/mcp`` (RFC 8707),
and calls the tools with a token for that resource alone. On its first start
the app creates the user ``demo`` on ``./example.db`` and prints the password
once.

Run it from the repository root (``pip install -e '.[server]' mcp``)::

    python -m examples.mcp_server
    uvicorn examples.mcp_server:app --port 8000     # another port: set EXAMPLE_PORT too

and point an MCP client that speaks OAuth at ``http://127.0.0.1:8000/mcp``
(``tests/test_mcp.py`` does it with the ``mcp`` package's ``OAuthClientProvider``).
``whoami`` answers who the token speaks for; ``add`` adds two numbers. By hand::

    curl -si -X POST http://127.0.0.1:8000/mcp          # 401, resource_metadata=...
    curl -s http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp
    curl -s http://127.0.0.1:8000/.well-known/oauth-authorization-server/oauth2

The authorization server can run on its own instead, for instance
``asgi-oauth serve``, told about this resource and to register clients; the
MCP server then asks it about tokens over HTTP (RFC 7662) as a resource-server
client, with ``RemoteIntrospector`` (or ``JWTIntrospector`` for JWT access
tokens)::

    ASGI_OAUTH_RESOURCES=http://127.0.0.1:8001/mcp ASGI_OAUTH_SCOPES_SUPPORTED=mcp \\
        ASGI_OAUTH_CLIENT_REGISTRATION=open asgi-oauth serve --demo --insecure-transport
    asgi-oauth clients create --name "MCP server" --client-id mcp-server \\
        --resource-server --grant-type client_credentials          # prints its secret
    EXAMPLE_PORT=8001 EXAMPLE_AS_URL=http://127.0.0.1:8000 EXAMPLE_CLIENT_ID=mcp-server \\
        EXAMPLE_CLIENT_SECRET=SECRET python -m examples.mcp_server

Environment: ``EXAMPLE_PORT`` (8000); ``EXAMPLE_URL``, the origin clients reach this
server (``http://127.0.0.1:$EXAMPLE_PORT``); ``EXAMPLE_DB`` (``example.db``);
``EXAMPLE_AS_URL``, ``EXAMPLE_CLIENT_ID`` and ``EXAMPLE_CLIENT_SECRET`` for an
authorization server elsewhere; ``EXAMPLE_CIMD_PRIVATE_ADDRESSES=1`` (tests only) lets
client ID metadata documents come from loopback and private addresses;
``EXAMPLE_ALLOWED_ORIGINS``, the origins (space-separated) of browser pages that may
call ``/mcp`` besides this server's own (the ``mcp`` package checks ``Origin``;
``/oauth2`` and the middleware answer any origin's CORS requests).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import BaseRoute, Mount

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.middleware import (
    BearerTokenMiddleware,
    BearerUser,
    Introspector,
    LocalIntrospector,
    RemoteIntrospector,
)
from asgi_oauth.storage import SQLiteStorage

PORT = int(os.environ.get("EXAMPLE_PORT", "8000"))
BASE_URL = os.environ.get("EXAMPLE_URL", f"http://127.0.0.1:{PORT}").rstrip("/")
#: The MCP endpoint, and the resource (RFC 8707) its tokens must be issued for.
MCP_URL = BASE_URL + "/mcp"
#: An authorization server elsewhere; unset, this app is its own, at /oauth2.
AS_URL = os.environ.get("EXAMPLE_AS_URL", "").rstrip("/")
ISSUER = AS_URL or BASE_URL + "/oauth2"
#: For tests only: fetch client ID metadata documents from loopback addresses too.
CIMD_PRIVATE_ADDRESSES = os.environ.get("EXAMPLE_CIMD_PRIVATE_ADDRESSES") == "1"
USERNAME = "demo"

mcp = MCPServer("asgi-oauth example", instructions="Tools that need an OAuth token.")


@mcp.tool()
def whoami(ctx: Context[Any, Request]) -> dict[str, object]:
    """Who the access token speaks for: the user, the client and the scopes."""
    request = ctx.request_context.request
    assert request is not None  # the HTTP request, as BearerTokenMiddleware left it
    user: BearerUser = request.user
    return {"subject": user.subject, "client_id": user.client_id, "scopes": request.auth.scopes}


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


server: AuthorizationServer | None = None
introspector: Introspector
routes: list[BaseRoute] = []
if AS_URL:
    introspector = RemoteIntrospector(
        AS_URL + "/introspect",
        client_id=os.environ["EXAMPLE_CLIENT_ID"],
        client_secret=os.environ["EXAMPLE_CLIENT_SECRET"],
    )
else:
    server = AuthorizationServer(
        SQLiteStorage(os.environ.get("EXAMPLE_DB", "example.db")),
        Settings(
            issuer=ISSUER,
            insecure_transport=ISSUER.startswith("http://"),
            scopes_supported=("mcp",),
            scope_descriptions={"mcp": "Use the tools of the example MCP server"},
            client_registration="open",  # RFC 7591: MCP clients register themselves
            # Or name themselves by the URL of their client ID metadata document, which
            # this server fetches (what MCP clients try first).
            client_id_metadata_documents=True,
            # Tests serve such documents on loopback; a real deployment never allows it.
            client_id_metadata_document_private_addresses=CIMD_PRIVATE_ADDRESSES,
            resources=(MCP_URL,),  # RFC 8707: and ask for tokens for this resource
        ),
    )
    introspector = LocalIntrospector(server)
    oauth = OAuth2App(server)
    # RFC 8414 §3.1: an issuer with a path also publishes its metadata at the host's root.
    routes += [Mount("/oauth2", oauth), oauth.metadata_route]

# The mcp package checks Host and Origin against DNS rebinding: name this server's.
mcp_app = mcp.streamable_http_app(
    transport_security=TransportSecuritySettings(
        allowed_hosts=[urlsplit(BASE_URL).netloc],
        allowed_origins=[BASE_URL, *os.environ.get("EXAMPLE_ALLOWED_ORIGINS", "").split()],
    )
)
routes += mcp_app.routes  # Route("/mcp", ...)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    if server is not None and await server.storage.get_user(USERNAME) is None:
        password = secrets.token_urlsafe(12)
        await server.create_user(USERNAME, password)
        print(f"demo user: {USERNAME} / {password}  (shown once)", flush=True)
    try:
        async with mcp.session_manager.run():  # the MCP sessions' task group
            yield
    finally:
        if server is not None:
            await server.close()
        if isinstance(introspector, RemoteIntrospector):
            await introspector.aclose()


app = Starlette(
    routes=routes,
    middleware=[
        Middleware(
            BearerTokenMiddleware,
            introspector=introspector,
            protect={"/mcp": "mcp"},
            public=["/oauth2", "/.well-known"],
            # RFC 9728 metadata at /.well-known/oauth-protected-resource/mcp; only
            # tokens whose audience is this URL pass (RFC 8707).
            resource=MCP_URL,
            authorization_servers=[ISSUER],
        )
    ],
    lifespan=lifespan,
)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=PORT)
