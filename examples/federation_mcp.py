"""A Model Context Protocol server whose people sign in with GitHub.

``examples/mcp_server.py`` without passwords: the authorization server at ``/oauth2``
signs people in through GitHub alone (``password_sign_in=False``, so its sign-in page
sends them straight there). The first sign-in creates a local user ``github:<login>``
linked to the GitHub account's numeric id. GitHub only says who the person is: the
consent to each MCP client is still asked here, and the tokens MCP clients get are
this server's, for ``http://127.0.0.1:8000/mcp`` alone (RFC 8707), never GitHub's.

Register an OAuth App at GitHub (Settings, Developer settings, OAuth Apps) with the
callback URL ``http://127.0.0.1:8000/oauth2/upstream/github/callback`` (the app prints
it when it starts), then run it from the repository root
(``pip install -e '.[server,federation]' mcp``)::

    GITHUB_CLIENT_ID=Ov23li... GITHUB_CLIENT_SECRET=... python -m examples.federation_mcp

and point an MCP client that speaks OAuth at ``http://127.0.0.1:8000/mcp``: it
registers itself, sends the person to GitHub and back to approve, and calls the tools.
``whoami`` answers the local user and their GitHub login; ``add`` adds two numbers.

To try it without GitHub, ``EXAMPLE_GITHUB_URL=http://127.0.0.1:PORT`` points
GitHub's endpoints (``/login/oauth/authorize``, ``/login/oauth/access_token``,
``/user``, ``/user/emails``, ``/user/orgs``) at a server shaped like GitHub: the one
the tests use (``tests/servers/upstreams.py``, which ``tests/test_example_federation.py``
runs against this app) runs alone and signs in ``octocat``::

    python -m tests.servers.github_like --port 9000 &
    EXAMPLE_GITHUB_URL=http://127.0.0.1:9000 GITHUB_CLIENT_ID=example \
        GITHUB_CLIENT_SECRET=example-secret python -m examples.federation_mcp

Environment: ``GITHUB_CLIENT_ID`` and ``GITHUB_CLIENT_SECRET`` (required);
``EXAMPLE_PORT`` (8000); ``EXAMPLE_URL``, the origin clients reach this server
(``http://127.0.0.1:$EXAMPLE_PORT``); ``EXAMPLE_DB`` (``example.db``);
``EXAMPLE_GITHUB_URL``, for a GitHub-shaped server over http on this machine.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Mount

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.federation import UpstreamProvider, github
from asgi_oauth.middleware import BearerTokenMiddleware, BearerUser, LocalIntrospector
from asgi_oauth.storage import SQLiteStorage

PORT = int(os.environ.get("EXAMPLE_PORT", "8000"))
BASE_URL = os.environ.get("EXAMPLE_URL", f"http://127.0.0.1:{PORT}").rstrip("/")
#: The MCP endpoint, and the resource (RFC 8707) its tokens must be issued for.
MCP_URL = BASE_URL + "/mcp"
ISSUER = BASE_URL + "/oauth2"
#: A GitHub-shaped server to use instead of GitHub (offline, and in the test).
GITHUB_URL = os.environ.get("EXAMPLE_GITHUB_URL", "").rstrip("/")


def github_provider() -> UpstreamProvider:
    """GitHub, with this app's OAuth App credentials; its endpoints at ``GITHUB_URL``
    when that is set."""
    client_id = os.environ.get("GITHUB_CLIENT_ID", "")
    client_secret = os.environ.get("GITHUB_CLIENT_SECRET", "")
    if not client_id or not client_secret:
        raise SystemExit("set GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET (see the docstring)")
    if not GITHUB_URL:
        return github(client_id, client_secret)
    return github(
        client_id,
        client_secret,
        authorization_endpoint=f"{GITHUB_URL}/login/oauth/authorize",
        token_endpoint=f"{GITHUB_URL}/login/oauth/access_token",
        userinfo_endpoint=f"{GITHUB_URL}/user",
        emails_endpoint=f"{GITHUB_URL}/user/emails",
        organizations_endpoint=f"{GITHUB_URL}/user/orgs",
    )


server = AuthorizationServer(
    SQLiteStorage(os.environ.get("EXAMPLE_DB", "example.db")),
    Settings(
        issuer=ISSUER,
        # http for the issuer and a local GitHub-shaped server: development only.
        insecure_transport=ISSUER.startswith("http://"),
        scopes_supported=("mcp",),
        scope_descriptions={"mcp": "Use the tools of the example MCP server"},
        client_registration="open",  # RFC 7591: MCP clients register themselves
        client_id_metadata_documents=True,
        resources=(MCP_URL,),  # RFC 8707: and ask for tokens for this resource
        upstream_providers=(github_provider(),),
        password_sign_in=False,  # GitHub is the only way in
    ),
)

mcp = MCPServer("asgi-oauth GitHub example", instructions="Tools for people signed in with GitHub.")


@mcp.tool()
async def whoami(ctx: Context[Any, Request]) -> dict[str, object]:
    """Who the access token speaks for: the local user, their GitHub login, the client."""
    request = ctx.request_context.request
    assert request is not None  # the HTTP request, as BearerTokenMiddleware left it
    user: BearerUser = request.user
    user_id = user.subject  # the local user's id: the token's ``sub``
    local = None if user_id is None else await server.storage.get_user_by_id(user_id)
    # What GitHub last said of them, in OpenID Connect's words.
    claims = {} if user_id is None else await server.federation.claims(user_id)
    return {
        "subject": user_id,
        "username": None if local is None else local.username,
        "github_login": claims.get("preferred_username"),
        "client_id": user.client_id,
        "scopes": request.auth.scopes,
    }


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


oauth = OAuth2App(server)
# The mcp package checks Host and Origin against DNS rebinding: name this server's.
mcp_app = mcp.streamable_http_app(
    transport_security=TransportSecuritySettings(
        allowed_hosts=[urlsplit(BASE_URL).netloc], allowed_origins=[BASE_URL]
    )
)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    # The one URL to register at GitHub as the OAuth App's callback.
    print(f"GitHub callback URL: {server.federation.redirect_uri('github')}", flush=True)
    try:
        async with mcp.session_manager.run():  # the MCP sessions' task group
            yield
    finally:
        await server.close()


app = Starlette(
    # RFC 8414 §3.1: an issuer with a path also publishes its metadata at the host's root.
    routes=[Mount("/oauth2", oauth), oauth.metadata_route, *mcp_app.routes],
    middleware=[
        Middleware(
            BearerTokenMiddleware,
            introspector=LocalIntrospector(server),
            protect={"/mcp": "mcp"},
            public=["/oauth2", "/.well-known"],
            resource=MCP_URL,  # RFC 9728 metadata; only tokens for this URL pass
            authorization_servers=[ISSUER],
        )
    ],
    lifespan=lifespan,
)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=PORT)
