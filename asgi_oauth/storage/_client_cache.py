"""Recently read clients, kept briefly so a busy server reads each client row once a second.

Every authenticated request looks its client up; on a database store that is
a query per request for a row that almost never changes. A store forgets an
entry the moment it writes that client itself; a change made by another
process is seen once the entry's ``ttl`` has passed. Unknown ids are never
cached, so probing with random ids cannot fill it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..models import Client


class ClientCache:
    def __init__(
        self,
        ttl: float,
        *,
        max_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._max_size = max_size
        self._clock = clock
        self._entries: dict[str, tuple[float, Client]] = {}

    def get(self, client_id: str) -> Client | None:
        entry = self._entries.get(client_id)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[client_id]
            return None
        return entry[1]

    def put(self, client: Client) -> None:
        if self._ttl <= 0:
            return
        if len(self._entries) >= self._max_size:
            # Oldest first: dicts keep insertion order.
            del self._entries[next(iter(self._entries))]
        self._entries[client.client_id] = (self._clock() + self._ttl, client)

    def forget(self, client_id: str) -> None:
        self._entries.pop(client_id, None)
