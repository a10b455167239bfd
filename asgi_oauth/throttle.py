"""A bound on guessing: failed authentications per key in a fixed window.

Client secrets and passwords are both checked here before they are verified,
so a blocked key costs no hashing and learns nothing. The state is per process
and bounded in size.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .errors import OAuth2Error
from .events import security_event

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
            subject, _, address = key.partition("\x00")
            security_event(
                "throttled", level=logging.WARNING, subject=subject[:64], address=address or None
            )
            raise error(description, status_code=429, headers={"Retry-After": str(retry_after)})

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
