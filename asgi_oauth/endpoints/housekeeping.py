"""Keeping the store bounded: expired codes and tokens are purged now and then, in
the background of the requests that create them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..errors import StorageError
from ..storage.base import Storage

logger = logging.getLogger("asgi_oauth")


class Housekeeping:
    """Purges every ``interval`` seconds (never when 0), one purge at a time."""

    def __init__(self, storage: Storage, interval: int, clock: Callable[[], float]) -> None:
        self._storage = storage
        self._interval = interval
        self._clock = clock
        self._next_purge = int(clock()) + interval
        self._task: asyncio.Task[None] | None = None

    async def purge_expired(self) -> int:
        """Delete expired codes and tokens; returns how many went."""
        return await self._storage.purge_expired(now=int(self._clock()))

    def tick(self) -> None:
        """Start a purge in the background if one is due and none is running."""
        if not self._interval:
            return
        now = int(self._clock())
        if now < self._next_purge or (self._task is not None and not self._task.done()):
            return
        self._next_purge = now + self._interval
        self._task = asyncio.create_task(self._purge())

    async def close(self) -> None:
        """Wait for a purge under way."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _purge(self) -> None:
        try:
            purged = await self.purge_expired()
        except StorageError:
            logger.exception("purging expired codes and tokens failed")
        else:
            logger.info("purged expired codes and tokens count=%d", purged)
