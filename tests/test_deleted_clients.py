"""A deleted client is ``invalid_client`` (401) at the token endpoint, whatever it presents.

MCP clients that registered dynamically keep their ``client_id`` and tokens; when
the operator deletes the client (RFC 7592 §2.3, or the command line), what they
must see is RFC 6749 §5.2 ``invalid_client`` with 401, so they register again,
not ``invalid_grant`` (which sends them back to the authorization endpoint with
a client id nobody knows). A client that authenticated with HTTP Basic gets the
``WWW-Authenticate`` challenge §5.2 requires. Checked for the code exchange, the
refresh, client credentials and the device poll, on the memory and SQLite stores,
and for a deletion made by another process on the same file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgi_oauth import AuthorizationServer, Settings, User
from asgi_oauth.storage import MemoryStorage, SQLiteStorage, Storage
from asgi_oauth.types import DEVICE_CODE

from .browser_helpers import VERIFIER, exchange
from .conftest import ISSUER, REDIRECT_URI, Credentials, FakeClock
from .device_helpers import start_ok
from .dpop_helpers import PASSWORD, USERNAME, authorization_code, token_request
from .test_redirect_uris_native import code_at

pytestmark = pytest.mark.anyio

REGISTER = ISSUER + "/register"
LOOPBACK = "http://127.0.0.1:33418/callback"


@pytest.fixture
def settings() -> Settings:
    return Settings(issuer=ISSUER, client_registration="open")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "oauth.db"


@pytest.fixture(params=["memory", "sqlite"])
async def server(
    request: pytest.FixtureRequest, settings: Settings, clock: FakeClock, path: Path
) -> AsyncIterator[AuthorizationServer]:
    # No client cache: a deletion by another process is seen at once (it is within
    # ``client_cache_ttl`` otherwise).
    store: Storage = (
        MemoryStorage() if request.param == "memory" else SQLiteStorage(path, client_cache_ttl=0)
    )
    server = AuthorizationServer(store, settings, clock=clock)
    yield server
    await server.close()


@pytest.fixture
async def alice(server: AuthorizationServer) -> User:
    return await server.create_user(USERNAME, PASSWORD)


@pytest.fixture
async def confidential(server: AuthorizationServer) -> Credentials:
    registered = await server.register_client(
        name="Agent",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token", "client_credentials", DEVICE_CODE],
        scope=["read"],
    )
    return Credentials(registered.client.client_id, registered.client_secret)


def assert_invalid_client(response: httpx.Response, *, basic: bool) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert response.headers["cache-control"] == "no-store"
    if basic:  # RFC 6749 §5.2: the scheme the client used
        assert response.headers["www-authenticate"].startswith("Basic "), response.headers
    else:
        assert "www-authenticate" not in response.headers


async def tokens_of(http: httpx.AsyncClient, client: Credentials) -> dict[str, Any]:
    params = {"client_id": client.client_id, "response_type": "code", "scope": "read"}
    code = await authorization_code(http, params)
    issued = await token_request(http, client, {"grant_type": "authorization_code", "code": code})
    assert issued.status_code == 200, issued.text
    body: dict[str, Any] = issued.json()
    return body


async def test_every_grant_of_a_deleted_confidential_client_is_401_with_basic(
    http: httpx.AsyncClient, server: AuthorizationServer, confidential: Credentials, alice: User
) -> None:
    tokens = await tokens_of(http, confidential)
    code = await authorization_code(
        http, {"client_id": confidential.client_id, "response_type": "code", "scope": "read"}
    )
    device = await start_ok(http, confidential, scope="read")
    assert await server.storage.delete_client(confidential.client_id)

    requests = [
        {"grant_type": "authorization_code", "code": code},
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        {"grant_type": "client_credentials"},
        {"grant_type": DEVICE_CODE, "device_code": device["device_code"]},
    ]
    for form in requests:
        assert_invalid_client(await token_request(http, confidential, form), basic=True)
        # The same secret in the body (client_secret_post): no challenge to answer.
        posted = {**form, "client_id": confidential.client_id}
        response = await http.post(
            ISSUER + "/token", data={**posted, "client_secret": confidential.client_secret or ""}
        )
        assert_invalid_client(response, basic=False)


async def test_a_dynamically_registered_public_client_deleted_is_told_to_register_again(
    http: httpx.AsyncClient, alice: User
) -> None:
    registered = await http.post(
        REGISTER,
        json={
            "client_name": "MCP client",
            "redirect_uris": [LOOPBACK],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        },
    )
    body = registered.json()
    client = Credentials(body["client_id"], None)
    code = await code_at(http, client.client_id, LOOPBACK)
    issued = await exchange(
        http, code, client_id=client.client_id, redirect_uri=LOOPBACK, verifier=VERIFIER
    )
    refresh_token = issued.json()["refresh_token"]
    unused = await code_at(http, client.client_id, LOOPBACK)

    deleted = await http.delete(
        body["registration_client_uri"],
        headers={"Authorization": f"Bearer {body['registration_access_token']}"},
    )
    assert deleted.status_code == 204
    refresh = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    assert_invalid_client(await token_request(http, client, refresh), basic=False)
    exchanged = await exchange(
        http, unused, client_id=client.client_id, redirect_uri=LOOPBACK, verifier=VERIFIER
    )
    assert_invalid_client(exchanged, basic=False)


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
async def test_a_deletion_by_another_process_is_401_too(
    http: httpx.AsyncClient, server: AuthorizationServer, confidential: Credentials, path: Path
) -> None:
    """As ``asgi-oauth clients delete`` does it: another store on the same file."""
    issued = await token_request(http, confidential, {"grant_type": "client_credentials"})
    assert issued.status_code == 200, issued.text
    other = SQLiteStorage(path)
    try:
        assert await other.delete_client(confidential.client_id)
    finally:
        await other.close()
    again = await token_request(http, confidential, {"grant_type": "client_credentials"})
    assert_invalid_client(again, basic=True)
