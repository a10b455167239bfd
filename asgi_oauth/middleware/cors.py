"""CORS at a protected resource, for clients in a browser (Fetch standard).

``BearerTokenMiddleware`` answers preflights on the paths it protects and on its
RFC 9728 metadata itself: a preflight carries no credentials, so it never needs a
token, and it never reaches the application. Its refusals, its metadata and the
application's answers on those paths are readable by the allowed origins, with the
challenge, a DPoP nonce and MCP's session id exposed. The headers are
``asgi_oauth.cors``'s, the same as the authorization server's endpoints send.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.types import Message, Scope, Send

from ..cors import (
    ANY_ORIGIN,
    EXPOSED_HEADERS,
    CORSPolicy,
    Headers,
    allows_origin,
    is_preflight,
    request_header,
    request_origin,
)

#: What a browser may read of a resource's answers: MCP's Streamable HTTP session
#: id too, which the client sends back on every later request.
RESOURCE_EXPOSED_HEADERS = (*EXPOSED_HEADERS, "Mcp-Session-Id")
#: The methods a preflight may ask for on a protected path; the application decides.
RESOURCE_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: MCP 2026-07-28: a tool's parameters may travel in ``Mcp-Param-<Name>`` headers, named
#: by the tool, so they are allowed as asked for: any field name (RFC 9110 §5.1) so made.
_PARAM_HEADER = re.compile(r"mcp-param-[!#$%&'*+.^_`|~0-9a-z-]+")
_MAX_PARAM_HEADERS = 32


class ResourceCORS:
    """A protected resource's CORS: ``origins`` as ``Settings.cors_origins`` reads
    (``*`` for any); ``()`` leaves CORS to the host application."""

    def __init__(self, origins: Iterable[str] = (ANY_ORIGIN,)) -> None:
        self._policy = CORSPolicy(origins, exposed=RESOURCE_EXPOSED_HEADERS)
        self.enabled = self._policy.enabled

    def from_browser(self, scope: Scope) -> bool:
        """Whether CORS applies to this request at all: on, HTTP, an ``Origin`` sent.
        The cheap test the protected paths' hot path makes before anything else."""
        if not self.enabled or scope["type"] != "http":
            return False
        for name, _ in scope["headers"]:  # noqa: SIM110 (no generator on the hot path)
            if name == b"origin":  # ASGI gives header names in lower case
                return True
        return False

    async def preflight(
        self, scope: Scope, send: Send, methods: tuple[str, ...] = RESOURCE_METHODS
    ) -> bool:
        """Answer a preflight: 204, or 403 for an origin not allowed. ``False``
        (nothing sent) for any other request, or when CORS is off.

        Off, a preflight is a request like any other and needs a token: put the host's
        own CORS middleware outside this one, so that none reaches it.
        """
        if not self.enabled or scope["type"] != "http":
            return False
        if not is_preflight(scope["method"], scope["headers"]):
            return False
        answer = self._policy.headers(request_origin(scope["headers"]))
        asked = request_header(scope["headers"], b"access-control-request-headers")
        allowed = self._policy.preflight(answer, methods, _param_headers(asked or ""))
        status, headers = (403, answer) if allowed is None else (204, allowed)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return True

    def readable(self, scope: Scope, send: Send, *, cacheable: bool = False) -> Send:
        """``send``, letting an allowed origin read the answer (refusals included).
        A ``cacheable`` answer says so to requests without an ``Origin`` too."""
        if not self.enabled or scope["type"] != "http":
            return send
        origin = request_origin(scope["headers"])
        if origin is None and not cacheable:
            # Not a browser's cross-origin request; and an answer to a request with a
            # token, or a refusal, is never kept by a shared cache (RFC 9111 §3.5).
            return send
        return with_cors_headers(send, self._policy.headers(origin))


def _param_headers(asked: str) -> list[str]:
    """The ``Mcp-Param-*`` names among a preflight's ``Access-Control-Request-Headers``."""
    names = (name.strip().lower() for name in asked.split(","))
    return [name for name in names if _PARAM_HEADER.fullmatch(name)][:_MAX_PARAM_HEADERS]


def with_cors_headers(send: Send, headers: Headers) -> Send:
    """``send`` with ``headers`` added to the response start, unless the application
    set ``Access-Control-Allow-Origin`` itself: its own CORS answer stands."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            existing = message.get("headers", ())
            if not allows_origin(existing):
                message = {**message, "headers": [*existing, *headers]}
        await send(message)

    return wrapped
