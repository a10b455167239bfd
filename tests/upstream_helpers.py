"""Running the fake upstream identity providers, and what sign-in tests do with them.

``serve_upstream`` runs a fake from ``tests.servers.upstreams`` under uvicorn in a
thread on a free loopback port, so the code under test reaches it over real HTTP.
Nothing here needs pytest.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import httpx
import uvicorn
from joserfc import jwt
from joserfc.errors import InvalidClaimError
from joserfc.jwk import KeySet

from .servers.upstreams import FakeOpenIDProvider, GitHubLike, Upstream, s256

__all__ = [
    "FakeOpenIDProvider",
    "GitHubLike",
    "pkce_pair",
    "query_of",
    "serve_upstream",
    "upstream_redirect",
    "verify_id_token",
]

U = TypeVar("U", bound=Upstream)


@contextmanager
def serve_upstream(fake: U, *, timeout: float = 5.0) -> Iterator[U]:
    """Serve ``fake`` on ``http://127.0.0.1:<free port>`` and set its ``base_url``.

    The socket is bound before uvicorn starts, so ``base_url`` (the OpenID issuer) is
    known to the fake from its first request.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    fake.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(fake, lifespan="off", ws="none", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the fake upstream at {fake.base_url} did not start")
            time.sleep(0.01)
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


def pkce_pair() -> tuple[str, str]:
    """A fresh ``(code_verifier, S256 code_challenge)`` (RFC 7636 §4.1, §4.2)."""
    verifier = secrets.token_urlsafe(48)
    return verifier, s256(verifier)


def query_of(url: str) -> dict[str, str]:
    """The query parameters of ``url`` (a redirect's ``Location``) as a dict."""
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


async def upstream_redirect(http: httpx.AsyncClient, authorize_url: str) -> str:
    """What a browser does at the upstream: GET its authorization URL, return where the
    302 sends it back (the relying party's callback with ``code``/``error`` and ``state``)."""
    response = await http.get(authorize_url, follow_redirects=False)
    if response.status_code != 302:
        raise AssertionError(f"upstream answered {response.status_code}: {response.text}")
    return response.headers["location"]


def verify_id_token(
    token: str, jwks: Mapping[str, Any], *, issuer: str, audience: str, nonce: str | None
) -> dict[str, Any]:
    """The claims of an RS256 ID token checked as OpenID Connect Core §3.1.3.7 says
    (signature, iss, aud, exp, nonce); raises a ``joserfc`` error otherwise."""
    keys = KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
    decoded = jwt.decode(token, keys, algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
    ).validate(decoded.claims)
    if nonce is not None and decoded.claims.get("nonce") != nonce:
        raise InvalidClaimError("nonce")
    return dict(decoded.claims)
