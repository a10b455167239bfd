"""Reading an ASGI HTTP request into an ``OAuthRequest``, refusing what RFC 6749 forbids.

Bodies are ``application/x-www-form-urlencoded`` UTF-8 (RFC 6749 Appendix B),
bounded in size, with each parameter at most once (§3.1). One parser reads every
form, the token endpoint's and the pages' alike: what it must decide (repeats,
multi-valued ``resource``, strict UTF-8, NUL) comes after splitting the pairs, and
``multipart/form-data`` is never valid here, so a general form library would add a
dependency and halve the speed without removing any of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus

from starlette.types import Receive, Scope

from ..errors import InvalidRequestError
from ..requests import OAuthRequest
from ..resources import MULTI_VALUED

_WANTED = {
    b"authorization": "authorization",
    b"content-type": "content_type",
    b"content-length": "content_length",
    b"origin": "origin",
    b"dpop": "dpop",
}


@dataclass(slots=True)
class RequestHeaders:
    """The few request headers the endpoints read; a repeated one is refused."""

    authorization: str | None = None
    content_type: str | None = None
    content_length: str | None = None
    origin: str | None = None
    #: RFC 9449 §4.3: a request with several DPoP proofs is refused.
    dpop: str | None = None

    @classmethod
    def from_scope(cls, scope: Scope) -> RequestHeaders:
        found: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            key = _WANTED.get(raw_name.lower())
            if key is not None:
                if key in found:
                    raise InvalidRequestError(f"repeated {raw_name.decode()} header")
                found[key] = raw_value.decode("latin-1")
        return cls(**found)


def route_path(scope: Scope) -> str:
    """The path below the mount point, which every endpoint and page routes on.

    ASGI puts ``root_path`` at the start of ``path``: Starlette's ``Mount``, FastAPI,
    hypercorn's ``DispatcherMiddleware`` and uvicorn ``--root-path`` do. A dispatcher
    that strips its prefix from ``path`` instead (WSGI's way; Litestar's mount, which
    leaves ``root_path`` as the server set it) gives the path below already. Litestar
    also ends that path with a slash: one the client did not send, as ``raw_path``
    shows, is dropped, so the client's own ``/token/`` is still no endpoint.
    """
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :] or "/"
    if path.endswith("/") and path != "/" and not (scope.get("raw_path") or b"/").endswith(b"/"):
        return path[:-1]
    return path


def mount_path(scope: Scope) -> str:
    """Where the app is mounted, as the client sees the path: what comes before
    :func:`route_path` in it. Read once, to check it against the issuer.

    ``root_path`` when ``path`` starts with it (ASGI); else the received path
    (``raw_path``, after ``root_path`` unless the server already put it there) less
    the route, as under a dispatcher that strips its prefix or Litestar's mount.
    """
    root_path: str = scope.get("root_path", "")
    raw_path: bytes | None = scope.get("raw_path")
    if (root_path and scope["path"].startswith(root_path)) or raw_path is None:
        return root_path
    received = unquote(raw_path.decode("latin-1"))
    full = received if received.startswith(root_path) else root_path + received
    route = route_path(scope)
    if route == "/":
        return full.rstrip("/")
    return full[: -len(route)] if full.endswith(route) else root_path


async def read_form(
    scope: Scope, receive: Receive, headers: RequestHeaders, max_size: int
) -> OAuthRequest:
    """The request's form parameters and Authorization header."""
    media_type = (headers.content_type or "").partition(";")[0].strip().lower()
    body = await read_body(receive, headers, max_size)
    # An empty body needs no Content-Type: HTTP clients send none with it.
    if media_type != "application/x-www-form-urlencoded" and (media_type or body):
        raise InvalidRequestError(
            "Content-Type must be application/x-www-form-urlencoded", status_code=415
        )
    client = scope.get("client")
    return OAuthRequest(
        form=parse_form(body),
        authorization=headers.authorization,
        client_address=client[0] if client else None,
        dpop=headers.dpop,
    )


async def read_body(receive: Receive, headers: RequestHeaders, max_size: int) -> bytes:
    if headers.content_length is not None:
        try:
            declared = int(headers.content_length)
        except ValueError:
            raise InvalidRequestError("malformed Content-Length") from None
        if declared > max_size:
            raise _too_large(max_size)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequestError("client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_size:
            raise _too_large(max_size)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def parse_form(body: bytes) -> dict[str, str]:
    """Strict urlencoded parsing: UTF-8 only, no repeats, empty values omitted (§3.1)."""
    form, repeated = parse_params(body)
    if repeated:
        raise InvalidRequestError(f"repeated parameter: {sorted(repeated)[0][:64]}")
    return form


def parse_params(data: bytes) -> tuple[dict[str, str], frozenset[str]]:
    """Urlencoded parameters and the names that came more than once (kept: their first).

    The authorization endpoint needs the repeats rather than an error, because
    whether it may redirect depends on which parameter was repeated (§4.1.2.1).
    A parameter that may repeat (RFC 8707 ``resource``) keeps every value,
    space-separated.
    """
    try:
        text = data.decode("utf-8")
        form: dict[str, str] = {}
        seen: set[str] = set()
        repeated: set[str] = set()
        for pair in text.split("&"):
            if not pair:
                continue
            raw_name, _, raw_value = pair.partition("=")
            name = _unquote(raw_name)
            if name in MULTI_VALUED:
                # A value's own spaces must not split it: encoded, it is one (bad) URI.
                value = _unquote(raw_value).replace(" ", "%20")
                if value:
                    form[name] = f"{form[name]} {value}" if name in form else value
                continue
            if name in seen:
                repeated.add(name)
                continue
            seen.add(name)
            value = _unquote(raw_value)
            if value:
                form[name] = value
    except UnicodeDecodeError:
        raise InvalidRequestError("parameters are not valid UTF-8") from None
    # No parameter of any endpoint may hold a NUL: refused here, it is a 400 on every
    # store (PostgreSQL text cannot hold one) and reaches no page, log or header.
    if any("\x00" in name or "\x00" in value for name, value in form.items()):
        raise InvalidRequestError("parameters must not contain NUL characters")
    return form, frozenset(repeated)


def _unquote(text: str) -> str:
    if "%" in text or "+" in text:
        return unquote_plus(text, errors="strict")
    return text


def _too_large(max_size: int) -> InvalidRequestError:
    return InvalidRequestError(f"request body larger than {max_size} bytes", status_code=413)
