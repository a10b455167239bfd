"""Following the authorization server's revocation event stream from another process.

``RevocationStream`` subscribes to ``GET <issuer>/revocations`` (Server-Sent
Events, see ``asgi_oauth.app.revocations``) as a client registered as a resource
server, in a background task started on first use. Each connection's first event
names every revoked, unexpired access token by its store key; the subscribers
(``RemoteIntrospector``'s cache) are told to ``resync`` with it, and of each
later event's keys by ``revoked``. ``JWTIntrospector`` asks ``key in stream``.

A lost connection is retried with backoff (capped, jittered). While it is down
``live`` is False and a warning is logged once: the caches then forget by their
lifetimes as they would without the stream, and a JWT access token is accepted
until it expires unless it was already known to be revoked. ``live`` is True
again once the first event of a new connection arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator
from collections.abc import Set as AbstractSet
from typing import Protocol

import httpx

logger = logging.getLogger("asgi_oauth")


class RevocationSubscriber(Protocol):
    def resync(self, token_keys: frozenset[str]) -> None:
        """All revoked, unexpired access tokens: a (re)connection's first event."""

    def revoked(self, token_keys: frozenset[str]) -> None:
        """Access tokens revoked since the last event."""


class RevocationStream:
    """A subscription to an authorization server's revocation events.

    ``url`` is the stream (``<issuer>/revocations``); ``client_id`` and
    ``client_secret`` are a resource-server client's. A connection silent for
    ``idle_timeout`` seconds (the server sends a comment every 15 s) is taken
    for dead and replaced. Close it with ``aclose`` at shutdown.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        client_secret: str,
        connect_timeout: float = 5.0,
        idle_timeout: float = 45.0,
        min_backoff: float = 0.05,
        max_backoff: float = 10.0,
    ) -> None:
        self.url = url
        self._auth = httpx.BasicAuth(client_id, client_secret)
        self._timeout = httpx.Timeout(connect_timeout, read=idle_timeout)
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._subscribers: list[RevocationSubscriber] = []
        self._revoked: set[str] = set()
        self._live = False
        self._warned = False
        self._task: asyncio.Task[None] | None = None

    @property
    def live(self) -> bool:
        """Whether the stream is connected and up to date: every revocation arrives now."""
        return self._live

    def __contains__(self, token_key: object) -> bool:
        """Whether the access token with this store key is known to be revoked."""
        return token_key in self._revoked

    @property
    def revoked_keys(self) -> AbstractSet[str]:
        """The store keys of the access tokens known to be revoked: one set, updated in
        place, so a hot path may hold it and test membership without a method call."""
        return self._revoked

    def subscribe(self, subscriber: RevocationSubscriber) -> None:
        self._subscribers.append(subscriber)

    def start(self) -> None:
        """Connect in the background, if not yet: call from the running event loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        task, self._task = self._task, None
        self._live = False
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        backoff = self._min_backoff
        async with httpx.AsyncClient(auth=self._auth, timeout=self._timeout) as client:
            while True:
                delivered = False
                try:
                    async for first, token_keys in self._events(client):
                        self._deliver(first, token_keys)
                        delivered, backoff = True, self._min_backoff
                    if delivered:
                        # The server ends each stream after a while: reconnect and
                        # resynchronise at once, which is no outage.
                        self._live = False
                        continue
                    problem = "the server ended the stream"
                except Exception as exc:  # httpx.HTTPError, a malformed event: reconnect
                    problem = f"{type(exc).__name__}: {exc}"
                self._down(problem)
                # Jittered, so resource servers do not all reconnect at the same instant.
                await asyncio.sleep(backoff * (0.5 + random.random() / 2))  # noqa: S311
                backoff = min(backoff * 2, self._max_backoff)

    async def _events(
        self, client: httpx.AsyncClient
    ) -> AsyncIterator[tuple[bool, frozenset[str]]]:
        """Each ``revoked`` event's keys, and whether it is the connection's first."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        async with client.stream("GET", self.url, headers=headers) as response:
            if response.status_code != 200:
                if response.status_code in (401, 403):
                    logger.error("revocation stream %s refused our credentials", self.url)
                raise ValueError(f"HTTP {response.status_code}")
            first = True
            event, data = "", []
            async for line in response.aiter_lines():
                if line:
                    field, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)
                    continue  # a comment (the heartbeat), retry, id: nothing to do
                if event == "revoked" and data:
                    yield first, _token_keys("\n".join(data))
                    first = False
                event, data = "", []

    def _deliver(self, first: bool, token_keys: frozenset[str]) -> None:
        if first:
            self._revoked.clear()
            self._revoked.update(token_keys)
            if self._warned:
                logger.warning("revocation stream %s is back: revocations apply at once", self.url)
            self._live, self._warned = True, False
            for subscriber in self._subscribers:
                subscriber.resync(token_keys)
        else:
            self._revoked |= token_keys
            for subscriber in self._subscribers:
                subscriber.revoked(token_keys)

    def _down(self, problem: str) -> None:
        self._live = False
        if not self._warned:
            self._warned = True
            logger.warning(
                "revocation stream %s is down (%s): until it is back, cached answers last"
                " their lifetime and JWT access tokens are accepted until they expire",
                self.url,
                problem,
            )


def _token_keys(data: str) -> frozenset[str]:
    keys = json.loads(data)
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise ValueError("a revoked event's data is not a list of strings")
    return frozenset(keys)
