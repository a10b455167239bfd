"""CORS for browser-based clients (Fetch standard), only for origins a client registered.

Only the token, revocation, metadata, JWK Set and userinfo endpoints take part;
the rest of the server answers browsers as any other caller.
"""

from __future__ import annotations

from ..storage.base import Storage
from .responses import Headers

#: RFC 9449 §4.1: browser clients send their DPoP proofs in a ``DPoP`` header.
_ALLOWED_HEADERS = b"Authorization, Content-Type, DPoP"
#: What a browser client may read of an answer: its challenge and a new DPoP nonce (§8).
_EXPOSED_HEADERS = b"WWW-Authenticate, DPoP-Nonce"
_MAX_AGE = b"600"


async def allowed_origin_headers(storage: Storage, origin: str | None) -> Headers:
    """Headers that let a registered origin read the response; none for others."""
    if origin is None or not await storage.is_allowed_origin(origin):
        return []
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", _EXPOSED_HEADERS),
        (b"vary", b"Origin"),
    ]


def preflight_headers(cors: Headers, methods: tuple[str, ...]) -> Headers:
    """The answer to an allowed preflight (OPTIONS with Access-Control-Request-Method)."""
    return [
        *cors,
        (b"access-control-allow-methods", ", ".join(methods).encode()),
        (b"access-control-allow-headers", _ALLOWED_HEADERS),
        (b"access-control-max-age", _MAX_AGE),
    ]
