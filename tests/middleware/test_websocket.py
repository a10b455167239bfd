"""Websockets behind BearerTokenMiddleware: refused before the handshake, or accepted with a user.

TestClient runs the app on an event loop of its own, so each test drives it
from a worker thread and keeps this loop free.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.middleware import Middleware
from starlette.routing import WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from asgi_oauth import AuthorizationServer
from asgi_oauth.middleware import BearerTokenMiddleware

from ..conftest import Credentials
from .conftest import register_caller
from .test_bearer import Called, access_token, bearer, describe, no_token

with warnings.catch_warnings():
    # Starlette 1.x asks for the httpx2 package and warns when TestClient runs on httpx.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient, WebSocketDenialResponse

pytestmark = pytest.mark.anyio


@pytest.fixture
async def token(server: AuthorizationServer) -> str:
    caller: Credentials = await register_caller(server)
    return await access_token(server, caller, "read")


async def endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(describe(websocket.auth, websocket.user))
    await websocket.close()


def websocket_app(server: AuthorizationServer, **options: Any) -> ASGIApp:
    return Starlette(
        routes=[WebSocketRoute("/ws", endpoint)],
        middleware=[
            Middleware(
                BearerTokenMiddleware, introspector=server, protect={"/ws": "read"}, **options
            )
        ],
    )


async def in_thread(app: ASGIApp, talk: Callable[[TestClient], Any]) -> Any:
    def run() -> Any:
        with TestClient(app) as client:
            return talk(client)

    return await anyio.to_thread.run_sync(run)


async def denial(app: ASGIApp, url: str, headers: dict[str, str]) -> WebSocketDenialResponse:
    def talk(client: TestClient) -> WebSocketDenialResponse:
        with (
            pytest.raises(WebSocketDenialResponse) as denied,
            client.websocket_connect(url, headers=headers),
        ):
            pass  # the handshake is refused: never reached
        return denied.value

    result: WebSocketDenialResponse = await in_thread(app, talk)
    return result


async def accepted(app: ASGIApp, url: str, headers: dict[str, str]) -> dict[str, Any]:
    def talk(client: TestClient) -> dict[str, Any]:
        with client.websocket_connect(url, headers=headers) as websocket:
            seen: dict[str, Any] = websocket.receive_json()
            return seen

    result: dict[str, Any] = await in_thread(app, talk)
    return result


async def test_websocket_without_a_token_is_refused_with_a_401_challenge(
    server: AuthorizationServer,
) -> None:
    refused = await denial(websocket_app(server), "/ws", {})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == no_token(scope="read")
    assert refused.json() == {"error_description": "a bearer token is required"}


@pytest.mark.parametrize(
    ("scope", "status", "error"),
    [(None, 401, "invalid_token"), ("write", 403, "insufficient_scope")],
)
async def test_websocket_with_a_bad_token_is_refused_with_its_error(
    server: AuthorizationServer, scope: str | None, status: int, error: str
) -> None:
    if scope is None:
        token = "garbage"
    else:
        token = await access_token(server, await register_caller(server), scope)
    refused = await denial(websocket_app(server), "/ws", bearer(token))
    assert refused.status_code == status
    assert f'error="{error}"' in refused.headers["www-authenticate"]


async def test_websocket_with_a_valid_header_token_is_accepted_with_the_user(
    server: AuthorizationServer, token: str
) -> None:
    seen = await accepted(websocket_app(server), "/ws", bearer(token))
    assert seen["authenticated"] is True
    assert seen["scopes"] == ["read"]


async def test_websocket_query_token_is_ignored_by_default(
    server: AuthorizationServer, token: str
) -> None:
    refused = await denial(websocket_app(server), f"/ws?access_token={token}", {})
    assert refused.status_code == 401


async def test_websocket_query_token_works_when_enabled(
    server: AuthorizationServer, token: str
) -> None:
    app = websocket_app(server, allow_query_token=True)
    seen = await accepted(app, f"/ws?access_token={token}", {})
    assert seen["authenticated"] is True


async def test_websocket_never_reads_a_form_token(server: AuthorizationServer) -> None:
    app = websocket_app(server, allow_form_token=True)
    refused = await denial(app, "/ws", {"content-type": "application/x-www-form-urlencoded"})
    assert refused.status_code == 401


async def drive(
    middleware: BearerTokenMiddleware, headers: list[tuple[bytes, bytes]], extensions: bool
) -> list[Message]:
    """A websocket handshake by hand, with or without the websocket.http.response extension."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "websocket",
        "path": "/ws",
        "root_path": "",
        "headers": headers,
        "query_string": b"",
        "subprotocols": [],
    }
    if extensions:
        scope["extensions"] = {"websocket.http.response": {}}
    await middleware(scope, receive, send)
    return sent


async def test_websocket_without_the_http_response_extension_is_closed_with_1008(
    server: AuthorizationServer,
) -> None:
    app = Called()
    sent = await drive(BearerTokenMiddleware(app, introspector=server), [], extensions=False)
    assert sent == [
        {"type": "websocket.close", "code": 1008, "reason": "a bearer token is required"}
    ]
    assert app.calls == 0


async def test_websocket_with_the_http_response_extension_gets_an_http_refusal(
    server: AuthorizationServer,
) -> None:
    app = Called()
    middleware = BearerTokenMiddleware(app, introspector=server)
    sent = await drive(middleware, [(b"authorization", b"Bearer junk")], extensions=True)
    assert [m["type"] for m in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == 401
    assert (
        b"www-authenticate",
        b'Bearer realm="api", error="invalid_token", '
        b'error_description="the access token is not valid"',
    ) in sent[0]["headers"]
    assert app.calls == 0


async def test_websocket_with_a_valid_token_reaches_the_app_with_scope_user(
    server: AuthorizationServer, token: str
) -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    middleware = BearerTokenMiddleware(app, introspector=server)
    header = (b"authorization", f"Bearer {token}".encode())
    assert await drive(middleware, [header], extensions=False) == []  # the app sent nothing
    assert seen[0]["user"].is_authenticated
    assert seen[0]["auth"].scopes == ["read"]
