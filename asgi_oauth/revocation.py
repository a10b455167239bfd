"""The revocation list: which JWT access tokens were revoked before they expired.

A JWT access token is checked without asking the store, so a revocation must
reach resource servers another way: each keeps this list of revoked token
hashes and rereads it from the store when the store's revocation signal moved
(a revocation by any process sharing it, see ``revocation_signal``), and at the
latest every ``ttl`` seconds. A list that could not be reread is stale, and a
stale list refuses to answer (fail closed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from .revocation_signal import signal_of
from .storage.base import Storage

_MAX_REREADS = 5


class RevocationList:
    """Hashes of revoked, unexpired access tokens, cached for ``ttl`` seconds."""

    def __init__(
        self, storage: Storage, *, ttl: float = 5.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._storage = storage
        self._ttl = ttl
        self._clock = clock
        self._revoked: frozenset[str] = frozenset()
        self._fresh_until = 0.0
        #: Counts ``expire()`` calls: a reread that began before one is not fresh.
        self._generation = 0
        self._lock = asyncio.Lock()
        self._signal = signal_of(storage)
        #: The signal's version when the list was last read.
        self._signal_seen: object = None

    @property
    def is_fresh(self) -> bool:
        return time.monotonic() < self._fresh_until and self._signal.version() == self._signal_seen

    def __contains__(self, token_hash: object) -> bool:
        return token_hash in self._revoked

    async def refresh(self) -> None:
        """Reread the list if it is stale; ``StorageError`` if the store fails."""
        if self.is_fresh:
            return
        async with self._lock:
            if self.is_fresh:  # another request reread it while this one waited
                return
            # A revocation by this process while the list was read may be missing
            # from it: read again (a few times at most, under a storm of them).
            for _ in range(_MAX_REREADS):
                started, generation = time.monotonic(), self._generation
                # Read before the list: a revocation after this moves it again.
                seen = self._signal.version()
                hashes = await self._storage.list_revoked_access_tokens(now=int(self._clock()))
                self._revoked = frozenset(hashes)
                if generation == self._generation:
                    self._fresh_until, self._signal_seen = started + self._ttl, seen
                    return

    def expire(self) -> None:
        """Make the next check reread the list: this process just revoked something."""
        self._fresh_until = 0.0
        self._generation += 1
