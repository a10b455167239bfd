"""The revocation event stream: resource servers in other processes learn of each
revocation at once.

``GET <issuer>/revocations`` is a Server-Sent Events stream (HTML Living Standard
§9.2) for clients registered as resource servers, authenticated by HTTP Basic as
at the token endpoint (RFC 6749 §2.3.1). Each event is ``revoked``, its data a
JSON array of the store keys of revoked, unexpired access tokens (``hash_token``
of an opaque token, ``jti_key`` of a JWT): the first event of a connection names
them all, later ones only those revoked since. SSE rather than RFC 8935 pushed
Security Event Tokens: the resource server connects out, so it needs no endpoint of
its own that the authorization server must reach and authenticate to; a resource
server behind a firewall or NAT works; and a reconnection resynchronises by the
full first event, with nothing queued for a subscriber that is away.

One task polls the store's revocation signal (a cheap, synchronous ``version()``)
for all the streams, and this server's own revocations wake them at once, so a
revocation made by any process sharing the store is sent within ``poll_interval``;
each stream then lists the revoked tokens and sends those it has not sent. A comment line
every ``heartbeat`` seconds shows the subscriber the stream is alive. The streams
are bounded: at most ``max_streams`` at once (503 beyond), each ends when the
client goes away and after ``max_age`` seconds (the client reconnects and
resynchronises from the full first event, so nothing is lost), so a server
shutting down gracefully, which waits for open responses (uvicorn does), waits
that long at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from starlette.types import Message, Receive, Scope, Send

from ..client_auth import BASIC_CHALLENGE, authenticate_client
from ..errors import (
    InvalidClientError,
    InvalidRequestError,
    StorageError,
    TemporarilyUnavailableError,
)
from ..requests import OAuthRequest
from ..revocation_signal import signal_of
from ..server import AuthorizationServer
from .requests import RequestHeaders
from .responses import send_error

logger = logging.getLogger("asgi_oauth")

_STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    # Reverse proxies (nginx) must pass each event on at once.
    (b"x-accel-buffering", b"no"),
]


class RevocationEvents:
    """``GET /revocations``: the revocation event stream (see the module docstring)."""

    def __init__(
        self,
        server: AuthorizationServer,
        *,
        max_streams: int = 100,
        poll_interval: float = 0.025,
        heartbeat: float = 15.0,
        retry: float = 1.0,
        max_age: float = 30.0,
    ) -> None:
        self.server = server
        self._max_streams = max_streams
        self._poll_interval = poll_interval
        self._heartbeat = heartbeat
        self._retry_ms = int(retry * 1000)
        self._max_age = max_age
        self._streams = 0
        #: Each stream's wake-up: set when the signal moved or this server revoked.
        self._wakers: set[asyncio.Event] = set()
        #: One task polls the signal for every stream, while there are any.
        self._poller: asyncio.Task[None] | None = None
        server.add_revocation_listener(self._wake)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if scope["method"] != "GET":
                raise InvalidRequestError(
                    "method not allowed", status_code=405, headers={"Allow": "GET"}
                )
            await self._authenticate(scope)
            if self._streams >= self._max_streams:
                raise TemporarilyUnavailableError(
                    "too many revocation streams; retry later", headers={"Retry-After": "5"}
                )
            self._streams += 1
        except Exception as exc:
            await send_error(send, exc, error_uri=self.server.settings.error_uri)
            return
        try:
            await self._stream(receive, send)
        finally:
            self._streams -= 1

    async def _authenticate(self, scope: Scope) -> None:
        headers = RequestHeaders.from_scope(scope)
        if headers.authorization is None:
            raise InvalidClientError("client authentication required", headers=BASIC_CHALLENGE)
        client = scope.get("client")
        request = OAuthRequest(
            authorization=headers.authorization,
            client_address=client[0] if client else None,
        )
        server = self.server
        try:
            caller = await authenticate_client(
                request, server.clients, server.throttle, allow_public=False
            )
        except InvalidClientError as exc:
            exc.headers = {**BASIC_CHALLENGE, **exc.headers}
            raise
        if not caller.is_resource_server:
            raise InvalidClientError(
                "only a resource server may subscribe to revocations", headers=BASIC_CHALLENGE
            )

    async def _stream(self, receive: Receive, send: Send) -> None:
        gone, woken = asyncio.Event(), asyncio.Event()
        watcher = asyncio.ensure_future(_watch_disconnect(receive, gone, woken))
        # Before the first listing: a revocation committed after it wakes this stream.
        self._wakers.add(woken)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.ensure_future(self._poll())
        try:
            await self._send_events(send, gone, woken)
        except OSError:  # the client went away while we wrote (uvicorn's ClientDisconnected)
            pass
        except StorageError as exc:
            # The subscriber reconnects and resynchronises once the store is back.
            logger.error("revocation stream ended: the store failed: %s", exc)
        finally:
            self._wakers.discard(woken)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if not self._wakers and self._poller is not None:
                self._poller.cancel()
                self._poller = None

    async def _poll(self) -> None:
        """Wake every stream when the store's signal moved (another process revoked);
        while the signal is not live, every second, so a missed change still goes out."""
        signal = signal_of(self.server.storage)
        version, forced = signal.version(), time.monotonic()
        while True:
            await asyncio.sleep(self._poll_interval)
            current = signal.version()
            if current != version or (not signal.live and time.monotonic() - forced >= 1.0):
                version, forced = current, time.monotonic()
                self._wake()

    async def _send_events(self, send: Send, gone: asyncio.Event, woken: asyncio.Event) -> None:
        try:
            sent = await self._revoked()
        except StorageError as exc:
            await send_error(send, exc, error_uri=self.server.settings.error_uri)
            return
        await send({"type": "http.response.start", "status": 200, "headers": _STREAM_HEADERS})
        await _send(send, f"retry: {self._retry_ms}\n" + _event(sent))
        started = last_sent = time.monotonic()
        while True:
            now = time.monotonic()
            wait = min(last_sent + self._heartbeat, started + self._max_age) - now
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(woken.wait(), max(wait, 0.0))
            now = time.monotonic()
            if gone.is_set() or now - started >= self._max_age:
                break
            if woken.is_set():
                woken.clear()
                revoked = await self._revoked()
                new = revoked - sent
                sent = revoked  # the expired ones leave it: the set stays bounded
                if new:
                    await _send(send, _event(new))
                    last_sent = now
            if now - last_sent >= self._heartbeat:
                await _send(send, ": keep-alive\n\n")
                last_sent = now
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _revoked(self) -> frozenset[str]:
        server = self.server
        return frozenset(await server.storage.list_revoked_access_tokens(now=server.now()))

    def _wake(self) -> None:
        for woken in self._wakers:
            woken.set()


def _event(token_keys: frozenset[str]) -> str:
    return f"event: revoked\ndata: {json.dumps(sorted(token_keys))}\n\n"


async def _send(send: Send, text: str) -> None:
    await send({"type": "http.response.body", "body": text.encode(), "more_body": True})


async def _watch_disconnect(receive: Receive, gone: asyncio.Event, woken: asyncio.Event) -> None:
    """ASGI: ``http.disconnect`` is the only message after the (empty) request body."""
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            woken.set()
            return
