"""Finding the token (RFC 6750 §2): header always, form body and query only when enabled."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from asgi_oauth import AuthorizationServer
from asgi_oauth.middleware import BearerTokenMiddleware

from ..conftest import Credentials
from ..helpers import basic_header
from .test_bearer import access_token, bearer, challenge, connect, echo

pytestmark = pytest.mark.anyio

FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def token(server: AuthorizationServer, caller: Credentials) -> str:
    return await access_token(server, caller, "read")


async def send(
    server: AuthorizationServer, method: str, url: str, **options: Any
) -> httpx.Response:
    middleware = {k: options.pop(k) for k in list(options) if k.startswith(("allow_", "max_"))}
    async with connect(BearerTokenMiddleware(echo, introspector=server, **middleware)) as client:
        return await client.request(method, url, **options)


async def raw(
    app: BearerTokenMiddleware,
    headers: Sequence[tuple[bytes, bytes]],
    body: Sequence[Message] = ({"type": "http.request", "body": b""},),
    method: str = "POST",
) -> tuple[int, dict[bytes, bytes], bytes]:
    """Drive the middleware by hand, for requests httpx will not make."""
    messages = list(body)
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": "/",
        "root_path": "",
        "headers": list(headers),
        "query_string": b"",
    }
    await app(scope, receive, send)
    start, end = sent
    return start["status"], dict(start["headers"]), end["body"]


# -- the Authorization header (§2.1) --------------------------------------------


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_scheme_is_case_insensitive(
    server: AuthorizationServer, token: str, scheme: str
) -> None:
    response = await send(server, "GET", "/", headers={"authorization": f"{scheme} {token}"})
    assert response.status_code == 200
    assert response.json()["authenticated"] is True


@pytest.mark.parametrize(
    "value",
    ["Bearer a b", "Bearer", "Bearer ", "Bearer  abc", "Bearer a,b", "Bearer ab=c", "Bearer a%20b"],
)
async def test_malformed_bearer_credentials_are_400_invalid_request(
    server: AuthorizationServer, value: str
) -> None:
    response = await send(server, "GET", "/", headers={"authorization": value})
    assert response.status_code == 400
    assert challenge(response)["error"] == "invalid_request"
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "malformed Bearer credentials",
    }


async def test_b64token_with_every_allowed_character_is_looked_up(
    server: AuthorizationServer,
) -> None:
    response = await send(server, "GET", "/", headers=bearer("aZ09-._~+/=="))
    assert response.status_code == 401
    assert challenge(response)["error"] == "invalid_token"


async def test_basic_header_on_a_protected_path_is_401_without_error(
    server: AuthorizationServer,
) -> None:
    response = await send(server, "GET", "/", headers={"authorization": basic_header("a", "b")})
    assert response.status_code == 401
    assert "error" not in challenge(response)


async def test_two_authorization_headers_are_400(server: AuthorizationServer, token: str) -> None:
    app = BearerTokenMiddleware(echo, introspector=server)
    auth = (b"authorization", f"Bearer {token}".encode())
    status, headers, body = await raw(app, [auth, auth], method="GET")
    assert status == 400
    assert json.loads(body)["error_description"] == "repeated Authorization header"
    assert b'error="invalid_request"' in headers[b"www-authenticate"]


async def test_header_names_are_matched_whatever_their_case(
    server: AuthorizationServer, token: str
) -> None:
    app = BearerTokenMiddleware(echo, introspector=server)
    status, _, body = await raw(app, [(b"Authorization", f"Bearer {token}".encode())])
    assert status == 200
    assert json.loads(body)["authenticated"] is True


# -- the query parameter (§2.3) -------------------------------------------------


async def test_query_token_is_ignored_by_default(server: AuthorizationServer, token: str) -> None:
    response = await send(server, "GET", "/", params={"access_token": token})
    assert response.status_code == 401
    assert "error" not in challenge(response)


async def test_query_token_is_accepted_when_enabled(
    server: AuthorizationServer, token: str
) -> None:
    response = await send(
        server, "GET", "/", params={"access_token": token}, allow_query_token=True
    )
    assert response.status_code == 200
    assert response.json()["scopes"] == ["read"]


async def test_other_query_parameters_carry_no_token(server: AuthorizationServer) -> None:
    response = await send(server, "GET", "/", params={"page": "2"}, allow_query_token=True)
    assert response.status_code == 401
    assert "error" not in challenge(response)


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        (True, {"access_token": "x"}),
        (False, {"access_token": ["x", "y"]}),
    ],
    ids=["header-and-query", "query-twice"],
)
async def test_token_sent_more_than_once_is_400(
    server: AuthorizationServer, token: str, headers: bool, params: dict[str, Any]
) -> None:
    response = await send(
        server,
        "GET",
        "/",
        params=params,
        headers=bearer(token) if headers else {},
        allow_query_token=True,
    )
    assert response.status_code == 400
    assert challenge(response)["error"] == "invalid_request"
    assert "more than once" in response.json()["error_description"]


# -- the form body (§2.2) -------------------------------------------------------


async def test_form_token_is_ignored_by_default(server: AuthorizationServer, token: str) -> None:
    response = await send(server, "POST", "/", data={"access_token": token})
    assert response.status_code == 401
    assert "error" not in challenge(response)


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "Application/X-WWW-Form-Urlencoded; charset=utf-8"],
)
async def test_form_token_is_accepted_and_the_route_gets_the_whole_body(
    server: AuthorizationServer, token: str, content_type: str
) -> None:
    body = f"note=hello&access_token={token}&n=2"
    response = await send(
        server,
        "POST",
        "/",
        content=body.encode(),
        headers={"content-type": content_type},
        allow_form_token=True,
    )
    assert response.status_code == 200
    assert response.json()["scopes"] == ["read"]
    assert response.json()["body"] == body


async def test_form_body_arriving_in_chunks_is_replayed_whole(
    server: AuthorizationServer, token: str
) -> None:
    app = BearerTokenMiddleware(echo, introspector=server, allow_form_token=True)
    chunks = [b"a=1&access_token=", token.encode(), b"&b=2"]
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    status, _, body = await raw(app, [(b"content-type", FORM["content-type"].encode())], messages)
    assert status == 200
    assert json.loads(body)["body"] == b"".join(chunks).decode()


async def test_get_with_form_content_type_never_reads_a_form_token(
    server: AuthorizationServer, token: str
) -> None:
    response = await send(
        server,
        "GET",
        "/",
        content=f"access_token={token}".encode(),
        headers=FORM,
        allow_form_token=True,
    )
    assert response.status_code == 401
    assert "error" not in challenge(response)


async def test_other_media_types_are_not_read_for_a_token(
    server: AuthorizationServer, token: str
) -> None:
    response = await send(server, "POST", "/", json={"access_token": token}, allow_form_token=True)
    assert response.status_code == 401
    assert "error" not in challenge(response)


async def test_body_without_content_type_is_not_read_for_a_token(
    server: AuthorizationServer, token: str
) -> None:
    app = BearerTokenMiddleware(echo, introspector=server, allow_form_token=True)
    message: Message = {"type": "http.request", "body": f"access_token={token}".encode()}
    status, _, body = await raw(app, [], [message])
    assert status == 401
    assert json.loads(body) == {"error_description": "a bearer token is required"}


async def test_header_and_form_token_together_are_400(
    server: AuthorizationServer, token: str
) -> None:
    response = await send(
        server,
        "POST",
        "/",
        data={"access_token": token},
        headers=bearer(token),
        allow_form_token=True,
    )
    assert response.status_code == 400
    assert "more than once" in response.json()["error_description"]


async def test_form_body_over_max_body_size_holds_no_token(server: AuthorizationServer) -> None:
    response = await send(
        server,
        "POST",
        "/",
        data={"access_token": "x", "pad": "a" * 100},
        allow_form_token=True,
        max_body_size=64,
    )
    assert response.status_code == 401
    assert response.json() == {"error_description": "a bearer token is required"}


async def test_form_body_over_max_body_size_reaches_the_app_whole(
    server: AuthorizationServer, token: str
) -> None:
    response = await send(
        server,
        "POST",
        "/",
        data={"pad": "a" * 100},
        headers=bearer(token),
        allow_form_token=True,
        max_body_size=64,
    )
    assert response.status_code == 200
    assert response.json()["body"] == "pad=" + "a" * 100


async def test_body_over_max_body_size_is_not_read_without_allow_form_token(
    server: AuthorizationServer, token: str
) -> None:
    response = await send(
        server,
        "POST",
        "/",
        data={"pad": "a" * 100},
        headers=bearer(token),
        max_body_size=64,
    )
    assert response.status_code == 200
    assert response.json()["body"] == "pad=" + "a" * 100


async def test_form_body_that_is_not_utf8_holds_no_token(server: AuthorizationServer) -> None:
    response = await send(
        server,
        "POST",
        "/",
        content=b"access_token=\xff\xfe",
        headers=FORM,
        allow_form_token=True,
    )
    assert response.status_code == 401
    assert "error" not in challenge(response)


async def test_client_disconnect_while_the_form_is_read_finds_no_token(
    server: AuthorizationServer,
) -> None:
    app = BearerTokenMiddleware(echo, introspector=server, allow_form_token=True)
    status, _, body = await raw(
        app,
        [(b"content-type", FORM["content-type"].encode())],
        [{"type": "http.disconnect"}],
    )
    assert status == 401
    assert json.loads(body)["error_description"] == "a bearer token is required"


async def test_after_the_replayed_body_the_app_receives_from_the_server(
    server: AuthorizationServer, token: str
) -> None:
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(await receive())
        received.append(await receive())  # e.g. waiting for the client to go away
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = BearerTokenMiddleware(app, introspector=server, allow_form_token=True)
    body = f"access_token={token}".encode()
    status, _, _ = await raw(
        middleware,
        [(b"content-type", FORM["content-type"].encode())],
        [{"type": "http.request", "body": body}],
    )
    assert status == 204
    # The app gets the server's messages as they came, then the server's own receive.
    assert received == [{"type": "http.request", "body": body}, {"type": "http.disconnect"}]
