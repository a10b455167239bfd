"""Fetching a client ID metadata document without letting its URL reach inside.

draft-ietf-oauth-client-id-metadata-document-02: the URL's shape is checked (§3), its
host against the deployment's lists, then the host is resolved once and every address
must be public (§8.6); the request goes to that very address (the certificate still
checked against the host name), so a second DNS answer cannot point it elsewhere. One
GET, no redirects, 200 and ``application/json`` only (§5), bounded in size (§8.7) and
in time, and the cache lifetime read from its headers (§5.2). Whatever goes wrong is a
``DocumentFetchError`` with a message fit for a person and the client.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from .addresses import (
    DocumentFetchError,
    DocumentURL,
    IPAddress,
    check_document_url,
    check_host,
    is_public_address,
    looks_like_document_url,
    parse_document_url,
)

if TYPE_CHECKING:
    from ..config import Settings

__all__ = [
    "DEFAULT_CACHE",
    "MAX_CACHE",
    "MIN_CACHE",
    "DocumentFetchError",
    "DocumentFetcher",
    "FetchPolicy",
    "FetchedDocument",
    "Resolver",
    "check_document_url",
    "looks_like_document_url",
]

logger = logging.getLogger("asgi_oauth")

#: Seconds a document is kept: without cache headers, and the bounds on what they ask.
DEFAULT_CACHE = 3600
MIN_CACHE = 60
MAX_CACHE = 86400
#: Addresses of one host tried in turn when a connection is refused.
_MAX_ATTEMPTS = 3

#: ``(host, port) -> IP address strings``: how a host name is resolved.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """The system resolver's addresses for ``host``, in its order, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """Which documents may be fetched, and how much of the server a fetch may take."""

    #: Empty: any public host. ``h.example`` exactly, ``*.example.com`` its subdomains.
    allowed_hosts: tuple[str, ...] = ()
    #: The same forms; checked first.
    denied_hosts: tuple[str, ...] = ()
    #: For tests only: allow loopback, private and link-local addresses.
    private_addresses: bool = False
    max_bytes: int = 32 * 1024
    #: Seconds for the whole fetch: resolution, connection, TLS, headers and body.
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or not self.timeout > 0:
            raise ValueError("max_bytes and timeout must be positive")
        for pattern in (*self.allowed_hosts, *self.denied_hosts):
            if not pattern or "*" in pattern.removeprefix("*.") or pattern == "*.":
                raise ValueError(f"a host is a name or *.name: {pattern!r}")

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        return cls(
            allowed_hosts=settings.client_id_metadata_document_hosts,
            denied_hosts=settings.client_id_metadata_document_denied_hosts,
            private_addresses=settings.client_id_metadata_document_private_addresses,
            max_bytes=settings.client_id_metadata_document_max_bytes,
            timeout=float(settings.client_id_metadata_document_timeout),
        )


@dataclass(frozen=True, slots=True)
class FetchedDocument:
    """A document as fetched: its JSON object and the seconds it may be cached."""

    metadata: dict[str, object]
    max_age: int


def default_ssl_context() -> ssl.SSLContext:
    """The system's trust store (``SSL_CERT_FILE`` honoured), else certifi's bundle."""
    context = ssl.create_default_context()
    if not context.cert_store_stats()["x509_ca"]:
        import certifi  # httpx's own dependency: Mozilla's roots where the system has none

        context.load_verify_locations(certifi.where())
    return context


