"""A bounded cache of introspection results.

A positive answer is kept for ``ttl`` seconds but never past the token's
``exp``; a negative one for ``negative_ttl`` seconds, so a flood of junk tokens
costs one lookup each per that time. Concurrent lookups of one token share a
single introspection, which goes on if one of them is cancelled. ``clear``
forgets everything, lookups under way included: it is how a revocation made in
this process takes effect at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from ..models import IntrospectionResult


class IntrospectionCache:
    def __init__(
        self,
        *,
        ttl: float = 10.0,
        negative_ttl: float = 2.0,
        max_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl < 0 or negative_ttl < 0 or max_size < 1:
            raise ValueError("ttl and negative_ttl must be >= 0, max_size >= 1")
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._max_size = max_size
        self._clock = clock
        self._entries: dict[str, tuple[float, IntrospectionResult]] = {}
        self._in_flight: dict[str, asyncio.Future[IntrospectionResult]] = {}
        self._generation = 0

    def peek(self, token: str) -> IntrospectionResult | None:
        """The cached answer, if there is a live one (the hot path: no coroutine)."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        if entry[0] > self._clock():
            return entry[1]
        del self._entries[token]
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
            lookup = asyncio.ensure_future(self._lookup(token, introspect, self._generation))
            lookup.add_done_callback(_retrieve)  # its error reached whoever still waited
            self._in_flight[token] = lookup
        # Shielded: a caller that is cancelled (its client went away) leaves the
        # lookup running for the others waiting on it.
        return await asyncio.shield(lookup)

    def clear(self) -> None:
        """Forget every answer; lookups already under way are neither joined nor kept."""
        self._entries.clear()
        self._in_flight.clear()
        self._generation += 1

    async def _lookup(
        self,
        token: str,
        introspect: Callable[[str], Awaitable[IntrospectionResult]],
        generation: int,
    ) -> IntrospectionResult:
        try:
            result = await introspect(token)
        finally:
            if generation == self._generation:
                del self._in_flight[token]
        if generation == self._generation:  # no revocation while we asked
            self._remember(token, result)
        return result

    def _remember(self, token: str, result: IntrospectionResult) -> None:
        now = self._clock()
        if result.active:
            expires = now + self._ttl
            if result.exp is not None:
                expires = min(expires, result.exp)
        else:
            expires = now + self._negative_ttl
        if expires <= now:
            return
        if len(self._entries) >= self._max_size:
            self._evict(now)
        self._entries[token] = (expires, result)

    def _evict(self, now: float) -> None:
        for token, (expires, _) in list(self._entries.items()):
            if expires <= now:
                del self._entries[token]
        # Still full: drop the oldest entries (insertion order), a tenth at a time.
        excess = len(self._entries) - self._max_size + max(1, self._max_size // 10)
        for token in list(self._entries)[: max(0, excess)]:
            del self._entries[token]


def _retrieve(lookup: asyncio.Future[IntrospectionResult]) -> None:
    if not lookup.cancelled():
        lookup.exception()
