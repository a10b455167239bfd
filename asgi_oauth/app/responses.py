"""Sending JSON responses and rendering every error in one place (RFC 6749 §5.2)."""

from __future__ import annotations

import json
import logging

from starlette.types import Send

from ..errors import N_, OAuth2Error, ServerError, StorageError, TemporarilyUnavailableError

logger = logging.getLogger("asgi_oauth")

Headers = list[tuple[bytes, bytes]]

#: RFC 6749 §5.1: responses carrying tokens must not be cached.
NO_STORE: Headers = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
#: One encoder for every response: ``json.dumps`` with options builds a new one per call.
_encode = json.JSONEncoder(separators=(",", ":")).encode

_JSON: Headers = [
    (b"content-type", b"application/json"),
    (b"x-content-type-options", b"nosniff"),
]


async def send_json(send: Send, status: int, body: object, headers: Headers | None = None) -> None:
    payload = _encode(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *_JSON,
                (b"content-length", str(len(payload)).encode()),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def send_empty(send: Send, status: int, headers: Headers) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def as_oauth_error(exc: Exception) -> OAuth2Error:
    """What the client may see of an exception: an OAuth error, never a traceback."""
    if isinstance(exc, OAuth2Error):
        return exc
    if isinstance(exc, StorageError):
        return TemporarilyUnavailableError.from_storage(exc)
    logger.exception("unexpected error", exc_info=exc)
    return ServerError(N_("internal error"))


async def send_error(
    send: Send, exc: Exception, headers: Headers | None = None, *, error_uri: str | None
) -> None:
    """The JSON error (RFC 6749 §5.2); ``error_uri`` is ``Settings.error_uri``, which every
    caller passes (no default), so no JSON error can leave it out by being forgotten."""
    error = as_oauth_error(exc)
    extra = [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    body = error.to_dict(error_uri)
    await send_json(send, error.status, body, [*NO_STORE, *extra, *(headers or ())])
