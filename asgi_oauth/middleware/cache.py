"""A bounded cache of introspection results.

A positive answer is kept for ``ttl`` seconds but never past the token's
``exp``; a negative one for ``negative_ttl`` seconds, so a flood of junk tokens
costs one lookup each per that time. Concurrent lookups of one token share a
single introspection, which goes on if one of them is cancelled. ``clear``
forgets everything, lookups under way included: it is how a revocation made in
this process takes effect at once. ``forget`` drops only the tokens whose store
keys it is given (a revocation event stream names revoked tokens by those keys):
each entry keeps its key, computed once when the lookup starts, so the warm path
never hashes and a revocation of a token never cached costs a dict miss.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

from ..crypto import hash_token
from ..models import IntrospectionResult


class IntrospectionCache:
    def __init__(
        self,
        *,
        ttl: float = 10.0,
        negative_ttl: float = 2.0,
        max_size: int = 10_000,
        clock: Callable[[], float] = time.time,
        key: Callable[[str], str | None] = hash_token,
    ) -> None:
        if ttl < 0 or negative_ttl < 0 or max_size < 1:
            raise ValueError("ttl and negative_ttl must be >= 0, max_size >= 1")
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._max_size = max_size
        self._clock = clock
        self._key = key
        #: token -> (expires, answer, the token's store key)
        self._entries: dict[str, tuple[float, IntrospectionResult, str | None]] = {}
        self._in_flight: dict[str, asyncio.Future[IntrospectionResult]] = {}
        #: store key -> token, for the entries and lookups that have one
        self._tokens: dict[str, str] = {}

    def peek(self, token: str) -> IntrospectionResult | None:
        """The cached answer, if there is a live one (the hot path: no coroutine)."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        if entry[0] > self._clock():
            return entry[1]
        self._drop(token)
        return None

    async def get(
        self, token: str, introspect: Callable[[str], Awaitable[IntrospectionResult]]
    ) -> IntrospectionResult:
        """The cached answer for ``token``, or ``introspect(token)`` remembered."""
        cached = self.peek(token)
        if cached is not None:
            return cached
        lookup = self._in_flight.get(token)
        if lookup is None:
            token_key = self._key(token)
            if token_key is not None:
                self._tokens[token_key] = token
            lookup = asyncio.ensure_future(self._lookup(token, token_key, introspect))
            lookup.add_done_callback(_retrieve)  # its error reached whoever still waited
            self._in_flight[token] = lookup
        # Shielded: a caller that is cancelled (its client went away) leaves the
        # lookup running for the others waiting on it.
        return await asyncio.shield(lookup)

    def clear(self) -> None:
        """Forget every answer; lookups already under way are neither joined nor kept."""
        self._entries.clear()
        self._in_flight.clear()
        self._tokens.clear()

    def forget(self, token_keys: Iterable[str]) -> int:
        """Forget the answers (and lookups under way) for the tokens with these store
        keys; returns how many were known."""
        tokens = self._tokens
        dropped = 0
        for token_key in token_keys:
            token = tokens.pop(token_key, None)
            if token is not None:
                self._entries.pop(token, None)
                self._in_flight.pop(token, None)
                dropped += 1
        return dropped

    async def _lookup(
        self,
        token: str,
        token_key: str | None,
        introspect: Callable[[str], Awaitable[IntrospectionResult]],
    ) -> IntrospectionResult:
        this = asyncio.current_task()
        try:
            result = await introspect(token)
        except BaseException:
            if self._in_flight.get(token) is this:
                del self._in_flight[token]
                self._forget_key(token, token_key)
            raise
        # Kept only if nothing forgot it (a revocation) while we asked.
        if self._in_flight.get(token) is this:
            del self._in_flight[token]
            self._remember(token, token_key, result)
        return result

    def _remember(self, token: str, token_key: str | None, result: IntrospectionResult) -> None:
        now = self._clock()
        if result.active:
            expires = now + self._ttl
            if result.exp is not None:
                expires = min(expires, result.exp)
        else:
            expires = now + self._negative_ttl
        if expires <= now:
            self._forget_key(token, token_key)
            return
        if len(self._entries) >= self._max_size:
            self._evict(now)
        self._entries[token] = (expires, result, token_key)

    def _drop(self, token: str) -> None:
        entry = self._entries.pop(token, None)
        if entry is not None:
            self._forget_key(token, entry[2])

    def _forget_key(self, token: str, token_key: str | None) -> None:
        if token_key is not None and self._tokens.get(token_key) == token:
            del self._tokens[token_key]

    def _evict(self, now: float) -> None:
        for token, (expires, _, _) in list(self._entries.items()):
            if expires <= now:
                self._drop(token)
        # Still full: drop the oldest entries (insertion order), a tenth at a time.
        excess = len(self._entries) - self._max_size + max(1, self._max_size // 10)
        for token in list(self._entries)[: max(0, excess)]:
            self._drop(token)


def _retrieve(lookup: asyncio.Future[IntrospectionResult]) -> None:
    if not lookup.cancelled():
        lookup.exception()
