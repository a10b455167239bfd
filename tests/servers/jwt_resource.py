"""A resource server in its own process checking JWT access tokens (RFC 9068) itself,
following the issuer's revocation event stream; ``GET /api/me`` needs scope ``read``.

Configured by the test that starts it (``tests/test_revocation_stream.py``):
``RS_ISSUER`` (the tokens' ``iss`` and ``aud``), ``RS_AS_URL`` (where this process
reaches the issuer: through a proxy the test can cut), ``RS_CLIENT_ID`` and
``RS_CLIENT_SECRET`` (a resource-server client's).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_oauth.middleware import (
    BearerTokenMiddleware,
    BearerUser,
    JWTIntrospector,
    RemoteJWKS,
    RevocationStream,
)

_issuer = os.environ["RS_ISSUER"]
_as_url = os.environ["RS_AS_URL"]
_keys = RemoteJWKS(_as_url + "/jwks")
_stream = RevocationStream(
    _as_url + "/revocations",
    client_id=os.environ["RS_CLIENT_ID"],
    client_secret=os.environ["RS_CLIENT_SECRET"],
)
introspector = JWTIntrospector(keys=_keys, issuer=_issuer, audience=_issuer, revocations=_stream)


async def me(request: Request) -> JSONResponse:
    user = request.user
    assert isinstance(user, BearerUser)
    return JSONResponse({"client_id": user.client_id, "live": _stream.live})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await _stream.aclose()
        await _keys.aclose()


app = Starlette(
    routes=[Route("/api/me", me)],
    lifespan=lifespan,
)
app.add_middleware(BearerTokenMiddleware, introspector=introspector, protect={"/api": "read"})
