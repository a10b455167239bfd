"""Request budgets per client and per address, counted in the store.

``Settings.rate_limit_per_client`` and ``rate_limit_per_address`` bound the requests
one authenticated client, or one address, makes to an endpoint in a fixed window of
``rate_limit_window`` seconds. The count lives in the store (``count_request``, one
atomic step), so the budget holds across every instance sharing it. Over budget, the
answer is 429 (RFC 6585 §4) with ``Retry-After`` (RFC 9110 §10.2.3): the seconds
until the window ends. A limit left at None costs nothing: no store call at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .config import Settings
from .errors import N_, TemporarilyUnavailableError, storage_guard
from .events import security_event
from .requests import OAuthRequest
from .storage.base import Storage
from .throttle import _stored


class RateLimits:
    """Counts each request against its address's and its client's budget."""

    @classmethod
    def of(
        cls, storage: Storage, settings: Settings, clock: Callable[[], float] = time.time
    ) -> RateLimits | None:
        """The limits ``settings`` set; None when they set none, so the endpoints skip
        the call altogether (token issuance and introspection are hot paths)."""
        if settings.rate_limit_per_client is None and settings.rate_limit_per_address is None:
            return None
        return cls(storage, settings, clock)

    def __init__(
        self, storage: Storage, settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        self._storage = storage
        self._per_client = settings.rate_limit_per_client
        self._per_address = settings.rate_limit_per_address
        self._window = settings.rate_limit_window
        self._clock = clock

    async def by_address(self, endpoint: str, request: OAuthRequest) -> None:
        """Count a request to ``endpoint`` from its address, before anything else is done;
        every request without a known address shares one budget."""
        if self._per_address is None:
            return
        address = request.client_address
        key = f"address\x00{endpoint}\x00{address or ''}"
        await self._count(key, self._per_address, endpoint, None, address)

    async def by_client(self, endpoint: str, client_id: str, request: OAuthRequest) -> None:
        """Count a request to ``endpoint`` by ``client_id``, once it is authenticated: a
        request that only names a client never spends its budget."""
        if self._per_client is None:
            return
        key = f"client\x00{endpoint}\x00{client_id}"
        await self._count(key, self._per_client, endpoint, client_id, request.client_address)

    async def _count(
        self, key: str, limit: int, endpoint: str, client_id: str | None, address: str | None
    ) -> None:
        now = int(self._clock())
        window_start = now - now % self._window
        window_end = window_start + self._window
        with storage_guard:
            allowed = await self._storage.count_request(
                _stored(key), window_start=window_start, expires_at=window_end, limit=limit
            )
        if allowed:
            return
        security_event(
            "rate_limited",
            level=logging.WARNING,
            endpoint=endpoint,
            client_id=client_id,
            address=address,
        )
        raise TemporarilyUnavailableError(
            N_("rate limit reached; retry later"),
            status_code=429,
            headers={"Retry-After": str(window_end - now)},
        )
