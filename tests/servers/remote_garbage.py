"""A misbehaving stand-in for an authorization server's introspection endpoint.

``tests/test_remote_introspection.py`` runs it under uvicorn and points a
``RemoteIntrospector`` at one of its paths; each path misbehaves in one way:

* ``/not-json``: 200, ``Content-Type: application/json``, a body that is not JSON;
* ``/active-yes``: 200, ``{"active": "yes"}`` (``active`` must be a boolean);
* ``/slow?seconds=S``: waits ``S`` seconds, then answers an active token;
* ``/trickle?seconds=S``: sends the headers at once, then an active token's JSON
  one byte-chunk at a time over ``S`` seconds (every read is quick, the whole
  answer is not).

Every other path answers 404. It is a raw ASGI app, so nothing but uvicorn runs.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

from starlette.types import Receive, Scope, Send

ACTIVE = json.dumps(
    {"active": True, "scope": "read", "client_id": "stand-in", "token_type": "Bearer"}
).encode()
_JSON = [(b"content-type", b"application/json")]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    await _drain(receive)
    path: str = scope["path"]
    query = parse_qs(scope["query_string"].decode("latin-1"))
    seconds = float(query.get("seconds", ["1"])[0])
    if path == "/not-json":
        await _answer(send, 200, b"<html>this is not JSON</html>")
    elif path == "/active-yes":
        await _answer(send, 200, b'{"active": "yes", "scope": "read"}')
    elif path == "/slow":
        await asyncio.sleep(seconds)
        await _answer(send, 200, ACTIVE)
    elif path == "/trickle":
        await send({"type": "http.response.start", "status": 200, "headers": _JSON})
        pause = seconds / len(ACTIVE)
        for byte in ACTIVE:
            await send({"type": "http.response.body", "body": bytes([byte]), "more_body": True})
            await asyncio.sleep(pause)
        await send({"type": "http.response.body", "body": b""})
    else:
        await _answer(send, 404, b'{"error": "not_found"}')


async def _drain(receive: Receive) -> None:
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _JSON})
    await send({"type": "http.response.body", "body": body})
