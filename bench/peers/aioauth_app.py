"""aioauth 2.0.1's ``AuthorizationServer`` as a raw ASGI app: ``bench/run.py``'s aioauth peer.

It runs in the venv that ``bench/peers/install.py`` makes (aioauth is no dependency of
asgi_oauth), under the same uvicorn command as ``bench/apps.py``: ``uvicorn aioauth_app:app
--app-dir bench/peers``. Two endpoints, as aioauth's docs name them:

- ``POST /token``: ``create_token_response`` (RFC 6749 §4.4, client_credentials, the client
  authenticated with HTTP Basic);
- ``POST /introspect``: ``create_token_introspection_response`` (RFC 7662). aioauth looks a
  token up as an access token only when ``token_type_hint=access_token`` is sent, and
  authenticates the caller as a client: the resource server is one more client.

aioauth ships no storage. ``MemoryStorage`` is written the way aioauth's examples write theirs
(``examples/shared/storage.py``): a client found by id, its stored secret compared with the one
presented, tokens found by their value. The glue builds aioauth's ``Request`` as its FastAPI
integration does (the form into ``Post``, the query into ``Query``, the headers, the URL) and
writes its ``Response`` as JSON; nothing else happens per request.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from aioauth.collections import HTTPHeaderDict
from aioauth.config import Settings
from aioauth.models import Client, Token
from aioauth.requests import Post, Query, Request
from aioauth.responses import Response
from aioauth.server import AuthorizationServer
from aioauth.storage import BaseStorage
from aioauth.types import TokenType

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# The same clients as bench/apps.py (this venv has no asgi_oauth to import them from).
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-client-secret-0123456789abcdef"
RESOURCE_SERVER_ID = "bench-resource-server"
RESOURCE_SERVER_SECRET = "bench-resource-server-secret-0123456789"

#: Plain HTTP on 127.0.0.1, as asgi_oauth's bench apps run with ``insecure_transport=True``;
#: asgi_oauth's default access token lifetime.
SETTINGS = Settings(INSECURE_TRANSPORT=True, TOKEN_EXPIRES_IN=3600)

_POST_FIELDS = frozenset(f.name for f in dataclasses.fields(Post))
_QUERY_FIELDS = frozenset(f.name for f in dataclasses.fields(Query))


# aioauth is only installed in the peers' venv; for mypy here its classes are ``Any``.
class MemoryStorage(BaseStorage):  # type: ignore[misc]
    """Clients and tokens in dictionaries, as aioauth's example storage keeps them in tables."""

    def __init__(self) -> None:
        self.clients: dict[str, Client] = {}
        self.access_tokens: dict[str, Token] = {}
        self.refresh_tokens: dict[str, Token] = {}

    async def get_client(
        self, *, request: Request, client_id: str, client_secret: str | None = None
    ) -> Client | None:
        client = self.clients.get(client_id)
        if client is None:
            return None
        if client_secret is not None and client_secret != client.client_secret:
            return None
        return client

    async def create_token(
        self,
        *,
        request: Request,
        client_id: str,
        scope: str,
        access_token: str,
        refresh_token: str | None = None,
    ) -> Token:
        token = Token(
            access_token=access_token,
            refresh_token=refresh_token,
            scope=scope,
            issued_at=int(time.time()),
            expires_in=request.settings.TOKEN_EXPIRES_IN,
            refresh_token_expires_in=request.settings.REFRESH_TOKEN_EXPIRES_IN,
            client_id=client_id,
        )
        self.access_tokens[access_token] = token
        if refresh_token is not None:
            self.refresh_tokens[refresh_token] = token
        return token

    async def get_token(
        self,
        *,
        request: Request,
        client_id: str,
        token_type: TokenType | None = "refresh_token",
        access_token: str | None = None,
        refresh_token: str | None = None,
    ) -> Token | None:
        if token_type == "refresh_token":
            return self.refresh_tokens.get(refresh_token or "")
        return self.access_tokens.get(access_token or "")


storage = MemoryStorage()
server = AuthorizationServer(storage)


def register_clients() -> None:
    for client_id, secret, grant_types in (
        (CLIENT_ID, CLIENT_SECRET, ["client_credentials"]),
        (RESOURCE_SERVER_ID, RESOURCE_SERVER_SECRET, []),
    ):
        storage.clients[client_id] = Client(
            client_id=client_id,
            client_secret=secret,
            grant_types=grant_types,
            response_types=[],
            redirect_uris=[],
        )


async def to_request(scope: Scope, receive: Receive) -> Request:
    """aioauth's ``Request`` from the ASGI scope and body, as its FastAPI integration builds it."""
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    form = dict(parse_qsl(body.decode(), keep_blank_values=True))
    query = dict(parse_qsl(scope["query_string"].decode(), keep_blank_values=True))
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    host = headers.get("host") or f"{scope['server'][0]}:{scope['server'][1]}"
    return Request(
        method=scope["method"],
        query=Query(**{k: v for k, v in query.items() if k in _QUERY_FIELDS}),
        post=Post(**{k: v for k, v in form.items() if k in _POST_FIELDS}),
        headers=HTTPHeaderDict(headers),
        url=f"{scope['scheme']}://{host}{scope['root_path']}{scope['path']}",
        settings=SETTINGS,
    )


async def send_response(send: Send, response: Response) -> None:
    body = json.dumps(response.content).encode() if response.content else b""
    headers = [(k.encode(), str(v).encode()) for k, v in response.headers.items()]
    headers.append((b"content-length", str(len(body)).encode()))
    await send(
        {"type": "http.response.start", "status": int(response.status_code), "headers": headers}
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        if scope["path"] == "/token":
            response = await server.create_token_response(await to_request(scope, receive))
        elif scope["path"] == "/introspect":
            request = await to_request(scope, receive)
            response = await server.create_token_introspection_response(request)
        else:
            response = Response(content={"error": "not_found"}, status_code=404)
        await send_response(send, response)
    elif scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                register_clients()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
