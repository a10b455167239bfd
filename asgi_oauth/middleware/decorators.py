"""Per-route scope checks for Starlette endpoints, answered as RFC 6750 §3 says.

Starlette's own ``requires("read")`` works behind the middleware too; this
decorator differs in answering with ``WWW-Authenticate: Bearer`` challenges
shaped as the middleware's are (a 401 naming the scopes the route needs, 403
``insufficient_scope`` naming them with the token's own), which MCP clients
read to know what to ask for (SEP-835).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import BearerError, response_headers
from .users import BearerCredentials

Endpoint = Callable[[Request], Awaitable[Response]]


def require_scopes(*scopes: str, realm: str = "api") -> Callable[[Endpoint], Endpoint]:
    """Refuse the request unless its bearer token carries every one of ``scopes``."""
    needed = frozenset(scopes)

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def checked(request: Request) -> Response:
            auth = request.scope.get("auth")
            error = scope_error(auth, needed)
            if error is not None:
                headers = response_headers(error, challenge(auth, error, realm))
                return JSONResponse(error.body(), status_code=error.status, headers=headers)
            return await endpoint(request)

        return checked

    return decorate


def challenge(auth: object, error: BearerError, realm: str) -> str:
    """The middleware's challenge for ``error`` when it ran, else one for ``realm``."""
    if isinstance(auth, BearerCredentials) and auth.challenge is not None:
        return auth.challenge(error)
    return error.challenge(realm)


def scope_error(auth: object, needed: frozenset[str]) -> BearerError | None:
    """Why ``auth`` (``scope["auth"]`` set by the middleware) does not grant ``needed``."""
    if not isinstance(auth, BearerCredentials):
        # The middleware did not run: nothing was checked.
        return BearerError.missing().needing(needed)
    if auth.introspection is None:
        return (auth.error or BearerError.missing()).needing(needed)
    if not needed <= auth.introspection.scope:
        # The token's own scopes ride along: the middleware's rule for this path
        # needed them, so they are part of what the whole request needs.
        return BearerError.insufficient_scope(needed, auth.introspection.scope)
    return None
