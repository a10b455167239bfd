"""``tests.servers.app:app`` with every answer naming the worker process that gave it
(``x-worker-pid``), so a test can tell the workers of one uvicorn apart."""

from __future__ import annotations

import os

from starlette.types import Message, Receive, Scope, Send

from tests.servers.app import app as host

PID = str(os.getpid()).encode()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        await host(scope, receive, send)
        return

    async def send_naming_worker(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", ()), (b"x-worker-pid", PID)]
            message = {**message, "headers": headers}
        await send(message)

    await host(scope, receive, send_naming_worker)
