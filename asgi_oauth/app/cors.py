"""CORS on the endpoints that never use cookies, for clients in a browser (Fetch standard).

Both metadata documents, the JWK Set, registration, token, revocation, device
authorization, PAR and userinfo answer preflights and let the origins of
``Settings.cors_origins`` (``*``: any) read their answers, errors included; an
origin a client registered (``allowed_origins``) is allowed too. Introspection is
for resource servers, which hold secrets no browser should, and the pages people
see stay same-origin: neither takes part.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from ..cors import CORSPolicy, Headers, is_preflight, request_origin
from ..middleware.cors import with_cors_headers
from ..storage.base import Storage
from .responses import send_empty, send_error


class EndpointCORS:
    """Who may read the endpoints' answers: the policy's origins, then the store's."""

    def __init__(
        self, policy: CORSPolicy, storage: Storage, *, error_uri: str | None = None
    ) -> None:
        self._policy = policy
        self._storage = storage
        self._error_uri = error_uri

    async def headers(self, origin: str | None) -> Headers:
        """The CORS headers of an answer to ``origin``; the store is asked only when
        the policy alone does not allow it."""
        registered = (
            origin is not None
            and not self._policy.allows(origin)
            and await self._storage.is_allowed_origin(origin)
        )
        return self._policy.headers(origin, registered=registered)

    async def preflight(self, send: Send, answer: Headers, methods: tuple[str, ...]) -> None:
        """204 with what may be sent, or a plain 403 for an origin not allowed."""
        allowed = self._policy.preflight(answer, methods)
        if allowed is None:
            await send_empty(send, 403, answer)
        else:
            await send_empty(send, 204, allowed)

    def wrap(self, app: ASGIApp, methods: tuple[str, ...]) -> ASGIApp:
        """``app`` (an endpoint of its own, such as ``/register``) with preflights
        answered and every answer readable by an allowed origin."""
        cors = self

        async def with_cors(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                answer = await cors.headers(request_origin(scope["headers"]))
            except Exception as exc:
                await send_error(send, exc, error_uri=cors._error_uri)
                return
            if is_preflight(scope["method"], scope["headers"]):
                await cors.preflight(send, answer, methods)
            else:
                await app(scope, receive, with_cors_headers(send, answer))

        return with_cors
