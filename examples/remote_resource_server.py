"""A resource server in its own process, asking the authorization server about tokens.

``RemoteIntrospector`` posts each new token to the authorization server's RFC
7662 introspection endpoint, authenticated as a client, and caches the answer
for a few seconds; ``BearerTokenMiddleware`` then protects ``/api/*`` with
scope ``read`` as it does in-process. The introspector's connections are
closed at shutdown.

Against ``examples/starlette_api.py`` (the default: start it first, on port
8000, and take the ``demo-resource-server`` secret it printed), from the
repository root::

    EXAMPLE_CLIENT_SECRET=RS_SECRET python examples/remote_resource_server.py

Against ``asgi-oauth serve --demo --insecure-transport``, whose issuer has no
``/oauth2`` path and which has no resource-server client yet, introspect as
``demo-client`` itself (a client may introspect its own tokens)::

    EXAMPLE_AS_URL=http://127.0.0.1:8000 EXAMPLE_CLIENT_ID=demo-client \\
        EXAMPLE_CLIENT_SECRET=DEMO_SECRET python examples/remote_resource_server.py

Then get a token from the authorization server (at ``/oauth2/token`` of
starlette_api.py, ``/token`` of ``asgi-oauth serve``) and use it here, on port 8001::

    curl -s -u demo-client:DEMO_SECRET -d grant_type=client_credentials \\
        http://127.0.0.1:8000/oauth2/token                  # copy access_token
    curl -s -H "Authorization: Bearer TOKEN" http://127.0.0.1:8001/api/me
    curl -si http://127.0.0.1:8001/api/me                   # 401, a Bearer challenge

A token asked for with ``-d scope=write`` gets 403 ``insufficient_scope``.

With ``EXAMPLE_REVOCATIONS_URL`` set to the authorization server's revocation
event stream (``http://127.0.0.1:8000/oauth2/revocations``; the client must be a
resource server there), a revoked token is refused here at once rather than when
its cached answer expires::

    curl -s -u demo-client:DEMO_SECRET -d token=TOKEN http://127.0.0.1:8000/oauth2/revoke

Environment: ``EXAMPLE_AS_URL``, the authorization server's issuer
(``http://127.0.0.1:8000/oauth2``); ``EXAMPLE_CLIENT_ID``
(``demo-resource-server``); ``EXAMPLE_CLIENT_SECRET`` (required);
``EXAMPLE_PORT`` (8001); ``EXAMPLE_REVOCATIONS_URL`` (unset: no subscription).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from asgi_oauth.middleware import (
    BearerTokenMiddleware,
    BearerUser,
    RemoteIntrospector,
    RevocationStream,
)

PORT = int(os.environ.get("EXAMPLE_PORT", "8001"))
AS_URL = os.environ.get("EXAMPLE_AS_URL", "http://127.0.0.1:8000/oauth2").rstrip("/")
CLIENT_SECRET = os.environ.get("EXAMPLE_CLIENT_SECRET")
if not CLIENT_SECRET:
    sys.exit("set EXAMPLE_CLIENT_SECRET to the resource-server client's secret")

CLIENT_ID = os.environ.get("EXAMPLE_CLIENT_ID", "demo-resource-server")
REVOCATIONS_URL = os.environ.get("EXAMPLE_REVOCATIONS_URL")

introspector = RemoteIntrospector(
    AS_URL + "/introspect",
    client_id=CLIENT_ID,
    client_secret=CLIENT_SECRET,
    revocations=RevocationStream(REVOCATIONS_URL, client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    if REVOCATIONS_URL
    else None,
)


async def me(request: Request) -> Response:
    """Who is calling, as the authorization server described the token."""
    user: BearerUser = request.user
    return JSONResponse(
        {
            "client_id": user.client_id,
            "subject": user.subject,
            "scopes": request.auth.scopes,
            "issuer": user.introspection.iss,
        }
    )


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await introspector.aclose()


app = Starlette(
    routes=[Route("/api/me", me)],
    middleware=[
        Middleware(
            BearerTokenMiddleware,
            introspector=introspector,
            protect={"/api": "read"},
            resource=f"http://127.0.0.1:{PORT}",
            authorization_servers=[AS_URL],
        )
    ],
    lifespan=lifespan,
)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=PORT)