class DocumentFetcher:
    """Fetches client ID metadata documents under a ``FetchPolicy``.

    One HTTP client serves every fetch; it never keeps a connection open, as a
    connection is bound to one host's address and certificate name. ``aclose`` ends it.
    """

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        self._resolve = resolver or resolve
        self._ssl_context = ssl_context
        self._client: httpx.AsyncClient | None = None

    async def fetch(self, url: str) -> FetchedDocument:
        """The document at ``url``, or ``DocumentFetchError`` saying why not."""
        try:
            deadline = asyncio.get_running_loop().time() + self.policy.timeout
            return await asyncio.wait_for(self._fetch(url, deadline), self.policy.timeout)
        except DocumentFetchError:
            raise
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise DocumentFetchError("fetching the document took too long") from None
        except httpx.HTTPError:
            # The host broke HTTP: closed early, a malformed response; its own affair.
            raise DocumentFetchError("the document's host sent no valid HTTP response") from None
        except Exception:
            logger.warning("fetching the client ID metadata document %r failed", url, exc_info=True)
            raise DocumentFetchError("the document could not be fetched") from None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _fetch(self, url: str, deadline: float) -> FetchedDocument:
        target = parse_document_url(url)
        check_host(target.host, allowed=self.policy.allowed_hosts, denied=self.policy.denied_hosts)
        addresses = await self._addresses(target)
        timed_out = False
        for address in addresses[:_MAX_ATTEMPTS]:
            try:
                return await self._get(target, address, deadline)
            except httpx.ConnectTimeout:
                timed_out = True
            except httpx.ConnectError as exc:
                refusal = _tls_refusal(exc)
                if refusal is not None:
                    raise refusal from None
        if timed_out:
            raise DocumentFetchError("fetching the document took too long")
        raise DocumentFetchError("the document's host could not be reached")

    async def _addresses(self, target: DocumentURL) -> list[IPAddress]:
        """The host's addresses, resolved once, every one of them checked (§8.6)."""
        try:
            addresses = [ipaddress.ip_address(target.host)]
        except ValueError:
            addresses = await self._resolved(target)
        if not self.policy.private_addresses and not all(map(is_public_address, addresses)):
            raise DocumentFetchError("the document's host has a private or special-use address")
        return addresses

    async def _resolved(self, target: DocumentURL) -> list[IPAddress]:
        unresolved = DocumentFetchError("the document's host name could not be resolved")
        try:
            answers = await self._resolve(target.host, target.port)
            addresses = [ipaddress.ip_address(answer) for answer in answers]
        except (OSError, ValueError):
            raise unresolved from None
        if not addresses:
            raise unresolved
        return addresses

    async def _get(
        self, target: DocumentURL, address: IPAddress, deadline: float
    ) -> FetchedDocument:
        """GET the document from ``address``, the TLS certificate checked for the host."""
        # Connecting and the TLS handshake time out on their own, well before the whole
        # fetch does: a task cancelled during the handshake would leak its socket.
        remaining = max(0.0, deadline - asyncio.get_running_loop().time())
        timeout = httpx.Timeout(remaining, connect=remaining / 3)
        literal = str(address).replace("%", "%25")
        netloc = f"[{literal}]" if address.version == 6 else literal
        headers = {
            "Host": target.host_header,
            "Accept": "application/json",
            "Accept-Encoding": "identity",
        }
        # sni_hostname: the name sent in TLS and checked against the certificate.
        extensions = {"sni_hostname": target.host}
        request_url = f"https://{netloc}:{target.port}{target.path}"
        async with self._http().stream(
            "GET", request_url, headers=headers, extensions=extensions, timeout=timeout
        ) as response:
            _check_response(response, self.policy.max_bytes)
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.policy.max_bytes:
                    raise _too_large(self.policy.max_bytes)
        return FetchedDocument(_json_object(bytes(body)), cache_lifetime(response.headers))

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                verify=self._ssl_context or default_ssl_context(),
                # No proxy from the environment: the address checked is the one connected to.
                trust_env=False,
                follow_redirects=False,
                # No keep-alive: a pooled connection is found by address alone, and would
                # carry a request for another host over a certificate checked for this one.
                limits=httpx.Limits(max_connections=8, max_keepalive_connections=0),
            )
        return self._client


def _check_response(response: httpx.Response, max_bytes: int) -> None:
    status = response.status_code
    if 300 <= status < 400:
        # §5: redirects are never followed.
        raise DocumentFetchError(f"the document's URL answered with a redirect (HTTP {status})")
    if status != 200:
        raise DocumentFetchError(f"the document's URL answered HTTP {status}, not 200")
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise DocumentFetchError("the document is not served as application/json")
    length = response.headers.get("content-length")
    size = None if length is None else _delta(length)
    if length is not None and (size is None or size > max_bytes):
        raise _too_large(max_bytes)


def _too_large(max_bytes: int) -> DocumentFetchError:
    # §8.7: a bound on what a client can make the server read.
    return DocumentFetchError(f"the document is larger than {max_bytes} bytes")


def _json_object(body: bytes) -> dict[str, object]:
    """The body as a JSON object (RFC 8259): UTF-8, no repeated member names."""
    try:
        value = json.loads(body.decode("utf-8"), object_pairs_hook=_unique_members)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DocumentFetchError("the document is not valid UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise DocumentFetchError("the document is not a JSON object")
    return value


def _unique_members(pairs: list[tuple[str, object]]) -> dict[str, object]:
    members = dict(pairs)
    if len(members) != len(pairs):
        # Two readers could take different values; none is taken.
        raise ValueError("repeated member name")
    return members


def cache_lifetime(headers: httpx.Headers) -> int:
    """Seconds the document may be cached (§5.2, RFC 9111 §5.2.2), within bounds.

    ``s-maxage`` before ``max-age`` (the server's cache is shared by all its users);
    ``no-store`` or ``no-cache``: the shortest; no directive: ``DEFAULT_CACHE``.
    """
    directives: dict[str, str] = {}
    for value in headers.get_list("cache-control", split_commas=True):
        name, _, argument = value.strip().partition("=")
        directives.setdefault(name.strip().lower(), argument.strip().strip('"'))
    if "no-store" in directives or "no-cache" in directives:
        return MIN_CACHE
    for name in ("s-maxage", "max-age"):
        if name in directives:
            # RFC 9111 §4.2.1: an invalid lifetime counts as stale.
            seconds = _delta(directives[name])
            return MIN_CACHE if seconds is None else max(MIN_CACHE, min(MAX_CACHE, seconds))
    return DEFAULT_CACHE


def _delta(value: str) -> int | None:
    """A number of seconds or bytes: ASCII digits only, 2**31 when it has more than
    ten (RFC 9111 §1.2.2, and RFC 9110 §8.6 for Content-Length); None if not one."""
    if not (value.isascii() and value.isdigit()):
        return None
    return int(value) if len(value) <= 10 else 2**31


def _tls_refusal(exc: BaseException) -> DocumentFetchError | None:
    """A TLS failure behind a connection error: not worth trying another address."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return DocumentFetchError("the document's server certificate could not be verified")
        if isinstance(cause, ssl.SSLError):
            return DocumentFetchError("a TLS connection to the document's host failed")
        cause = cause.__cause__ or cause.__context__
    return None
