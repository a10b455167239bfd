"""The maintenance switch: whether the server's endpoints answer now.

Switched off, the endpoints answer ``temporarily_unavailable`` (RFC 6749 §4.1.2.1,
§5.2) with ``Retry-After`` (``Settings.maintenance_retry_after``), so a deployment
can be drained without a proxy rule; ``OAuth2App`` decides which endpoints close.
Three switches, and the server is available only while all three say so:

- ``Settings.available`` (``ASGI_OAUTH_AVAILABLE``), for the life of the process;
- this process's own (``server.available = False``), at once, for this process only;
- the store's (``await server.set_available(False)``, ``asgi-oauth maintenance on``),
  for every process and instance sharing the store.

The store's switch is read again at most every ``REFRESH_INTERVAL`` seconds, when a
request comes: the per-request cost is a clock read and a flag, and an instance
follows another's switch within that interval.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .config import Settings
from .errors import StorageError, TemporarilyUnavailableError
from .storage.base import Storage

logger = logging.getLogger("asgi_oauth")

#: Seconds between two reads of the store's switch.
REFRESH_INTERVAL = 1.0


class Availability:
    """The three switches of one server, and the flag they make (``available``)."""

    __slots__ = (
        "_clock",
        "_configured",
        "_interval",
        "_local",
        "_next_read",
        "_retry_after",
        "_storage",
        "_wall_clock",
        "available",
        "unavailable_since",
    )

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        *,
        refresh_interval: float = REFRESH_INTERVAL,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._storage = storage
        self._configured = settings.available
        self._retry_after = settings.maintenance_retry_after
        self._interval = refresh_interval
        self._wall_clock = clock
        self._clock = monotonic
        self._local = True
        self._next_read = 0.0
        #: When the store's switch went off (seconds since the epoch); None while it is on.
        self.unavailable_since: int | None = None
        #: Whether the endpoints answer: every switch on, as last known. Read per request.
        self.available = self._configured

    @property
    def local(self) -> bool:
        """This process's own switch (``server.available = ...``)."""
        return self._local

    @local.setter
    def local(self, value: bool) -> None:
        self._local = value
        self._update()

    def refresh_due(self) -> bool:
        """Whether the store's switch should be read again before this request."""
        return self._clock() >= self._next_read

    async def refresh(self) -> None:
        """Read the store's switch. One request reads it while the others go on with the
        last value; a failing store keeps that value (its own errors answer for it)."""
        self._next_read = self._clock() + self._interval
        try:
            since = await self._storage.maintenance_since()
        except StorageError as exc:
            logger.warning("maintenance switch not read (%s): keeping the last known state", exc)
            return
        self.unavailable_since = since
        self._update()

    async def set_shared(self, available: bool) -> None:
        """Switch every process and instance on the store; this one follows at once."""
        since = None if available else int(self._wall_clock())
        await self._storage.set_maintenance(since)
        logger.warning("maintenance switch: %s", "available" if available else "unavailable")
        await self.refresh()

    def error(self) -> TemporarilyUnavailableError:
        """What a closed endpoint answers."""
        return TemporarilyUnavailableError.for_maintenance(self._retry_after)

    def _update(self) -> None:
        self.available = self._configured and self._local and self.unavailable_since is None
