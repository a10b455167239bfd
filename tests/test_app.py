"""The ASGI app over HTTP: mounting, responses, CORS, and bad input of every kind."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import Message

from asgi_oauth import AuthorizationServer, Settings, StorageError, Token
from asgi_oauth.app import OAuth2App
from asgi_oauth.storage import MemoryStorage

from .conftest import ISSUER, Credentials

pytestmark = pytest.mark.anyio

FORM = {"content-type": "application/x-www-form-urlencoded"}


def assert_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error
    assert "Traceback" not in response.text


async def test_token_response_is_json_and_never_cached(
    http: httpx.AsyncClient, confidential: Credentials
) -> None:
    response = await http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=confidential.basic
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}


async def test_introspect_and_revoke_over_http(
    http: httpx.AsyncClient, confidential: Credentials
) -> None:
    token = (
        await http.post(
            "/oauth2/token", data={"grant_type": "client_credentials"}, auth=confidential.basic
        )
    ).json()["access_token"]
    introspected = await http.post(
        "/oauth2/introspect", data={"token": token}, auth=confidential.basic
    )
    assert introspected.json()["active"] is True
    assert introspected.headers["cache-control"] == "no-store"
    revoked = await http.post("/oauth2/revoke", data={"token": token}, auth=confidential.basic)
    assert revoked.status_code == 200 and revoked.json() == {}
    again = await http.post("/oauth2/introspect", data={"token": token}, auth=confidential.basic)
    assert again.json() == {"active": False}


async def test_metadata_inside_the_mount_and_at_the_host_root(http: httpx.AsyncClient) -> None:
    inside = await http.get("/oauth2/.well-known/oauth-authorization-server")
    root = await http.get("/.well-known/oauth-authorization-server/oauth2")
    assert inside.status_code == root.status_code == 200
    assert inside.json() == root.json()
    assert inside.json()["issuer"] == ISSUER
    assert inside.json()["token_endpoint"] == ISSUER + "/token"


async def test_forged_host_header_does_not_change_published_urls(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get(
        "/oauth2/.well-known/oauth-authorization-server", headers={"host": "evil.example"}
    )
    assert response.json()["token_endpoint"] == ISSUER + "/token"


async def mounted_issuer(app: object, issuer: str, url: str, root_path: str = "") -> str:
    transport = httpx.ASGITransport(app=app, root_path=root_path)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://as.example") as client:
        response = await client.get(url)
    assert response.status_code == 200, response.text
    metadata = response.json()
    assert metadata["token_endpoint"] == issuer + "/token"
    return str(metadata["issuer"])


async def test_served_at_the_root() -> None:
    server = AuthorizationServer(MemoryStorage(), Settings(issuer="https://as.example"))
    issuer = await mounted_issuer(
        OAuth2App(server),
        "https://as.example",
        "/.well-known/oauth-authorization-server",
    )
    assert issuer == "https://as.example"


async def test_mounted_in_fastapi() -> None:
    server = AuthorizationServer(MemoryStorage(), Settings(issuer=ISSUER))
    api = FastAPI()
    api.mount("/oauth2", OAuth2App(server))
    assert await mounted_issuer(api, ISSUER, "/oauth2/.well-known/oauth-authorization-server")


async def test_mounted_behind_root_path(caplog: pytest.LogCaptureFixture) -> None:
    issuer = "https://as.example/prefix/oauth2"
    server = AuthorizationServer(MemoryStorage(), Settings(issuer=issuer))
    app = Starlette(routes=[Mount("/oauth2", app=OAuth2App(server))])
    with caplog.at_level(logging.WARNING, "asgi_oauth"):
        await mounted_issuer(
            app, issuer, "/prefix/oauth2/.well-known/oauth-authorization-server", "/prefix"
        )
    assert "mounted at" not in caplog.text


async def test_mount_that_disagrees_with_the_issuer_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = AuthorizationServer(MemoryStorage(), Settings(issuer=ISSUER))
    app = Starlette(routes=[Mount("/auth", app=OAuth2App(server))])
    with caplog.at_level(logging.WARNING, "asgi_oauth"):
        await mounted_issuer(app, ISSUER, "/auth/.well-known/oauth-authorization-server")
    assert "mounted at '/auth' but the issuer" in caplog.text


async def raw(
    app: OAuth2App,
    method: str,
    path: str,
    body: Sequence[bytes] = (b"",),
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> tuple[int, dict[bytes, bytes], bytes]:
    """Drive the ASGI app by hand, for requests httpx will not make."""
    chunks = list(body)
    sent: list[Message] = []

    async def receive() -> Message:
        if not chunks:
            return {"type": "http.disconnect"}
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": list(headers),
        "query_string": b"",
    }
    await app(scope, receive, send)
    start, end = sent
    return start["status"], dict(start["headers"]), end["body"]


@pytest.mark.parametrize(
    ("content", "headers", "status", "error", "detail"),
    [
        (
            b"grant_type=client_credentials&grant_type=password",
            FORM,
            400,
            "invalid_request",
            "repeated parameter",
        ),
        (b"scope=read", FORM, 400, "invalid_request", "missing parameter: grant_type"),
        (b"grant_type=", FORM, 400, "invalid_request", "missing parameter: grant_type"),
        (b"grant_type=urn%3Aunknown", FORM, 400, "unsupported_grant_type", "urn:unknown"),
        (b"\xff\xfe\x00junk", FORM, 400, "invalid_request", "UTF-8"),
        (b"grant_type=%ff%fe", FORM, 400, "invalid_request", "UTF-8"),
        (
            b'{"grant_type": "client_credentials"}',
            {"content-type": "application/json"},
            415,
            "invalid_request",
            "Content-Type",
        ),
        (b"grant_type=client_credentials", {}, 415, "invalid_request", "Content-Type"),
        (b"x=" + b"a" * 70_000, FORM, 413, "invalid_request", "larger than"),
        (
            b"grant_type=client_credentials",
            {**FORM, "authorization": "Basic %%%"},
            401,
            "invalid_client",
            "malformed",
        ),
        (
            b"grant_type=client_credentials&client_id=ghost&client_secret=x",
            FORM,
            401,
            "invalid_client",
            "authentication failed",
        ),
    ],
)
async def test_bad_token_requests_get_rfc_errors(
    http: httpx.AsyncClient,
    content: bytes,
    headers: dict[str, str],
    status: int,
    error: str,
    detail: str,
) -> None:
    response = await http.post("/oauth2/token", content=content, headers=headers)
    assert_error(response, status, error)
    assert detail in response.json()["error_description"]


async def test_malformed_basic_header_carries_a_basic_challenge(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/oauth2/token",
        content=b"grant_type=client_credentials",
        headers={**FORM, "authorization": "Basic !!"},
    )
    assert_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic realm=")


async def test_get_on_a_post_endpoint_is_405_with_allow(http: httpx.AsyncClient) -> None:
    for path in ("/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"):
        response = await http.get(path)
        assert_error(response, 405, "invalid_request")
        assert response.headers["allow"] == "POST"
    response = await http.post("/oauth2/.well-known/oauth-authorization-server")
    assert_error(response, 405, "invalid_request")
    assert response.headers["allow"] == "GET"


async def test_unknown_endpoint_is_404(http: httpx.AsyncClient) -> None:
    assert_error(await http.post("/oauth2/authorize-me"), 404, "invalid_request")


async def test_streamed_body_over_the_limit_is_413(oauth_app: OAuth2App) -> None:
    chunks = [b"a" * 30_000] * 3  # no Content-Length: counted as it arrives
    status, _, body = await raw(
        oauth_app, "POST", "/token", chunks, [(b"content-type", FORM["content-type"].encode())]
    )
    assert status == 413 and b"larger than" in body


async def test_malformed_content_length_and_repeated_headers(oauth_app: OAuth2App) -> None:
    form = (b"content-type", FORM["content-type"].encode())
    status, _, body = await raw(
        oauth_app, "POST", "/token", [b""], [form, (b"content-length", b"ten")]
    )
    assert status == 400 and b"Content-Length" in body
    auth = (b"authorization", b"Basic eDp5")
    status, _, body = await raw(oauth_app, "POST", "/token", [b""], [form, auth, auth])
    assert status == 400 and b"repeated authorization header" in body


async def test_client_disconnect_while_reading_is_handled(oauth_app: OAuth2App) -> None:
    form = (b"content-type", FORM["content-type"].encode())

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/token", "headers": [form]}
    await oauth_app(scope, receive, send)
    assert sent[0]["status"] == 400


class FailingStorage(MemoryStorage):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def save_tokens(self, tokens: Sequence[Token]) -> None:
        raise self.error

    async def is_allowed_origin(self, origin: str) -> bool:
        raise self.error


@pytest.fixture
async def failing() -> AsyncIterator[tuple[httpx.AsyncClient, FailingStorage, Credentials]]:
    storage = FailingStorage(StorageError("database is locked"))
    # Only origins clients registered: a preflight asks the store.
    server = AuthorizationServer(storage, Settings(issuer="https://as.example", cors_origins=()))
    registered = await server.register_client(name="c", grant_types=["client_credentials"])
    creds = Credentials(registered.client.client_id, registered.client_secret)
    transport = httpx.ASGITransport(app=OAuth2App(server))
    async with httpx.AsyncClient(transport=transport, base_url="https://as.example") as client:
        yield client, storage, creds


async def test_storage_failure_is_503_temporarily_unavailable(
    failing: tuple[httpx.AsyncClient, FailingStorage, Credentials],
) -> None:
    client, _, creds = failing
    response = await client.post(
        "/token", data={"grant_type": "client_credentials"}, auth=creds.basic
    )
    assert_error(response, 503, "temporarily_unavailable")
    assert response.headers["retry-after"] == "1"
    cors = await client.options(
        "/token", headers={"origin": "https://a.example", "access-control-request-method": "POST"}
    )
    assert_error(cors, 503, "temporarily_unavailable")


async def test_unexpected_error_is_a_plain_500_without_details(
    failing: tuple[httpx.AsyncClient, FailingStorage, Credentials],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, storage, creds = failing
    storage.error = RuntimeError("secret internals")
    with caplog.at_level(logging.ERROR, "asgi_oauth"):
        response = await client.post(
            "/token", data={"grant_type": "client_credentials"}, auth=creds.basic
        )
    assert_error(response, 500, "server_error")
    assert "secret internals" not in response.text
    assert "secret internals" in caplog.text  # the details go to the log


async def test_lifespan_closes_the_store_and_websockets_are_refused() -> None:
    closed: list[bool] = []

    class Store(MemoryStorage):
        async def close(self) -> None:
            closed.append(True)

    app = OAuth2App(AuthorizationServer(Store(), Settings(issuer=ISSUER)))
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert closed == [True]
    sent.clear()
    await app({"type": "websocket", "path": "/token"}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_metadata_route_serves_the_root_well_known(oauth_app: OAuth2App) -> None:
    route = oauth_app.metadata_route
    assert route.path == "/.well-known/oauth-authorization-server/oauth2"
    api = FastAPI()
    api.router.routes.append(route)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="https://as.example") as client:
        response = await client.get(route.path)
    assert response.json()["issuer"] == ISSUER
