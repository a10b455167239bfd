"""Bounds on guessing: failed attempts per key in a window.

``Throttle`` counts client-secret failures in the process (bounded in size).
Client secrets carry 256 random bits, so guessing one is hopeless; the bound is
there against load, and it only ever refuses a wrong secret: the right one
always passes, so nobody can lock a client out by failing on its behalf.
``SharedThrottle`` counts in the store, for what people can guess (passwords,
user codes): a guess is counted before it is checked, in one atomic step with
the decision, so neither N instances nor N concurrent requests get more than
the limit of guesses checked.
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

    def failed(self, key: str) -> int:
        """Count a failure of ``key``; the seconds it must wait once it has failed more
        than ``limit`` times in the window (0 until then)."""
        now = self._clock()
        count, started = self._failures.pop(key, (0, now))
        if now - started >= self._window:
            count, started = 0, now
        self._failures[key] = (count + 1, started)
        if len(self._failures) > _MAX_KEYS:
            self._prune(now)
        return int(started + self._window - now) + 1 if count >= self._limit else 0

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

    async def attempt(self, key: str, error: type[OAuth2Error], description: str) -> int:
        """Count a guess at ``key`` as failed before it is checked, and return when it
        was counted; refuse with ``error`` (429, ``Retry-After``) instead, counting
        nothing, once ``key`` has failed ``limit`` times in the window."""
        now = int(self._clock())
        # A failure counts for ``window`` seconds: one exactly that old has left.
        since = now - self._window + 1
        first = await self._storage.take_attempt(
            _stored(key), limit=self._limit, since=since, now=now
        )
        if first is not None:
            raise refusal(key, max(1, first + self._window - now), error, description)
        return now

    async def succeeded(self, key: str) -> None:
        """The guess was right: forget every failure of ``key``."""
        await self._storage.clear_failures(_stored(key))

    async def refund(self, key: str, at: int) -> None:
        """The guess counted at ``at`` was right, but the other failures stay."""
        await self._storage.forget_failure(_stored(key), at=at)


def _stored(key: str) -> str:
    """What the store keeps of a key: a digest, so no username or address is kept, and
    whatever bytes were typed (a NUL, for one) fit any database's text column."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def refusal(key: str, retry_after: int, error: type[OAuth2Error], description: str) -> OAuth2Error:
    """The 429 answer to a throttled ``key`` (logged as a security event)."""
    subject, _, address = key.partition("\x00")
    security_event(
        "throttled", level=logging.WARNING, subject=subject[:64], address=address or None
    )
    return error(description, status_code=429, headers={"Retry-After": str(retry_after)})
