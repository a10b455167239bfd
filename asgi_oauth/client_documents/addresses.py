"""Where a client ID metadata document may be fetched from.

The shape of a client identifier URL (draft-ietf-oauth-client-id-metadata-document-02
§3), the hosts a deployment trusts or refuses, and which IP addresses are public: a
document URL must never reach loopback, private, link-local or other special-use
addresses (§8.6, RFC 6890), however the address is written or wrapped. Pure functions;
``fetch.py`` applies them before and instead of any second name resolution.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = [
    "MAX_URL_LENGTH",
    "DocumentFetchError",
    "DocumentURL",
    "IPAddress",
    "check_document_url",
    "check_host",
    "host_matches",
    "is_public_address",
    "looks_like_document_url",
    "parse_document_url",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Longer client identifiers are refused before anything else is looked at.
MAX_URL_LENGTH = 2048

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_PRINTABLE_ASCII = re.compile(r"[!-~]+")
# Ranges ``ipaddress`` (3.10-3.12) does not report as non-global; each wraps or
# names no public host.
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: embeds an IPv4 address
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: a site's own translator
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291 §2.5.5.1, deprecated
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # RFC 3879, deprecated
_DOCUMENTATION_V6 = ipaddress.ip_network("3fff::/20")  # RFC 9637


class DocumentFetchError(Exception):
    """Why a client ID metadata document could not be used.

    The message is short and safe to show a person and the client: it names the rule
    that was broken, never an internal address, a stack or the server's configuration.
    """


@dataclass(frozen=True, slots=True)
class DocumentURL:
    """A checked client identifier URL, taken apart for the fetch."""

    url: str
    #: Lower case, without a trailing dot, IPv6 literals without brackets.
    host: str
    port: int
    #: The path exactly as the URL gives it (no query: it is refused).
    path: str

    @property
    def host_header(self) -> str:
        """The ``Host`` header (RFC 9110 §7.2) the document's own server expects."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 443 else f"{host}:{self.port}"


def looks_like_document_url(client_id: str) -> bool:
    """Whether ``client_id`` is meant as a document URL: https with a path other than "/".

    Cheap and lenient on purpose: what looks like one is then checked by
    ``check_document_url``, so a malformed one gets a reason instead of "unknown client".
    """
    if not client_id.startswith("https://"):
        return False
    try:
        path = urlsplit(client_id).path
    except ValueError:
        return True
    return path not in ("", "/")


def check_document_url(url: str) -> None:
    """Refuse a client identifier URL the draft does not allow (§3).

    https; a host; a path other than "/"; no "." or ".." segments, even percent-encoded;
    no fragment; no user name or password. A query is refused too: §3 says it SHOULD NOT
    be there, and a document URL with one is usually a client id built by mistake.
    """
    parse_document_url(url)


def parse_document_url(url: str) -> DocumentURL:
    """``check_document_url``, returning the parts the fetch needs."""
    if len(url) > MAX_URL_LENGTH:
        raise DocumentFetchError(f"the client_id URL is longer than {MAX_URL_LENGTH} characters")
    if not url.startswith("https://"):
        raise DocumentFetchError("the client_id URL must use https")
    if not _PRINTABLE_ASCII.fullmatch(url):
        # urlsplit silently drops tabs and newlines; anything outside printable ASCII
        # (spaces, Unicode host names: give their A-label form) is refused instead.
        raise DocumentFetchError("the client_id URL may contain only printable ASCII characters")
    if "#" in url:
        raise DocumentFetchError("the client_id URL must not contain a fragment")
    if "?" in url:
        raise DocumentFetchError("the client_id URL must not contain a query string")
    try:
        parts = urlsplit(url)
        port = 443 if parts.port is None else parts.port
    except ValueError:
        raise DocumentFetchError("the client_id is not a valid URL") from None
    if port == 0:
        raise DocumentFetchError("the client_id URL's port is not valid")
    if "@" in parts.netloc:
        raise DocumentFetchError("the client_id URL must not contain a user name or password")
    host = _host(parts.hostname or "", bracketed=parts.netloc.startswith("["))
    if parts.path in ("", "/"):
        raise DocumentFetchError("the client_id URL must have a path")
    if any(unquote(segment) in (".", "..") for segment in parts.path.split("/")):
        raise DocumentFetchError('the client_id URL must not contain "." or ".." path segments')
    return DocumentURL(url=url, host=host, port=port, path=parts.path)


def _host(host: str, *, bracketed: bool) -> str:
    """A DNS name or an IP literal, lower case, without a trailing dot; else refused."""
    if bracketed:
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            raise DocumentFetchError("the client_id URL's host is not valid") from None
    host = host.removesuffix(".")
    labels = host.split(".")
    if labels[-1].isdigit():
        # Only a dotted quad: "127.1", "2130706433" and "0x7f.1" also reach 127.0.0.1
        # through getaddrinfo, and no top-level domain is all digits.
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise DocumentFetchError("the client_id URL's host is not valid") from None
    if not host or len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise DocumentFetchError("the client_id URL's host is not valid")
    return host


def host_matches(host: str, pattern: str) -> bool:
    """``pattern`` is a host name (exact) or ``*.example.com`` (any subdomain, not the apex).

    Case-insensitive, a trailing dot ignored, IDNA names compared in the form given.
    """
    host = _normal(host)
    pattern = _normal(pattern)
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def _normal(host: str) -> str:
    return host.strip("[]").removesuffix(".").lower()


def check_host(host: str, *, allowed: tuple[str, ...], denied: tuple[str, ...]) -> None:
    """Refuse a denied host, then one outside a non-empty allow-list."""
    if any(host_matches(host, pattern) for pattern in denied):
        raise DocumentFetchError("documents from this host are refused by this server")
    if allowed and not any(host_matches(host, pattern) for pattern in allowed):
        raise DocumentFetchError("documents from this host are not trusted by this server")


def is_public_address(address: str | IPAddress) -> bool:
    """Whether ``address`` is a public unicast address a fetch may connect to (§8.6).

    Loopback, private (RFC 1918, fc00::/7), link-local (including 169.254.169.254,
    cloud metadata), shared (100.64/10), unspecified, multicast, reserved and
    documentation addresses are not; nor an IPv6 address wrapping one of those
    (IPv4-mapped, NAT64, 6to4), nor IPv4-compatible, Teredo or site-local ones.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64_WELL_KNOWN:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(embedded)
        if ip.teredo is not None or any(
            ip in network
            for network in (_NAT64_LOCAL, _IPV4_COMPATIBLE, _SITE_LOCAL, _DOCUMENTATION_V6)
        ):
            return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )
