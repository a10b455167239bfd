"""Where the middleware learns what a token means: the ``Introspector`` protocol.

``LocalIntrospector`` runs the very code the ``/introspect`` endpoint runs,
in-process; ``RemoteIntrospector`` asks another server's RFC 7662 endpoint over
HTTP. Both cache their answers. An introspector that cannot decide raises
``IntrospectionUnavailable``, and the middleware refuses the request.
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from ..errors import TemporarilyUnavailableError
from ..jwt_access_tokens import is_json_int, looks_like_jwt
from ..models import INACTIVE, IntrospectionResult
from ..revocation import RevocationList
from ..server import AuthorizationServer
from .cache import IntrospectionCache
from .jwt import JWTIntrospector
from .protocols import CachingIntrospector, IntrospectionUnavailable, Introspector

__all__ = [
    "CachingIntrospector",
    "IntrospectionUnavailable",
    "Introspector",
    "LocalIntrospector",
    "RemoteIntrospector",
]

logger = logging.getLogger("asgi_oauth")

_KNOWN_CLAIMS = frozenset(
    {"active", "scope", "client_id", "token_type", "exp", "iat", "iss", "sub", "aud", "cnf"}
)


class LocalIntrospector:
    """Introspection by an ``AuthorizationServer`` in this process, cached.

    A revocation made through that server clears the cache at once; one made
    by another process sharing the store is seen within ``cache_ttl`` seconds.
    When the server signs keys, JWT access tokens (RFC 9068) are checked here
    without the store, against a revocation list reread every
    ``revocation_ttl`` seconds.
    """

    def __init__(
        self,
        server: AuthorizationServer,
        *,
        cache_ttl: float = 10.0,
        negative_cache_ttl: float = 2.0,
        max_cache_size: int = 10_000,
        revocation_ttl: float = 5.0,
    ) -> None:
        self.server = server
        self._cache = IntrospectionCache(
            ttl=cache_ttl, negative_ttl=negative_cache_ttl, max_size=max_cache_size
        )
        server.add_revocation_listener(self._cache.clear)
        self._jwt: JWTIntrospector | None = None
        settings = server.settings
        if server.keys is not None:
            self._jwt = JWTIntrospector(
                keys=server.keys,
                issuer=settings.issuer,
                audience=(settings.jwt_audience, *settings.resources),
                revocations=RevocationList(server.storage, ttl=revocation_ttl, clock=server.clock),
                leeway=settings.clock_skew,
                max_cache_size=max_cache_size,
                clock=server.clock,
            )
            server.add_revocation_listener(self._jwt.expire_revocations)

    @property
    def issuer(self) -> str:
        return self.server.settings.issuer

    async def introspect_token(self, token: str) -> IntrospectionResult:
        if self._jwt is not None and looks_like_jwt(token):
            return await self._jwt.introspect_token(token)
        return self._cache.peek(token) or await self._cache.get(token, self._introspect)

    def cached(self, token: str) -> IntrospectionResult | None:
        found = self._cache.peek(token)
        if found is None and self._jwt is not None:
            return self._jwt.cached(token)
        return found

    async def _introspect(self, token: str) -> IntrospectionResult:
        try:
            return await self.server.introspection.introspect_token(token)
        except TemporarilyUnavailableError as exc:
            raise IntrospectionUnavailable("the authorization server's store failed") from exc


class RemoteIntrospector:
    """Introspection at another server's RFC 7662 endpoint, authenticated as a client.

    The client should be registered as a resource server there, so it may
    introspect tokens issued to any client. Connections are pooled; each try
    has ``timeout`` seconds in all, and connection failures, time-outs and 5xx
    answers are tried ``retries`` more times before the request is refused.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        client_secret: str,
        timeout: float = 2.0,
        retries: int = 2,
        cache_ttl: float = 10.0,
        negative_cache_ttl: float = 2.0,
        max_cache_size: int = 10_000,
        max_connections: int = 50,
    ) -> None:
        self.url = url
        self._auth = httpx.BasicAuth(client_id, client_secret)
        self._timeout = httpx.Timeout(timeout)
        self._deadline = timeout
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._retries = retries
        self._client: httpx.AsyncClient | None = None
        self._cache = IntrospectionCache(
            ttl=cache_ttl, negative_ttl=negative_cache_ttl, max_size=max_cache_size
        )

    async def introspect_token(self, token: str) -> IntrospectionResult:
        return self._cache.peek(token) or await self._cache.get(token, self._introspect)

    def cached(self, token: str) -> IntrospectionResult | None:
        return self._cache.peek(token)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _introspect(self, token: str) -> IntrospectionResult:
        client = self._client
        if client is None:
            client = self._client = httpx.AsyncClient(
                auth=self._auth, timeout=self._timeout, limits=self._limits
            )
        form = {"token": token, "token_type_hint": "access_token"}
        problem = ""
        for attempt in range(self._retries + 1):
            if attempt:
                await asyncio.sleep(0.05 * 2 ** (attempt - 1))
            try:
                # A deadline for the whole try: httpx's timeout bounds each read only,
                # and a server trickling its answer would hold the request forever.
                response = await asyncio.wait_for(client.post(self.url, data=form), self._deadline)
            except (httpx.TransportError, asyncio.TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code >= 500:
                problem = f"HTTP {response.status_code}"
                continue
            if response.status_code != 200:
                # 401/403: our own credentials are wrong; retrying will not help.
                problem = f"HTTP {response.status_code}"
                break
            return _parse(response)
        logger.error("introspection at %s failed: %s", self.url, problem)
        raise IntrospectionUnavailable(f"introspection failed: {problem}")


def _parse(response: httpx.Response) -> IntrospectionResult:
    """An RFC 7662 §2.2 response, checked field by field; anything odd is a failure."""
    try:
        body = response.json()
    except ValueError:
        raise IntrospectionUnavailable("introspection response is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("active"), bool):
        raise IntrospectionUnavailable("introspection response has no boolean 'active'")
    if not body["active"]:
        return INACTIVE
    scope = body.get("scope", "")
    aud = body.get("aud", ())
    audience = (aud,) if isinstance(aud, str) else aud
    strings = ("client_id", "token_type", "iss", "sub")
    numbers = ("exp", "iat")
    if (
        not isinstance(scope, str)
        or not isinstance(audience, (list, tuple))
        or not all(isinstance(a, str) for a in audience)
        or any(not isinstance(body.get(n, ""), str) for n in strings)
        or any(not is_json_int(body.get(n, 0)) for n in numbers)
    ):
        raise IntrospectionUnavailable("introspection response has malformed claims")
    jkt = None
    if "cnf" in body:
        # RFC 9449 §6.2: a token bound to a DPoP key. One bound some other way
        # (RFC 8705 certificates) cannot be honoured here, so it is no good here.
        cnf = body["cnf"]
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        if not isinstance(jkt, str) or not jkt:
            return INACTIVE
    return IntrospectionResult(
        active=True,
        scope=frozenset(scope.split()),
        client_id=body.get("client_id"),
        token_type=body.get("token_type"),
        exp=body.get("exp"),
        iat=body.get("iat"),
        iss=body.get("iss"),
        sub=body.get("sub"),
        aud=tuple(audience),
        jkt=jkt,
        extra={k: v for k, v in body.items() if k not in _KNOWN_CLAIMS},
    )
