"""Cross-origin resource sharing (the Fetch standard's CORS protocol): which browser
origins may read an answer, and the headers that say so.

Shared by the authorization server's endpoints (``asgi_oauth.app``) and the bearer
middleware, so both answer browsers alike. Only endpoints that never use cookies
take part, so requests are never in credentials mode:
``Access-Control-Allow-Credentials`` is never sent and ``*`` is a safe answer.
"""

from __future__ import annotations

from collections.abc import Iterable

Headers = list[tuple[bytes, bytes]]

#: Any origin, in ``Settings.cors_origins`` and in ``Access-Control-Allow-Origin``.
ANY_ORIGIN = "*"
#: What browser clients send: tokens (RFC 6750 §2.1), JSON or form bodies, DPoP proofs
#: (RFC 9449 §4.1) and MCP's Streamable HTTP headers (its session, resumption and, from
#: the 2026-07-28 revision, routing headers). Listed one by one: a ``*`` here never
#: covers ``Authorization`` (Fetch standard, CORS-preflight fetch).
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "DPoP",
    "MCP-Protocol-Version",
    "Mcp-Session-Id",
    "Last-Event-ID",
    "Mcp-Method",
    "Mcp-Name",
)
#: What a browser client may read beyond the safelisted headers: the challenge
#: (RFC 6750 §3), a new DPoP nonce (RFC 9449 §8, §9) and when to retry (RFC 9110 §10.2.3).
EXPOSED_HEADERS = ("WWW-Authenticate", "DPoP-Nonce", "Retry-After")
#: Seconds a browser may reuse a preflight's answer (Chromium caps it at 7200).
MAX_AGE = 600

ALLOW_ORIGIN = b"access-control-allow-origin"
_VARY_ORIGIN = (b"vary", b"Origin")


class CORSPolicy:
    """Which origins may read answers: ``*`` for any, else the ones listed; ``()``
    for none (the app still admits origins its clients registered).

    An answer for one listed origin is not for another, so it says ``Vary: Origin``
    (Fetch standard, CORS protocol and HTTP caches); with ``*`` it is the same for all.
    """

    __slots__ = ("_allowed_headers", "_any", "_exposed", "_origins")

    def __init__(
        self,
        origins: Iterable[str] = (ANY_ORIGIN,),
        *,
        exposed: Iterable[str] = EXPOSED_HEADERS,
    ) -> None:
        listed = frozenset(origins)
        self._any = ANY_ORIGIN in listed
        # Browsers serialize an origin's scheme and host in lower case (RFC 6454 §6.2).
        self._origins = frozenset(o.lower() for o in listed - {ANY_ORIGIN})
        self._exposed = (b"access-control-expose-headers", ", ".join(exposed).encode())
        self._allowed_headers = ", ".join(ALLOWED_HEADERS).encode()

    @property
    def enabled(self) -> bool:
        """Whether any origin is allowed by the policy itself."""
        return self._any or bool(self._origins)

    def allows(self, origin: str) -> bool:
        """Whether the policy itself allows ``origin`` (``*`` allows every one)."""
        return self._any or origin in self._origins

    def headers(self, origin: str | None, *, registered: bool = False) -> Headers:
        """The headers of an answer to a request from ``origin``: leave to read it when
        the policy allows the origin or ``registered`` says a client registered it.

        With ``*`` every answer carries them, an ``Origin`` or not, so a shared cache
        never hands a browser a copy made for a request without one.
        """
        if self._any:
            return [(ALLOW_ORIGIN, b"*"), self._exposed]
        if origin is not None and (registered or origin in self._origins):
            return [(ALLOW_ORIGIN, origin.encode("latin-1")), self._exposed, _VARY_ORIGIN]
        return [_VARY_ORIGIN]

    def preflight(
        self, answer: Headers, methods: Iterable[str], extra_headers: Iterable[str] = ()
    ) -> Headers | None:
        """The headers of a preflight's 204, from ``headers``' ``answer``; ``None``
        when the origin is not allowed, to be refused with ``answer`` alone.
        ``extra_headers`` are request headers allowed beyond ``ALLOWED_HEADERS``."""
        if not allows_origin(answer):
            return None
        allowed = self._allowed_headers
        extra = ", ".join(extra_headers).encode("latin-1")
        return [
            *answer,
            (b"access-control-allow-methods", ", ".join((*methods, "OPTIONS")).encode()),
            (b"access-control-allow-headers", allowed + b", " + extra if extra else allowed),
            (b"access-control-max-age", str(MAX_AGE).encode()),
        ]


def allows_origin(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether response headers already carry ``Access-Control-Allow-Origin``."""
    return any(name.lower() == ALLOW_ORIGIN for name, _ in headers)


def request_origin(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The request's ``Origin``; ``None`` when absent or repeated (no browser repeats it)."""
    found = [value for name, value in headers if name.lower() == b"origin"]
    return found[0].decode("latin-1") if len(found) == 1 else None


def request_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The first value of the request header ``name`` (lower case), if sent."""
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def is_preflight(method: str, headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """A CORS preflight: ``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``
    (Fetch standard). It carries no credentials, so it never needs a token."""
    if method != "OPTIONS":
        return False
    names = {name.lower() for name, _ in headers}
    return b"origin" in names and b"access-control-request-method" in names
