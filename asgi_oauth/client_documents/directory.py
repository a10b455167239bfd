"""Clients known by their metadata documents: fetched once, cached, never stored.

Every endpoint asks ``ClientDocuments.client(url)``; concurrent requests for one
URL share one fetch, a document is reused for as long as its cache headers allow
(within the fetcher's bounds, draft §5.2), and a failure is remembered briefly,
so a client_id named in a flood of requests costs its host one request a while.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..config import Settings
from ..models import Client
from ..observability.instruments import Instruments
from .document import client_from_document
from .fetch import DocumentFetcher, DocumentFetchError, FetchPolicy

#: Decides whether a document URL may be fetched at all (beyond the host settings).
DocumentPolicy = Callable[[str], bool | Awaitable[bool]]

#: Seconds a failed fetch is remembered: long enough to spare the host a flood.
FAILURE_TTL = 10
#: Documents kept at once; the least recently used goes first.
MAX_ENTRIES = 1000
#: Fetches in flight at once, whatever the number of URLs asked for.
MAX_CONCURRENT_FETCHES = 8


@dataclass(frozen=True, slots=True)
class _Entry:
    expires_at: float
    client: Client | None
    error: DocumentFetchError | None


class ClientDocuments:
    """Fetches, checks and caches the clients that client ID metadata documents describe."""

    def __init__(
        self,
        settings: Settings,
        *,
        fetcher: DocumentFetcher | None = None,
        policy: DocumentPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        instruments: Instruments | None = None,
    ) -> None:
        self._settings = settings
        self._instruments = instruments or Instruments()
        self._fetcher = fetcher or DocumentFetcher(FetchPolicy.from_settings(settings))
        self._policy = policy
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._pending: dict[str, asyncio.Future[_Entry]] = {}
        self._slots: asyncio.Semaphore | None = None

    async def client(self, url: str) -> Client:
        """The client the document at ``url`` describes, or ``DocumentFetchError``."""
        entry = self._entries.get(url)
        if entry is None or entry.expires_at <= self._clock():
            entry = await self._refresh(url)
        else:
            self._entries.move_to_end(url)
        if entry.client is None:
            error = entry.error or DocumentFetchError("the client's metadata document is unusable")
            raise error.with_traceback(None)
        return entry.client

    def forget(self, url: str) -> None:
        """Drop a cached document, so the next request fetches it again."""
        self._entries.pop(url, None)

    async def aclose(self) -> None:
        await self._fetcher.aclose()

    async def _refresh(self, url: str) -> _Entry:
        task = self._pending.get(url)
        if task is None:
            # One fetch per URL at a time, the others wait for its outcome; it runs as
            # its own task, so a request that goes away does not cancel it for them.
            task = asyncio.ensure_future(self._load(url))
            self._pending[url] = task
            task.add_done_callback(lambda _: self._pending.pop(url, None))
        return await asyncio.shield(task)

    async def _load(self, url: str) -> _Entry:
        try:
            if not await self._allowed(url):
                raise DocumentFetchError("this server does not accept this client's documents")
            if self._slots is None:
                self._slots = asyncio.Semaphore(MAX_CONCURRENT_FETCHES)
            async with self._slots:
                with self._instruments.span("fetch client metadata document", _where(url)):
                    fetched = await self._fetcher.fetch(url)
            client = client_from_document(url, fetched.metadata, self._settings)
        except DocumentFetchError as exc:
            return self._keep(url, _Entry(self._clock() + FAILURE_TTL, None, exc))
        return self._keep(url, _Entry(self._clock() + fetched.max_age, client, None))

    def _keep(self, url: str, entry: _Entry) -> _Entry:
        self._entries[url] = entry
        self._entries.move_to_end(url)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)
        return entry

    async def _allowed(self, url: str) -> bool:
        if self._policy is None:
            return True
        verdict = self._policy(url)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return bool(verdict)


def _where(url: str) -> dict[str, str]:
    """A fetch's span attributes: the host, never a query (it could carry anything)."""
    return {"server.address": urlsplit(url).hostname or ""}
