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

from ..crypto import hash_token
from ..errors import StorageError, TemporarilyUnavailableError
from ..jwt_access_tokens import is_json_int, looks_like_jwt, unverified_jti_key
from ..keys import KeyEncryptionError
from ..models import INACTIVE, IntrospectionResult
from ..revocation import RevocationList
from ..revocation_signal import signal_of
from ..server import AuthorizationServer
from .cache import IntrospectionCache
from .jwt import JWTIntrospector
from .protocols import CachingIntrospector, IntrospectionUnavailable, Introspector
from .revocation_stream import RevocationStream

__all__ = [
    "CachingIntrospector",
    "IntrospectionUnavailable",
    "Introspector",
    "LocalIntrospector",
    "RemoteIntrospector",
]

logger = logging.getLogger("asgi_oauth")

#: What no signal's version is: the first check forgets (an empty cache).
_UNSEEN = object()

_KNOWN_CLAIMS = frozenset(
    {"active", "scope", "client_id", "token_type", "exp", "iat", "iss", "sub", "aud", "cnf"}
)


class LocalIntrospector:
    """Introspection by an ``AuthorizationServer`` in this process, cached.

    A revocation anywhere (this process, another worker or instance sharing the
    store, the command line) moves the store's revocation signal, which every
    request checks: the cache is then forgotten, the JWT revocation list reread
    and the signing keys too, so the revoked token is refused at once. While the
    signal is not live (see ``revocation_signal``) that is logged, and a
    revocation elsewhere is seen within ``cache_ttl`` seconds. When the server
    signs keys, JWT access tokens (RFC 9068) are checked here without the store,
    against a revocation list reread every ``revocation_ttl`` seconds at most.
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
        self._cache_ttl = cache_ttl
        self._revocation_ttl = revocation_ttl
        self._max_cache_size = max_cache_size
        self._signal = signal_of(server.storage)
        self._version = self._signal.version  # the hot path: one call and a compare
        self._seen: object = _UNSEEN  # the signal is read on first use, not here
        self._warned = False
        self._jwt = self._new_jwt()
        #: The key set's generation ``_jwt`` verified against.
        self._keys_seen = -1 if server.keys is None else server.keys.generation
        server.add_revocation_listener(self._forget)

    @property
    def issuer(self) -> str:
        return self.server.settings.issuer

    async def introspect_token(self, token: str) -> IntrospectionResult:
        if self._version() != self._seen:
            self._forget()
        if not self._signal.live or self._warned:
            self._note_signal()
        jwt = self._jwt
        if jwt is not None and looks_like_jwt(token):
            return await (await self._current_jwt(jwt)).introspect_token(token)
        return self._cache.peek(token) or await self._cache.get(token, self._introspect)

    def cached(self, token: str) -> IntrospectionResult | None:
        if self._version() != self._seen:
            self._forget()
        found = self._cache.peek(token)
        if found is None and self._jwt is not None:
            return self._jwt.cached(token)
        return found

    def _forget(self) -> None:
        """Something was revoked: forget every answer, and reread before the next one.

        The version is read first, so whatever moves it afterwards is noticed next time.
        """
        self._seen = self._version()
        self._cache.clear()
        if self._jwt is not None:
            self._jwt.expire_revocations()

    async def _current_jwt(self, jwt: JWTIntrospector) -> JWTIntrospector:
        """The JWT introspector, made anew (forgetting every token it verified) when
        the key set changed: a key retired at once must verify nothing any more."""
        keys = self.server.keys
        assert keys is not None  # there is a JWT introspector
        try:
            await keys.ready()  # rereads the keys when the signal moved
        except (StorageError, KeyEncryptionError) as exc:
            raise IntrospectionUnavailable(f"reading the signing keys failed: {exc}") from exc
        if keys.generation != self._keys_seen:
            self._keys_seen = keys.generation
            self._jwt = self._new_jwt()
        return self._jwt or jwt

    def _new_jwt(self) -> JWTIntrospector | None:
        server, settings = self.server, self.server.settings
        if server.keys is None:
            return None
        return JWTIntrospector(
            keys=server.keys,
            issuer=settings.issuer,
            audience=(settings.jwt_audience, *settings.resources),
            revocations=RevocationList(
                server.storage, ttl=self._revocation_ttl, clock=server.clock
            ),
            leeway=settings.clock_skew,
            max_cache_size=self._max_cache_size,
            clock=server.clock,
        )

    def _note_signal(self) -> None:
        """Log, once each time, that revocations elsewhere may go unseen, and when no more."""
        live = self._signal.live
        if not live and not self._warned:
            logger.warning(
                "revocations by other processes may go unseen for up to %s s: the store's"
                " revocation signal is down, cached answers last their lifetime",
                self._cache_ttl,
            )
        elif live and self._warned:
            logger.info("the store's revocation signal is back: revocations are seen at once")
        self._warned = not live

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

    With ``revocations`` (a ``RevocationStream`` of the same server) a cached
    answer is dropped as soon as its token is revoked; while the stream is down,
    answers last ``cache_ttl`` as without it. ``aclose`` closes the stream too.
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
        revocations: RevocationStream | None = None,
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
            ttl=cache_ttl, negative_ttl=negative_cache_ttl, max_size=max_cache_size, key=_store_key
        )
        self._revocations = revocations
        if revocations is not None:
            revocations.subscribe(self)

    async def introspect_token(self, token: str) -> IntrospectionResult:
        return self._cache.peek(token) or await self._cache.get(token, self._introspect)

    def cached(self, token: str) -> IntrospectionResult | None:
        return self._cache.peek(token)

    def resync(self, token_keys: frozenset[str]) -> None:
        """The stream (re)connected: forget every revoked token, missed ones included."""
        self._cache.forget(token_keys)

    def revoked(self, token_keys: frozenset[str]) -> None:
        self._cache.forget(token_keys)

    @property
    def revocation_stream(self) -> RevocationStream | None:
        """The stream this introspector follows revocations by, if any."""
        return self._revocations

    async def aclose(self) -> None:
        if self._revocations is not None:
            await self._revocations.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _introspect(self, token: str) -> IntrospectionResult:
        if self._revocations is not None:
            self._revocations.start()
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


def _store_key(token: str) -> str | None:
    """The key the revocation stream names ``token`` by: a JWT's ``jti_key`` (read
    unverified: only the server's answer about the token is ever cached under it)."""
    return unverified_jti_key(token) if looks_like_jwt(token) else hash_token(token)


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
