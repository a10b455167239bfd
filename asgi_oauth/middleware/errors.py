"""Bearer-token errors (RFC 6750 §3) and the one place that answers them.

Every refusal carries a ``WWW-Authenticate: Bearer`` challenge: no ``error``
attribute when no token was sent (§3.1), ``invalid_token`` for a token that
is not good, ``insufficient_scope`` with the ``scope`` needed, and
``invalid_request`` for a malformed request. A challenge also names the
resource's RFC 9728 metadata, so clients can find the authorization server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.types import Scope, Send

# RFC 6750 §3: attribute values are restricted to these characters.
_ALLOWED = frozenset(chr(c) for c in (0x20, 0x21, *range(0x23, 0x5C), *range(0x5D, 0x7F)))


class BearerError(Exception):
    """Why a request was refused: an HTTP status and what the challenge says."""

    def __init__(
        self,
        status: int,
        error: str | None,
        description: str,
        *,
        scope: Iterable[str] = (),
    ) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.scope = tuple(sorted(scope))

    @classmethod
    def missing(cls) -> BearerError:
        return cls(401, None, "a bearer token is required")

    @classmethod
    def invalid_token(cls, description: str = "the access token is not valid") -> BearerError:
        return cls(401, "invalid_token", description)

    @classmethod
    def insufficient_scope(cls, needed: Iterable[str]) -> BearerError:
        return cls(403, "insufficient_scope", "the access token lacks scope", scope=needed)

    @classmethod
    def invalid_request(cls, description: str) -> BearerError:
        return cls(400, "invalid_request", description)

    @classmethod
    def unavailable(cls) -> BearerError:
        return cls(503, "temporarily_unavailable", "the token cannot be checked now; retry")

    def challenge(self, realm: str, resource_metadata: str | None = None) -> str:
        """The ``WWW-Authenticate`` value (RFC 6750 §3, RFC 9728 §5.1)."""
        params = [("realm", realm)]
        if self.error is not None and self.status != 503:
            params += [("error", self.error), ("error_description", self.description)]
        if self.scope:
            params.append(("scope", " ".join(self.scope)))
        if resource_metadata is not None:
            params.append(("resource_metadata", resource_metadata))
        return "Bearer " + ", ".join(f'{name}="{_quoted(value)}"' for name, value in params)

    def body(self) -> dict[str, str]:
        body = {"error_description": self.description}
        if self.error is not None:
            body = {"error": self.error, **body}
        return body


def _quoted(value: str) -> str:
    return "".join(c for c in value if c in _ALLOWED)


def response_headers(error: BearerError, challenge: str) -> dict[str, str]:
    """The headers of every refusal, from the middleware or a route-level check."""
    headers = {"Cache-Control": "no-store", "WWW-Authenticate": challenge}
    if error.status == 503:
        headers["Retry-After"] = "1"
    return headers


async def send_bearer_error(scope: Scope, send: Send, error: BearerError, challenge: str) -> None:
    """Refuse an HTTP request, or a websocket before it is accepted."""
    headers = [(b"content-type", b"application/json")] + [
        (name.lower().encode(), value.encode())
        for name, value in response_headers(error, challenge).items()
    ]
    payload = json.dumps(error.body(), separators=(",", ":")).encode()
    if scope["type"] == "websocket":
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1008, "reason": error.description})
            return
        prefix = "websocket.http.response"
    else:
        prefix = "http.response"
    await send({"type": f"{prefix}.start", "status": error.status, "headers": headers})
    await send({"type": f"{prefix}.body", "body": payload})
