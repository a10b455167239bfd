"""A bound on guessing: failed attempts per key in a window, checked before verifying,
so a blocked key costs no hashing and learns nothing.

``Throttle`` counts in the process (bounded in size): client secrets carry 256
random bits, so it is there against load, and it costs nothing per request.
``SharedThrottle`` counts in the store, for what people can guess (passwords,
user codes): every instance on one database sees every failure, so N
instances do not give N times the guesses.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from .errors import OAuth2Error
from .events import security_event
from .storage.base import Storage

_MAX_KEYS = 100_000


class Throttle:
    def __init__(
        self, limit: int, window: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._failures: dict[str, tuple[int, float]] = {}

    def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may try again; 0 when it may try now."""
        entry = self._failures.get(key)
        if entry is None:
            return 0
        count, started = entry
        remaining = started + self._window - self._clock()
        if remaining <= 0:
            del self._failures[key]
            return 0
        return int(remaining) + 1 if count >= self._limit else 0

    def check(self, key: str, error: type[OAuth2Error], description: str) -> None:
        """Refuse with ``error`` (429, ``Retry-After``) while ``key`` is blocked."""
        retry_after = self.retry_after(key)
        if retry_after:
            raise _refusal(key, retry_after, error, description)

    def failed(self, key: str) -> None:
        now = self._clock()
        count, started = self._failures.pop(key, (0, now))
        if now - started >= self._window:
            count, started = 0, now
        self._failures[key] = (count + 1, started)
        if len(self._failures) > _MAX_KEYS:
            self._prune(now)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def _prune(self, now: float) -> None:
        for key, (_, started) in list(self._failures.items()):
            if now - started >= self._window:
                del self._failures[key]
        # Still too many live keys: forget the oldest (insertion order) first.
        for key in list(self._failures)[: len(self._failures) - _MAX_KEYS]:
            del self._failures[key]


class SharedThrottle:
    """Failed attempts per key in a sliding window, counted in the store."""

    def __init__(
        self, storage: Storage, limit: int, window: int, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._storage = storage
        self._limit = limit
        self._window = window
        self._clock = clock

    async def check(self, key: str, error: type[OAuth2Error], description: str) -> None:
        """Refuse with ``error`` (429, ``Retry-After``) while ``key`` is blocked."""
        now = int(self._clock())
        # A failure counts for ``window`` seconds: one exactly that old has left.
        since = now - self._window + 1
        count, first = await self._storage.recent_failures(_stored(key), since=since)
        if count >= self._limit and first is not None:
            raise _refusal(key, max(1, first + self._window - now), error, description)

    async def failed(self, key: str) -> None:
        await self._storage.record_failure(_stored(key), now=int(self._clock()))

    async def succeeded(self, key: str) -> None:
        await self._storage.clear_failures(_stored(key))


def _stored(key: str) -> str:
    """What the store keeps of a key: a digest, so no username or address is kept, and
    whatever bytes were typed (a NUL, for one) fit any database's text column."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _refusal(key: str, retry_after: int, error: type[OAuth2Error], description: str) -> OAuth2Error:
    subject, _, address = key.partition("\x00")
    security_event(
        "throttled", level=logging.WARNING, subject=subject[:64], address=address or None
    )
    return error(description, status_code=429, headers={"Retry-After": str(retry_after)})
