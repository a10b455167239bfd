"""DPoP proofs where the request arrives (RFC 9449 §7.1), checked on every request.

A proof must fit this request (``htm``, ``htu``) and the access token sent
with it (``ath``), be fresh, carry a server nonce when they are required (§9),
and be used once (§11.1). The memory of proofs seen is this process's own: a
proof replayed to another process of the same API within the leeway is not
caught there, which server nonces narrow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import quote, urlsplit

from starlette.types import Scope

from ..dpop import (
    DPoPNonces,
    DPoPProof,
    ReplayCache,
    replay_key,
    verify_dpop_proof,
)
from ..errors import InvalidDPoPProofError, UseDPoPNonceError
from .errors import BearerError
from .extraction import dpop_header

#: Seconds a proof is remembered past the end of its window, for clocks read a bit apart.
_MARGIN = 5
#: RFC 3986 §3.3: the characters a path keeps as they are.
_PATH_SAFE = "/:@!$&'()*+,;="
#: A websocket handshake is an HTTP request; its target URI is http(s) (RFC 9110 §7.1).
_HTTP_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


class ProofChecker:
    """Checks the ``DPoP`` header of a request sent with ``Authorization: DPoP``.

    ``origin`` (``scheme://host[:port]``) is where clients reach the API: the
    ``htu`` of a proof is checked against it and the request's path, never the
    ``Host`` header then. Without it the request's scheme and ``Host`` are used,
    which a TLS-terminating proxy must pass on.
    """

    def __init__(
        self,
        *,
        origin: str | None,
        nonces: DPoPNonces | None,
        leeway: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if leeway < 0:
            raise ValueError("dpop_leeway must be >= 0")
        self._origin = None if origin is None else parse_origin(origin)
        self._nonces = nonces
        self._leeway = leeway
        self._clock = clock
        self._seen = ReplayCache()

    def check(self, scope: Scope, token: str) -> DPoPProof:
        """The request's proof for ``token``; ``BearerError`` when it is none."""
        proof = dpop_header(scope)
        now = self._clock()
        # A websocket is opened by a GET (RFC 6455 §4.1).
        method = scope["method"] if scope["type"] == "http" else "GET"
        try:
            checked = verify_dpop_proof(
                proof,
                method=method,
                url=self.request_url(scope),
                now=int(now),
                leeway=self._leeway,
                access_token=token,
                nonces=self._nonces,
            )
        except UseDPoPNonceError as exc:
            raise BearerError.use_dpop_nonce(exc.headers["DPoP-Nonce"]) from None
        except InvalidDPoPProofError as exc:
            raise BearerError.invalid_dpop_proof(exc.description or exc.error) from None
        # §11.1: remembered while its iat is acceptable, so it is used once.
        expires_at = checked.iat + self._leeway + _MARGIN
        if not self._seen.use_once(replay_key(checked), expires_at=expires_at, now=now):
            raise BearerError.invalid_dpop_proof("the DPoP proof was used before")
        return checked

    def request_url(self, scope: Scope) -> str:
        """The URL the request was sent to, without its query (RFC 9449 §4.3)."""
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        if root_path and not path.startswith(root_path):
            path = root_path + path
        path = quote(path, safe=_PATH_SAFE)
        if self._origin is not None:
            return self._origin + path
        scheme = _HTTP_SCHEMES.get(scope.get("scheme", "http"), "http")
        host = _host(scope)
        if host is None:
            raise BearerError.invalid_dpop_proof("the request names no host")
        return f"{scheme}://{host}{path}"


def parse_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``; ``ValueError`` for anything but http(s)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"origin must be an http(s) URL: {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def _host(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"host":
            host: str = value.decode("latin-1")
            return host
    server = scope.get("server")
    if server is None:
        return None
    name, port = server
    if ":" in name:
        name = f"[{name}]"  # an IPv6 address
    return f"{name}:{port}" if port is not None else str(name)
