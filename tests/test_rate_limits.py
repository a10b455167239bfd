"""Rate limits per client and per address (``asgi_oauth.rate_limits``), and the store's
``count_request`` they count with, on every store."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from asgi_oauth import AuthorizationServer, OAuthRequest, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.endpoints.registration import Registrar
from asgi_oauth.errors import OAuth2Error, StorageError
from asgi_oauth.pkce import s256_challenge
from asgi_oauth.storage import MemoryStorage, SQLiteStorage, Storage
from asgi_oauth.types import DEVICE_CODE

from .conftest import ISSUER, REDIRECT_URI, Credentials, FakeClock

pytestmark = pytest.mark.anyio

HERE, THERE = "203.0.113.9", "198.51.100.7"
WINDOW = 60
#: FakeClock starts at 1_700_000_000, 20 s into a 60 s window: 40 s are left of it.
LEFT_OF_WINDOW = 40
FORM = {"content-type": "application/x-www-form-urlencoded"}
REFUSED = {
    "error": "temporarily_unavailable",
    "error_description": "rate limit reached; retry later",
}


# -- the store's counter -------------------------------------------------------------------


async def test_count_request_lets_the_limit_through_per_key_and_window(store: Storage) -> None:
    counted = [
        await store.count_request("k", window_start=0, expires_at=60, limit=3) for _ in "1234"
    ]
    assert counted == [True, True, True, False]
    assert await store.count_request("other", window_start=0, expires_at=60, limit=3)
    assert await store.count_request("k", window_start=60, expires_at=120, limit=3)
    await store.close()


async def test_a_refused_request_does_not_grow_the_count(store: Storage, tmp_path: Path) -> None:
    for _ in range(5):
        await store.count_request("k", window_start=0, expires_at=60, limit=2)
    # A higher limit now lets exactly the difference through: the refusals counted nothing.
    counted = [
        await store.count_request("k", window_start=0, expires_at=60, limit=4) for _ in "123"
    ]
    assert counted == [True, True, False]
    await store.close()


async def test_purge_expired_deletes_ended_windows_only(store: Storage) -> None:
    assert await store.count_request("old", window_start=0, expires_at=60, limit=1)
    assert await store.count_request("live", window_start=60, expires_at=120, limit=1)
    assert await store.purge_expired(now=60) == 1
    # The ended window's count is gone; the live one's is kept.
    assert await store.count_request("old", window_start=0, expires_at=60, limit=1)
    assert not await store.count_request("live", window_start=60, expires_at=120, limit=1)
    await store.close()


async def test_a_concurrent_burst_gets_exactly_the_limit_through(store: Storage) -> None:
    burst = [store.count_request("k", window_start=0, expires_at=60, limit=20) for _ in range(60)]
    assert sum(await asyncio.gather(*burst)) == 20
    await store.close()


async def test_two_sqlite_stores_on_one_file_share_the_count(tmp_path: Path) -> None:
    stores = [SQLiteStorage(tmp_path / "shared.db") for _ in range(2)]
    burst = [
        stores[i % 2].count_request("k", window_start=0, expires_at=60, limit=20) for i in range(60)
    ]
    assert sum(await asyncio.gather(*burst)) == 20
    for store in stores:
        await store.close()


async def test_count_request_on_postgresql(pg_schema: str) -> None:
    from asgi_oauth.storage.postgres import PostgresStorage

    from .postgres import POSTGRES_URL

    stores = [PostgresStorage(POSTGRES_URL, schema=pg_schema) for _ in range(2)]
    try:
        first, second = stores
        assert await first.count_request("k", window_start=0, expires_at=60, limit=2)
        assert await second.count_request("k", window_start=0, expires_at=60, limit=2)
        assert not await first.count_request("k", window_start=0, expires_at=60, limit=2)
        # Refused requests counted nothing: a higher limit lets exactly the difference in.
        assert await second.count_request("k", window_start=0, expires_at=60, limit=3)
        assert not await first.count_request("k", window_start=0, expires_at=60, limit=3)
        assert await first.count_request("k", window_start=60, expires_at=120, limit=2)
        burst = [
            stores[i % 2].count_request("b", window_start=0, expires_at=60, limit=20)
            for i in range(60)
        ]
        assert sum(await asyncio.gather(*burst)) == 20
        assert await first.purge_expired(now=60) == 2  # "k" and "b" in the first window
        assert await first.count_request("k", window_start=0, expires_at=60, limit=1)
    finally:
        for store in stores:
            await store.close()


# -- the endpoints -------------------------------------------------------------------------


class CountingStorage(MemoryStorage):
    """A memory store that counts its ``count_request`` calls, or fails them."""

    def __init__(self, *, failing: bool = False) -> None:
        super().__init__()
        self.count_requests = 0
        self.failing = failing

    async def count_request(
        self, key: str, *, window_start: int, expires_at: int, limit: int
    ) -> bool:
        self.count_requests += 1
        if self.failing:
            raise StorageError("the database is down")
        return await super().count_request(
            key, window_start=window_start, expires_at=expires_at, limit=limit
        )


@dataclass
class Harness:
    server: AuthorizationServer
    clock: FakeClock
    first: Credentials
    second: Credentials

    @asynccontextmanager
    async def http(self, address: str = HERE) -> AsyncIterator[httpx.AsyncClient]:
        app = Starlette(routes=[Mount("/oauth2", app=OAuth2App(self.server))])
        transport = httpx.ASGITransport(app=app, client=(address, 123))
        async with httpx.AsyncClient(transport=transport, base_url="https://as.example") as http:
            yield http


@asynccontextmanager
async def harness(storage: Storage, **settings: Any) -> AsyncIterator[Harness]:
    clock = FakeClock()
    server = AuthorizationServer(
        storage, Settings(issuer=ISSUER, client_registration="open", **settings), clock=clock
    )
    clients = []
    for name in ("first", "second"):
        registered = await server.register_client(
            name=name,
            redirect_uris=[REDIRECT_URI],
            grant_types=["client_credentials", "authorization_code", DEVICE_CODE],
            scope=["read"],
        )
        clients.append(Credentials(registered.client.client_id, registered.client_secret))
    try:
        yield Harness(server, clock, *clients)
    finally:
        await server.close()


Send = Callable[[httpx.AsyncClient, Credentials], Awaitable[httpx.Response]]


async def _token(http: httpx.AsyncClient, creds: Credentials) -> httpx.Response:
    form = {"grant_type": "client_credentials"}
    return await http.post("/oauth2/token", data=form, auth=creds.basic, headers=FORM)


async def _introspection(http: httpx.AsyncClient, creds: Credentials) -> httpx.Response:
    form = {"token": "not-a-token"}
    return await http.post("/oauth2/introspect", data=form, auth=creds.basic, headers=FORM)


async def _device_authorization(http: httpx.AsyncClient, creds: Credentials) -> httpx.Response:
    form = {"scope": "read"}
    return await http.post("/oauth2/device_authorization", data=form, auth=creds.basic)


async def _par(http: httpx.AsyncClient, creds: Credentials) -> httpx.Response:
    form = {
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "code_challenge": s256_challenge("v" * 43),
        "code_challenge_method": "S256",
    }
    return await http.post("/oauth2/par", data=form, auth=creds.basic)


#: Each endpoint with a per-client budget, and the success it answers within it.
ENDPOINTS: dict[str, tuple[Send, int]] = {
    "token": (_token, 200),
    "introspection": (_introspection, 200),
    "device_authorization": (_device_authorization, 200),
    "pushed_authorization_request": (_par, 201),
}
endpoint_names = pytest.mark.parametrize("endpoint", list(ENDPOINTS))


def assert_refused(response: httpx.Response, retry_after: int = LEFT_OF_WINDOW) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == REFUSED
    assert response.headers["retry-after"] == str(retry_after)


@endpoint_names
async def test_per_client_budget_on_each_endpoint(
    store: Storage, endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    send, ok = ENDPOINTS[endpoint]
    async with harness(store, rate_limit_per_client=2) as h, h.http() as http:
        assert [(await send(http, h.first)).status_code for _ in "12"] == [ok, ok]
        with caplog.at_level(logging.WARNING, logger="asgi_oauth.events"):
            assert_refused(await send(http, h.first))
        assert f"event=rate_limited endpoint={endpoint} client_id={h.first.client_id}" in (
            caplog.text
        )
        # Another client, even from the same address, has its own budget.
        assert (await send(http, h.second)).status_code == ok
        # The window ends: the budget is back.
        h.clock.advance(LEFT_OF_WINDOW)
        assert (await send(http, h.first)).status_code == ok


@endpoint_names
async def test_requests_only_naming_a_client_do_not_spend_its_budget(
    store: Storage, endpoint: str
) -> None:
    send, ok = ENDPOINTS[endpoint]
    async with harness(store, rate_limit_per_client=2) as h, h.http(THERE) as http:
        impostor = Credentials(h.first.client_id, "not its secret")
        for _ in range(4):
            assert (await send(http, impostor)).status_code == 401
        assert [(await send(http, h.first)).status_code for _ in "12"] == [ok, ok]
        assert_refused(await send(http, h.first))


@endpoint_names
async def test_per_address_budget_on_each_endpoint(store: Storage, endpoint: str) -> None:
    send, ok = ENDPOINTS[endpoint]
    async with harness(store, rate_limit_per_address=2) as h:
        async with h.http(HERE) as here:
            # Every request counts, whoever it names: even a failed one.
            impostor = Credentials(h.first.client_id, "not its secret")
            assert (await send(here, impostor)).status_code == 401
            assert (await send(here, h.second)).status_code == ok
            assert_refused(await send(here, h.first))
        async with h.http(THERE) as there:
            assert (await send(there, h.first)).status_code == ok
        h.clock.advance(LEFT_OF_WINDOW + WINDOW - 1)  # the last second of the next window
        async with h.http(HERE) as here:
            assert (await send(here, h.first)).status_code == ok


async def test_the_address_is_counted_before_anything_is_checked(store: Storage) -> None:
    async with harness(store, rate_limit_per_address=1) as h, h.http() as http:
        assert (await http.post("/oauth2/token", data={}, headers=FORM)).status_code == 400
        assert_refused(await http.post("/oauth2/token", data={}, headers=FORM))


async def test_registration_is_limited_per_address(store: Storage) -> None:
    async with harness(store, rate_limit_per_address=1, rate_limit_per_client=1) as h:
        registrar = h.server.registrar
        document = {"redirect_uris": [REDIRECT_URI], "client_name": "new"}
        here, there = OAuthRequest(client_address=HERE), OAuthRequest(client_address=THERE)
        await registrar.register(document, initial_access_token=None, request=here)
        with pytest.raises(OAuth2Error) as refused:
            await registrar.register(document, initial_access_token=None, request=here)
        assert refused.value.status == 429
        assert refused.value.to_dict() == REFUSED
        assert refused.value.headers == {"Retry-After": str(LEFT_OF_WINDOW)}
        await registrar.register(document, initial_access_token=None, request=there)
        h.clock.advance(LEFT_OF_WINDOW)
        await registrar.register(document, initial_access_token=None, request=here)


async def test_registration_checks_the_address_before_the_initial_access_token() -> None:
    token = "i" * 32
    settings = Settings(
        issuer=ISSUER,
        client_registration="initial_access_token",
        initial_access_token=token,
        rate_limit_per_address=1,
    )
    registrar = Registrar(MemoryStorage(), settings, FakeClock())
    document = {"redirect_uris": [REDIRECT_URI]}
    here = OAuthRequest(client_address=HERE)
    with pytest.raises(OAuth2Error) as wrong:
        await registrar.register(document, initial_access_token="guess", request=here)
    assert wrong.value.status == 401
    with pytest.raises(OAuth2Error) as refused:
        await registrar.register(document, initial_access_token=token, request=here)
    assert refused.value.status == 429


async def test_a_429_from_a_cors_endpoint_carries_the_cors_headers(store: Storage) -> None:
    async with harness(store, rate_limit_per_client=1) as h, h.http() as http:
        origin = {"origin": "https://spa.example"}
        await _token(http, h.first)
        refused = await http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=h.first.basic,
            headers={**FORM, **origin},
        )
        assert_refused(refused)
        assert refused.headers["access-control-allow-origin"] == "*"


async def test_off_by_default_the_store_is_never_asked() -> None:
    storage = CountingStorage()
    async with harness(storage) as h, h.http() as http:
        for send, ok in ENDPOINTS.values():
            assert (await send(http, h.first)).status_code == ok
        registered = await http.post("/oauth2/register", json={"redirect_uris": [REDIRECT_URI]})
        assert registered.status_code == 201
        await h.server.registrar.register(
            {"redirect_uris": [REDIRECT_URI]},
            initial_access_token=None,
            request=OAuthRequest(client_address=HERE),
        )
        assert storage.count_requests == 0
    # The same request with a limit on does ask it: the count above could have moved.
    storage = CountingStorage()
    async with harness(storage, rate_limit_per_client=100) as h, h.http() as http:
        assert (await _token(http, h.first)).status_code == 200
        assert storage.count_requests == 1


async def test_a_failing_store_is_a_503_not_a_pass() -> None:
    failing = CountingStorage(failing=True)
    async with harness(failing, rate_limit_per_address=5) as h, h.http() as http:
        response = await _token(http, h.first)
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert response.headers["retry-after"] == "1"


async def test_the_store_keeps_digests_not_addresses_or_client_ids(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    limits = {"rate_limit_per_client": 5, "rate_limit_per_address": 5}
    async with harness(SQLiteStorage(db), **limits) as h, h.http() as http:
        assert (await _token(http, h.first)).status_code == 200
    with sqlite3.connect(db) as conn:
        keys = [key for (key,) in conn.execute("SELECT key FROM request_counts")]
    assert len(keys) == 2
    assert all(len(key) == 64 and int(key, 16) >= 0 for key in keys)
    stored = " ".join(keys)
    assert HERE not in stored and h.first.client_id not in stored
    assert hashlib.sha256(f"client\x00token\x00{h.first.client_id}".encode()).hexdigest() in keys


def test_the_settings_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "ASGI_OAUTH_ISSUER": ISSUER,
            "ASGI_OAUTH_RATE_LIMIT_PER_CLIENT": "20",
            "ASGI_OAUTH_RATE_LIMIT_PER_ADDRESS": "100",
            "ASGI_OAUTH_RATE_LIMIT_WINDOW": "10",
        }
    )
    assert (settings.rate_limit_per_client, settings.rate_limit_per_address) == (20, 100)
    assert settings.rate_limit_window == 10
    defaults = Settings(issuer=ISSUER)
    assert (defaults.rate_limit_per_client, defaults.rate_limit_per_address) == (None, None)
    assert defaults.rate_limit_window == 60


async def test_registration_over_http_is_limited_per_address(store: Storage) -> None:
    async with harness(store, rate_limit_per_address=1) as h, h.http() as http:
        document = {"redirect_uris": [REDIRECT_URI], "client_name": "new"}
        assert (await http.post("/oauth2/register", json=document)).status_code == 201
        refused = await http.post(
            "/oauth2/register", json=document, headers={"Origin": "https://app.example"}
        )
        assert_refused(refused)
        # A browser script may read when to retry (RFC 9110 §10.2.3).
        assert "Retry-After" in refused.headers["access-control-expose-headers"]
