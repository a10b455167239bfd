"""Checking JWT access tokens (RFC 9068) where the request arrives: no call per request.

``JWTIntrospector`` verifies the signature against the issuer's keys, then
``iss``, ``aud`` and the times with some clock leeway, and remembers what a
token said until it expires. A revocation list, reread from the store every
few seconds (or the issuer's revocation event stream, followed from another
process), refuses tokens revoked before they expired. Any token that is not
a JWT goes to the ``fallback`` introspector.

The keys come from this process's ``AuthorizationServer`` (see
``LocalIntrospector``) or from the issuer's ``jwks_uri`` (``RemoteJWKS``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import httpx

from ..errors import StorageError
from ..jwt_access_tokens import check_access_token, jti_key, looks_like_jwt
from ..keys import InvalidJWTError, KeyEncryptionError, PublicKeys, UnknownKeyError
from ..models import INACTIVE, IntrospectionResult
from ..revocation import RevocationList
from .protocols import IntrospectionUnavailable, Introspector
from .revocation_stream import RevocationStream

logger = logging.getLogger("asgi_oauth")

_MAX_JWKS_BYTES = 256 * 1024


class KeySource(Protocol):
    async def verify_fresh(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Header and claims of a JWT the issuer signed; ``InvalidJWTError`` otherwise."""


class RemoteJWKS:
    """The issuer's published keys, fetched from its ``jwks_uri`` and kept.

    A token signed by a key not seen yet (a rotation) fetches the set again,
    but not more often than every ``min_refetch_interval`` seconds, so junk
    tokens cannot make this process hammer the issuer.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 2.0,
        refresh_interval: float = 3600.0,
        min_refetch_interval: float = 10.0,
    ) -> None:
        self.url = url
        self._timeout = timeout
        self._refresh_interval = refresh_interval
        self._min_refetch = min_refetch_interval
        self._keys: PublicKeys | None = None
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self._client: httpx.AsyncClient | None = None

    async def verify_fresh(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        keys = self._keys
        if keys is None or time.monotonic() - self._fetched_at > self._refresh_interval:
            keys = await self._fetch(keys)
        try:
            return keys.verify(token)
        except UnknownKeyError:
            if time.monotonic() - self._fetched_at < self._min_refetch:
                raise
        return (await self._fetch(keys)).verify(token)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _fetch(self, known: PublicKeys | None) -> PublicKeys:
        async with self._lock:
            if self._keys is not known and self._keys is not None:
                return self._keys  # another request fetched them while this one waited
            if self._client is None:
                self._client = httpx.AsyncClient(timeout=self._timeout)
            try:
                response = await asyncio.wait_for(self._client.get(self.url), self._timeout)
                if response.status_code != 200 or len(response.content) > _MAX_JWKS_BYTES:
                    raise ValueError(f"HTTP {response.status_code}")
                keys = PublicKeys.from_jwks(response.json())
            except (httpx.HTTPError, asyncio.TimeoutError, ValueError) as exc:
                self._fetched_at = time.monotonic()  # no retry storm while the issuer is down
                if self._keys is not None:
                    logger.warning("fetching %s failed, keeping the keys: %s", self.url, exc)
                    return self._keys
                raise IntrospectionUnavailable(f"fetching {self.url} failed: {exc}") from exc
            self._keys, self._fetched_at = keys, time.monotonic()
            return keys


class JWTIntrospector:
    """Introspection of JWT access tokens by checking them here (RFC 9068 §4).

    ``revocations`` is the store's revocation list, or, for a resource server
    with no access to the store, the issuer's ``RevocationStream``: a token it
    names is refused at once. Without either, or while the stream is down, a
    revoked token is accepted until it expires (refusing every token then would
    make the stream a single point of failure; keep access tokens short-lived).
    ``audience`` is this resource server's identifier (or several), one of which
    the token's ``aud`` must name.
    """

    def __init__(
        self,
        *,
        keys: KeySource,
        issuer: str,
        audience: str | Iterable[str],
        revocations: RevocationList | RevocationStream | None,
        fallback: Introspector | None = None,
        leeway: int = 60,
        max_cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._issuer = issuer
        self._audiences = frozenset((audience,) if isinstance(audience, str) else audience)
        self._revocations: RevocationList | None = None
        self._stream: RevocationStream | None = None
        if isinstance(revocations, RevocationStream):
            self._stream = revocations
        else:
            self._revocations = revocations
        #: The stream's revoked keys: a set it updates in place, tested without a call.
        self._streamed = None if self._stream is None else self._stream.revoked_keys
        self._fallback = fallback
        self._leeway = leeway
        self._max_cache_size = max_cache_size
        #: Tokens already verified: what each says, and its key in the revocation list.
        self._verified: dict[str, tuple[IntrospectionResult, str]] = {}

    def cached(self, token: str) -> IntrospectionResult | None:
        """The answer for a token verified before, while it and the revocation list last."""
        entry = self._verified.get(token)
        if entry is None:
            return None
        info, token_hash = entry
        revocations = self._revocations
        if revocations is not None and (not revocations.is_fresh or token_hash in revocations):
            return None
        streamed = self._streamed
        if streamed is not None and token_hash in streamed:
            del self._verified[token]
            return None
        if info.exp is not None and info.exp + self._leeway <= self._clock():
            del self._verified[token]
            return None
        return info

    @property
    def revocation_stream(self) -> RevocationStream | None:
        """The stream this introspector follows revocations by, if any."""
        return self._stream

    async def introspect_token(self, token: str) -> IntrospectionResult:
        if not looks_like_jwt(token):
            if self._fallback is None:
                return INACTIVE
            return await self._fallback.introspect_token(token)
        revocations = self._revocations
        stream = self._stream
        if stream is not None:
            stream.start()
        try:
            if revocations is not None:
                await revocations.refresh()
                known = self.cached(token)
                if known is not None:
                    return known
                if self._verified.get(token, (INACTIVE, ""))[1] in revocations:
                    return INACTIVE
            header, claims = await self._keys.verify_fresh(token)
        except InvalidJWTError:
            return INACTIVE
        except (StorageError, KeyEncryptionError) as exc:
            raise IntrospectionUnavailable(f"checking a JWT failed: {exc}") from exc
        try:
            info = check_access_token(
                header,
                claims,
                issuer=self._issuer,
                audiences=self._audiences,
                now=int(self._clock()),
                leeway=self._leeway,
            )
        except InvalidJWTError:
            return INACTIVE
        token_hash = jti_key(claims)
        if token_hash is None:
            return INACTIVE  # RFC 9068 §2.2: jti is required
        streamed = self._streamed
        if (revocations is not None and token_hash in revocations) or (
            streamed is not None and token_hash in streamed
        ):
            return INACTIVE
        if len(self._verified) >= self._max_cache_size:
            self._verified.clear()
        self._verified[token] = (info, token_hash)
        return info

    def expire_revocations(self) -> None:
        """Reread the revocation list before the next answer: this process revoked something."""
        if self._revocations is not None:
            self._revocations.expire()
