"""The PostgreSQL store's revocation signal: ``LISTEN``/``NOTIFY`` between instances.

A revocation sends ``NOTIFY`` on the store's channel inside the transaction that
makes it, so PostgreSQL delivers the notification when, and only if, the change
commits, to every session listening on the channel: each instance's listener,
this one's too (PostgreSQL documentation, ``NOTIFY``). A rolled-back revocation
notifies no one and a committed one cannot be left unannounced by a crash between
two statements; the price is one statement more in a transaction that is rare
(issuance sends nothing). Each instance listens on a dedicated connection outside
the pool; a notification increments the counter that ``version()`` returns, so
the per-request check is an attribute read.

A lost listener connection is reopened with a bounded backoff. While it is
down ``live`` is False (notifications may be missed; callers rely on their cache
lifetimes) and a warning is logged once; back up, ``version()`` moves once, so
whatever was revoked meanwhile is forgotten by the caches. The listener needs a
session of its own: through a pooler, one in session mode (``LISTEN`` does not
survive transaction pooling).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

logger = logging.getLogger("asgi_oauth")

#: First and longest wait before reopening a lost listener connection.
BACKOFF_START = 0.1
BACKOFF_MAX = 5.0
#: How often an idle listener connection is checked: a connection that died
#: silently (no reset reached us) would otherwise pass for live.
PING_INTERVAL = 10.0
#: The statement a revocation adds to its transaction.
NOTIFY = "SELECT pg_notify($1, '')"

_PREFIX = "asgi_oauth_revoked"
#: PostgreSQL identifiers, channel names included, hold at most 63 bytes.
_MAX_CHANNEL = 63


def channel_for(schema: str | None) -> str:
    """The channel of the stores on ``schema``: one per schema, so stores on different
    schemas do not hear each other (two long names sharing a prefix may share a
    channel: that costs a spurious cache flush, never a missed revocation)."""
    return f"{_PREFIX}_{schema}"[:_MAX_CHANNEL] if schema else _PREFIX


async def notify(conn: Any, channel: str) -> None:
    """Announce a revocation from inside its transaction: delivered at commit."""
    await conn.execute(NOTIFY, channel)


class PostgresSignal:
    """The ``RevocationSignal`` of a ``PostgresStorage``: a counter moved by notifications.

    ``start`` (the store calls it with its pool) opens the listener; ``send``
    announces a revocation made outside a transaction of the store.
    """

    def __init__(
        self,
        dsn: str,
        channel: str,
        *,
        send: Callable[[], Awaitable[object]],
        connect_timeout: float,
    ) -> None:
        self.channel = channel
        self._dsn = dsn
        self._send = send
        self._connect_timeout = connect_timeout
        self._version = 0
        self._listening = False
        self._started = False
        self._closed = False
        self._warned = False
        self._task: asyncio.Task[None] | None = None
        self._sends: set[asyncio.Task[None]] = set()

    @property
    def live(self) -> bool:
        """Listening, or not started yet: the store was not read, so nothing can be
        cached from it (the first use of the pool starts the listener first)."""
        return self._listening or not (self._started or self._closed)

    def version(self) -> int:
        return self._version

    def moved(self) -> None:
        """This process committed a revocation that notified the others: its own
        caches forget at once, without waiting for the notification to come back."""
        self._version += 1

    def revoked(self) -> None:
        """Announce a revocation committed outside the store's transactions: this
        process at once, the others by a ``pg_notify`` sent in the background."""
        self._version += 1
        task = asyncio.get_running_loop().create_task(self._announce())
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def start(self) -> None:
        """Open the listener; wait for it at most the connect timeout, so a database
        out of reach does not hang start-up (the listener keeps trying, not live)."""
        if self._started or self._closed:
            return
        self._started = True
        listening = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._listen(listening))
        try:
            await asyncio.wait_for(listening.wait(), self._connect_timeout)
        except asyncio.TimeoutError:
            self._down("not listening yet")

    async def close(self) -> None:
        self._closed = True
        self._listening = False
        if self._sends:
            await asyncio.wait(set(self._sends), timeout=self._connect_timeout)
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # -- the listener ------------------------------------------------------------------

    async def _listen(self, listening: asyncio.Event) -> None:
        try:
            await self._keep_listening(listening)
        finally:  # closed, or its event loop ended
            self._listening = False

    async def _keep_listening(self, listening: asyncio.Event) -> None:
        delay = BACKOFF_START
        while True:
            try:
                conn = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
            except Exception as exc:  # any failure to connect: try again later
                self._down(f"{type(exc).__name__}: {exc}")
            else:
                try:
                    await self._serve(conn, listening)
                    reason = "the connection was lost"
                except Exception as exc:  # any failure of the connection: reconnect
                    reason = f"{type(exc).__name__}: {exc}"
                finally:
                    conn.terminate()
                if self._listening:  # it had worked: the first retry comes soon
                    delay = BACKOFF_START
                self._down(reason)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    async def _serve(self, conn: Any, listening: asyncio.Event) -> None:
        """Listen on ``conn`` until it is lost."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(self.channel, self._notified)
        self._up()
        listening.set()
        await self._watch(conn, lost)

    async def _watch(self, conn: Any, lost: asyncio.Event) -> None:
        """Return when the connection is lost, or fails a periodic check."""
        while not lost.is_set():
            try:
                await asyncio.wait_for(lost.wait(), PING_INTERVAL)
            except asyncio.TimeoutError:
                await asyncio.wait_for(conn.execute("SELECT 1"), self._connect_timeout)

    def _notified(self, _conn: object, _pid: int, _channel: str, _payload: str) -> None:
        self._version += 1

    def _up(self) -> None:
        # Anything revoked before LISTEN took effect went unheard: forget it all once.
        self._version += 1
        self._listening = True
        if self._warned:
            self._warned = False
            logger.info("revocation notifications: listening again on %r", self.channel)

    def _down(self, reason: str) -> None:
        self._listening = False
        if not self._warned:
            self._warned = True
            logger.warning(
                "revocation notifications lost (%s): caches fall back to their lifetimes"
                " until the listener reconnects",
                reason,
            )

    async def _announce(self) -> None:
        try:
            await self._send()
        except Exception as exc:  # logged: the other instances learn by their TTLs
            logger.warning("revocation notification not sent (%s: %s)", type(exc).__name__, exc)
