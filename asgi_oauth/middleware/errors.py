"""Bearer- and DPoP-token errors (RFC 6750 §3, RFC 9449 §7.1) and the one place that answers them.

Every refusal carries a ``WWW-Authenticate`` challenge: no ``error``
attribute when no token was sent (§3.1), ``invalid_token`` for a token that
is not good, ``insufficient_scope`` with the ``scope`` needed, and
``invalid_request`` for a malformed request. A 401 that sends the client to
(re-)authorize names the scopes the request needs in ``scope`` when it needs
any (MCP Scope Selection Strategy: clients ask for those first, else for the
metadata's ``scopes_supported``). A request with a DPoP-bound token
is answered with a ``DPoP`` challenge instead, which adds ``invalid_dpop_proof``
and ``use_dpop_nonce`` (RFC 9449 §7.1, §9) and names the proof algorithms
accepted. A challenge also names the resource's RFC 9728 metadata, so clients
can find the authorization server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from starlette.types import Scope, Send

from ..errors import error_uri_for

# RFC 6750 §3: attribute values are restricted to these characters.
_ALLOWED = frozenset(chr(c) for c in (0x20, 0x21, *range(0x23, 0x5C), *range(0x5D, 0x7F)))
#: Never named from a token's scopes: refresh tokens are no resource's requirement
#: (MCP 2026-07-28 "Refresh Tokens": resources leave offline_access out of challenges).
_NOT_FOR_RESOURCES = frozenset({"offline_access"})


class BearerError(Exception):
    """Why a request was refused: an HTTP status, what the challenge says, extra headers."""

    def __init__(
        self,
        status: int,
        error: str | None,
        description: str,
        *,
        scope: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.scope = tuple(sorted(scope))
        self.headers: dict[str, str] = dict(headers or {})

    @classmethod
    def missing(cls, description: str = "a bearer token is required") -> BearerError:
        return cls(401, None, description)

    @classmethod
    def invalid_token(cls, description: str = "the access token is not valid") -> BearerError:
        return cls(401, "invalid_token", description)

    @classmethod
    def insufficient_scope(cls, needed: Iterable[str], held: Iterable[str] = ()) -> BearerError:
        """403 naming every scope ``needed`` (RFC 6750 §3.1), and those the token
        already ``held``: MCP SEP-835 (2025-11-25 "Server Scope Management") recommends
        both, so a client that re-authorizes with the challenge's scopes alone loses
        nothing; clients of MCP 2026-07-28 add earlier scopes themselves, and a union
        with them changes nothing."""
        scope = {*needed, *(frozenset(held) - _NOT_FOR_RESOURCES)}
        return cls(403, "insufficient_scope", "the access token lacks scope", scope=scope)

    @classmethod
    def invalid_request(cls, description: str) -> BearerError:
        return cls(400, "invalid_request", description)

    @classmethod
    def invalid_dpop_proof(cls, description: str) -> BearerError:
        return cls(401, "invalid_dpop_proof", description)

    @classmethod
    def use_dpop_nonce(
        cls, nonce: str, description: str = "a DPoP proof with this nonce is required"
    ) -> BearerError:
        """RFC 9449 §9: the client retries with ``nonce`` in a new proof."""
        return cls(401, "use_dpop_nonce", description, headers={"DPoP-Nonce": nonce})

    @classmethod
    def unavailable(cls) -> BearerError:
        return cls(503, "temporarily_unavailable", "the token cannot be checked now; retry")

    def needing(self, scopes: Iterable[str]) -> BearerError:
        """This refusal naming ``scopes`` when it asks the client to get a token (no
        token, or one not good): RFC 6750 §3, RFC 9728 §5.1 and MCP SEP-835 have the
        401 say what to ask for. Other refusals are not about scope and stay as they are."""
        if self.status != 401 or self.error not in (None, "invalid_token"):
            return self
        return BearerError(
            self.status, self.error, self.description, scope=scopes, headers=self.headers
        )

    def challenge(
        self, realm: str, resource_metadata: str | None = None, error_uri: str | None = None
    ) -> str:
        """The ``Bearer`` challenge (RFC 6750 §3, RFC 9728 §5.1); ``error_uri`` is a page
        explaining errors (``Settings.error_uri``), named with the error code (§3)."""
        return "Bearer " + self._attributes(realm, (), resource_metadata, error_uri)

    def dpop_challenge(
        self,
        realm: str,
        algs: Iterable[str],
        resource_metadata: str | None = None,
        error_uri: str | None = None,
    ) -> str:
        """The ``DPoP`` challenge (RFC 9449 §7.1): the same attributes, and ``algs``."""
        extra = (("algs", " ".join(algs)),)
        return "DPoP " + self._attributes(realm, extra, resource_metadata, error_uri)

    def body(self) -> dict[str, str]:
        body = {"error_description": self.description}
        if self.error is not None:
            body = {"error": self.error, **body}
        return body

    def _attributes(
        self,
        realm: str,
        extra: Iterable[tuple[str, str]],
        resource_metadata: str | None,
        error_uri: str | None,
    ) -> str:
        params = [("realm", realm)]
        if self.error is not None and self.status != 503:
            params += [("error", self.error), ("error_description", self.description)]
            if error_uri is not None:
                params.append(("error_uri", error_uri_for(error_uri, self.error)))
        if self.scope:
            params.append(("scope", " ".join(self.scope)))
        params += extra
        if resource_metadata is not None:
            params.append(("resource_metadata", resource_metadata))
        return ", ".join(f'{name}="{_quoted(value)}"' for name, value in params)


def _quoted(value: str) -> str:
    return "".join(c for c in value if c in _ALLOWED)


def response_headers(error: BearerError, challenge: str) -> dict[str, str]:
    """The headers of every refusal, from the middleware or a route-level check.

    ``challenge`` may hold several challenges, comma-separated in one field
    (RFC 9110 §11.6.1): a mapping of headers, as Starlette and FastAPI take
    them, carries one field per name.
    """
    headers = {"Cache-Control": "no-store", "WWW-Authenticate": challenge, **error.headers}
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
