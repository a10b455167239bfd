"""Finding the access token in a request (RFC 6750 §2, RFC 9449 §7.1).

The ``Authorization: Bearer`` or ``Authorization: DPoP`` header always (§2.1);
the form body (§2.2) and the ``access_token`` query parameter (§2.3) only when
enabled, since they leak into logs and caches. A token sent by more than one
method is refused (§2). A DPoP-bound token comes with its proof in one ``DPoP``
header (RFC 9449 §4.1).
"""

from __future__ import annotations

import contextlib
import re
from urllib.parse import parse_qsl

from starlette.types import Message, Receive, Scope

from .errors import BearerError

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_FORM = "application/x-www-form-urlencoded"


#: A token as the request sent it, and whether with the ``DPoP`` scheme. A plain
#: tuple: it is made on every request, and a NamedTuple costs more to build.
Presented = tuple[str, bool]


async def extract_token(
    scope: Scope,
    receive: Receive,
    *,
    allow_query: bool,
    allow_form: bool,
    max_body_size: int,
) -> tuple[Presented | None, Receive]:
    """The token, or None; and the ``receive`` the app must use (a read body is replayed)."""
    header = header_token(scope)
    found: list[str] = []
    if allow_query and scope.get("query_string"):
        found += _params(scope["query_string"].decode("latin-1"))
    if allow_form and scope["type"] == "http" and _has_form(scope):
        body, receive = await _read_body(receive, max_body_size)
        # A body that is not UTF-8 is no form this middleware can read: it holds no token.
        with contextlib.suppress(UnicodeDecodeError):
            found += _params(body.decode("utf-8")) if body is not None else []
    if len(found) + (header is not None) > 1:
        raise BearerError.invalid_request("the access token was sent more than once")
    if header is not None:
        return header, receive
    return ((found[0], False) if found else None), receive


def header_token(scope: Scope) -> Presented | None:
    """The credentials of an ``Authorization: Bearer`` (§2.1) or ``DPoP`` (RFC 9449
    §7.1) header, or None.

    Their syntax is left to ``check_syntax``, which the middleware runs only for
    a token its cache does not know: a cached one was checked when first seen.
    """
    value: bytes | None = None
    for name, raw in scope["headers"]:
        # ASGI servers lowercase header names; the length test spares lowering the rest.
        if len(name) == 13 and (name == b"authorization" or name.lower() == b"authorization"):
            if value is not None:
                raise BearerError.invalid_request("repeated Authorization header")
            value = raw
    if value is None:
        return None
    scheme, _, credentials = value.partition(b" ")
    scheme = scheme.lower()
    if scheme == b"bearer":
        return (credentials.decode("latin-1"), False)
    if scheme == b"dpop":
        return (credentials.decode("latin-1"), True)
    return None  # another scheme (Basic for a token endpoint) is not ours to judge


def dpop_header(scope: Scope) -> str:
    """The one ``DPoP`` header's proof (RFC 9449 §4.3: exactly one; §7.1)."""
    found: bytes | None = None
    for name, raw in scope["headers"]:
        if len(name) == 4 and name.lower() == b"dpop":
            if found is not None:
                raise BearerError.invalid_dpop_proof("more than one DPoP header")
            found = raw
    if found is None:
        raise BearerError.invalid_dpop_proof("a DPoP proof is required with the DPoP scheme")
    return found.decode("latin-1")


def check_syntax(token: str, scheme: str = "Bearer") -> None:
    """Refuse credentials that are no b64token (RFC 6750 §2.1; token68 for DPoP, RFC 9449 §7.1)."""
    if _B64TOKEN.fullmatch(token) is None:
        raise BearerError.invalid_request(f"malformed {scheme} credentials")


def _params(query: str) -> list[str]:
    return [
        value for name, value in parse_qsl(query, keep_blank_values=True) if name == "access_token"
    ]


def _has_form(scope: Scope) -> bool:
    # §2.2: only with a body-carrying method, never GET, and the form media type.
    if scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
        return False
    for name, value in scope["headers"]:
        if name.lower() == b"content-type":
            media_type: str = value.decode("latin-1").partition(";")[0].strip().lower()
            return media_type == _FORM
    return False


async def _read_body(receive: Receive, max_size: int) -> tuple[bytes | None, Receive]:
    """Read the body to look for a token, and a ``receive`` that replays what was read.

    A body over ``max_size`` (or cut short) is not read further and holds no token
    for us: the app still gets every byte, first those read here, then the rest.
    """
    messages: list[Message] = []
    size = 0
    complete = False
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if size > max_size:
            break
        if not message.get("more_body", False):
            complete = True
            break
    body = b"".join(m.get("body", b"") for m in messages) if complete else None

    async def replay() -> Message:
        if messages:
            return messages.pop(0)
        return await receive()

    return body, replay
