"""The maintenance switch in one process, on each store: which endpoints close (503
``temporarily_unavailable`` with ``Retry-After``), which stay served (metadata, keys,
the home page, an in-process resource server), the three switches and their
precedence, and coming back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, Router

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.availability import Availability
from asgi_oauth.errors import StorageError
from asgi_oauth.middleware import BearerTokenMiddleware
from asgi_oauth.observability import Instruments, PrometheusMetrics
from asgi_oauth.storage import MemoryStorage, Storage

from .browser_helpers import fragment_of, query_of, redirect_target
from .conftest import ISSUER, REDIRECT_URI, FakeClock

pytestmark = pytest.mark.anyio

KEK = "a-key-encryption-key-of-32-characters-at-least"
SETTINGS = Settings(
    issuer=ISSUER, key_encryption_key=KEK, client_registration="open", scopes_supported=("read",)
)
FORM = {"content-type": "application/x-www-form-urlencoded"}
#: The endpoints that answer JSON: (method, path below the issuer).
CLOSED_APIS = [
    ("POST", "/token"),
    ("POST", "/introspect"),
    ("POST", "/revoke"),
    ("POST", "/device_authorization"),
    ("POST", "/par"),
    ("POST", "/register"),
    ("GET", "/register/some-client"),
    ("GET", "/userinfo"),
]
#: The pages people use.
CLOSED_PAGES = ["/login", "/logout", "/account", "/device"]
STILL_SERVED = [
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    "/jwks",
]


async def me(request: Request) -> JSONResponse:
    return JSONResponse({"client_id": request.auth.introspection.client_id})


@dataclass
class Deployment:
    server: AuthorizationServer
    http: httpx.AsyncClient
    client: tuple[str, str]
    token: str


async def deploy(store: Storage, settings: Settings = SETTINGS) -> AsyncIterator[Deployment]:
    """The app at /oauth2 and an API at /api checking tokens in process, a client, and
    an access token issued while the server was available."""
    server = AuthorizationServer(store, settings, clock=FakeClock())
    registered = await server.register_client(
        name="app",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "client_credentials"],
        scope=["read"],
    )
    assert registered.client_secret is not None
    client = (registered.client.client_id, registered.client_secret)
    api = BearerTokenMiddleware(Router([Route("/me", me)]), introspector=server)
    app = Starlette(routes=[Mount("/oauth2", app=OAuth2App(server)), Mount("/api", app=api)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://as.example") as http:
        token = ""
        if server.available:
            issued = await http.post(
                "/oauth2/token", data={"grant_type": "client_credentials"}, auth=client
            )
            assert issued.status_code == 200, issued.text
            token = issued.json()["access_token"]
        yield Deployment(server, http, client, token)
    await server.close()


@pytest.fixture
async def deployed(storage: Storage) -> AsyncIterator[Deployment]:
    async for deployment in deploy(storage):
        yield deployment


def authorize(client_id: str, **params: str) -> str:
    query = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "state": "xyz",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        **params,
    }
    return "/oauth2/authorize?" + "&".join(f"{k}={v}" for k, v in query.items())


async def request(d: Deployment, method: str, path: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {d.token}", **FORM}
    return await d.http.request(method, "/oauth2" + path, headers=headers, content=b"")


def assert_closed_json(response: httpx.Response, retry_after: str = "60") -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "temporarily_unavailable"
    assert "maintenance" in response.json()["error_description"]
    assert response.headers["retry-after"] == retry_after
    assert response.headers["cache-control"] == "no-store"


async def assert_everything_closed(d: Deployment) -> None:
    for method, path in CLOSED_APIS:
        assert_closed_json(await request(d, method, path))
    for path in CLOSED_PAGES:
        page = await d.http.get("/oauth2" + path)
        assert page.status_code == 503, path
        assert page.headers["content-type"].startswith("text/html")
        assert "down for maintenance" in page.text
    for path in STILL_SERVED:
        assert (await d.http.get("/oauth2" + path)).status_code == 200, path
    assert (await d.http.get("/oauth2/", headers={"accept": "text/html"})).status_code == 200
    # The in-process resource server goes on checking tokens it can check.
    api = await d.http.get("/api/me", headers={"authorization": f"Bearer {d.token}"})
    assert api.status_code == 200
    assert api.json() == {"client_id": d.client[0]}


async def test_every_endpoint_closes_and_opens_again(deployed: Deployment) -> None:
    d = deployed
    await d.server.set_available(False)
    assert d.server.available is False
    assert await d.server.storage.maintenance_since() == d.server.now()
    await assert_everything_closed(d)

    await d.server.set_available(True)
    assert d.server.available is True
    assert await d.server.storage.maintenance_since() is None
    again = await d.http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=d.client
    )
    assert again.status_code == 200
    introspected = await d.http.post("/oauth2/introspect", data={"token": d.token}, auth=d.client)
    assert introspected.status_code == 200
    assert (await d.http.get("/oauth2/login")).status_code == 200


async def test_the_authorization_endpoint_redirects_a_known_client_with_state_and_iss(
    deployed: Deployment,
) -> None:
    d = deployed
    await d.server.set_available(False)
    response = await d.http.get(authorize(d.client[0]))
    assert response.status_code == 303
    target = redirect_target(response)
    assert target.startswith(REDIRECT_URI + "?")
    params = query_of(target)
    assert params["error"] == "temporarily_unavailable"
    assert params["state"] == "xyz"
    assert params["iss"] == ISSUER
    # In the response mode the request asked for.
    fragment = redirect_target(await d.http.get(authorize(d.client[0], response_mode="fragment")))
    assert fragment.startswith(REDIRECT_URI + "#")
    assert fragment_of(fragment)["error"] == "temporarily_unavailable"
    assert fragment_of(fragment)["state"] == "xyz"


async def test_a_redirect_uri_in_doubt_gets_the_maintenance_page(deployed: Deployment) -> None:
    d = deployed
    await d.server.set_available(False)
    for url in (
        authorize(d.client[0], redirect_uri="https://evil.example/cb"),
        authorize("no-such-client"),
    ):
        response = await d.http.get(url)
        assert response.status_code == 503
        assert "location" not in response.headers
        assert "down for maintenance" in response.text


async def test_the_closed_answers_carry_cors_headers(deployed: Deployment) -> None:
    d = deployed
    await d.server.set_available(False)
    origin = {"origin": "https://spa.example"}
    token = await d.http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, headers=origin
    )
    assert_closed_json(token)
    assert token.headers["access-control-allow-origin"] == "*"
    registration = await d.http.post("/oauth2/register", json={}, headers=origin)
    assert_closed_json(registration)
    assert registration.headers["access-control-allow-origin"] == "*"


async def test_the_local_switch_closes_this_process_alone_and_at_once() -> None:
    shared = MemoryStorage()
    async for a in deploy(shared):
        async for b in deploy(shared):
            a.server.available = False
            assert_closed_json(await request(a, "POST", "/token"))
            assert (await request(b, "POST", "/token")).status_code == 400  # open: a bad request
            assert await shared.maintenance_since() is None
            a.server.available = True
            assert (await request(a, "POST", "/token")).status_code == 400


async def test_the_setting_off_keeps_the_server_unavailable(store: Storage) -> None:
    """Precedence: the setting, this process's switch and the store's must all be on."""
    off = Settings(issuer=ISSUER, available=False, maintenance_retry_after=5)
    async for d in deploy(store, off):
        assert d.server.available is False
        assert_closed_json(await request(d, "POST", "/token"), retry_after="5")
        await d.server.set_available(True)  # the store's switch on: the setting still off
        d.server.available = True
        assert_closed_json(await request(d, "POST", "/token"), retry_after="5")


async def test_the_local_switch_does_not_override_the_stores(store: Storage) -> None:
    async for d in deploy(store):
        await d.server.set_available(False)
        d.server.available = True  # this process's switch on: the store's still off
        assert d.server.available is False
        assert_closed_json(await request(d, "POST", "/token"))
        await d.server.set_available(True)


async def test_another_server_on_the_store_follows_within_the_refresh_interval(
    store: Storage,
) -> None:
    async for a in deploy(store):
        async for b in deploy(store):
            assert (await request(b, "POST", "/token")).status_code == 400
            await a.server.set_available(False)
            assert_closed_json(await request(a, "POST", "/token"))
            b.server.availability._next_read = 0.0  # the interval passed
            assert_closed_json(await request(b, "POST", "/token"))
            await a.server.set_available(True)
            b.server.availability._next_read = 0.0
            assert (await request(b, "POST", "/token")).status_code == 400


class Ticking:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingStore(MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.failing = False

    async def maintenance_since(self) -> int | None:
        self.reads += 1
        if self.failing:
            raise StorageError("the database is gone")
        return await super().maintenance_since()


async def test_the_store_is_read_at_most_once_per_interval() -> None:
    store, monotonic = CountingStore(), Ticking()
    availability = Availability(store, SETTINGS, refresh_interval=1.0, monotonic=monotonic)
    assert availability.refresh_due()
    await availability.refresh()
    assert not availability.refresh_due() and store.reads == 1
    await store.set_maintenance(1_700_000_000)
    monotonic.now += 0.9
    assert not availability.refresh_due() and availability.available  # not read yet
    monotonic.now += 0.2
    assert availability.refresh_due()
    await availability.refresh()
    assert store.reads == 2
    assert availability.available is False
    assert availability.unavailable_since == 1_700_000_000
    # A failing store keeps the last known state, and is asked again an interval later.
    store.failing = True
    monotonic.now += 1.0
    await availability.refresh()
    assert availability.available is False and store.reads == 3
    assert not availability.refresh_due()


async def test_a_token_request_reads_no_store_while_the_state_is_fresh() -> None:
    store = CountingStore()
    async for d in deploy(store):
        before = store.reads
        for _ in range(20):
            await request(d, "POST", "/token")
        assert store.reads - before <= 1


async def test_a_maintenance_answer_is_counted_by_its_error_code() -> None:
    metrics = PrometheusMetrics()
    server = AuthorizationServer(
        MemoryStorage(), SETTINGS, instruments=Instruments(metrics=metrics)
    )
    transport = httpx.ASGITransport(app=Starlette(routes=[Mount("/oauth2", OAuth2App(server))]))
    async with httpx.AsyncClient(transport=transport, base_url="https://as.example") as http:
        await server.set_available(False)
        response = await http.post("/oauth2/token", data={"grant_type": "client_credentials"})
        assert response.status_code == 503
    body, _ = metrics.exposition()
    (line,) = [
        line
        for line in body.decode().splitlines()
        if line.startswith("asgi_oauth_requests_total{") and 'endpoint="/token"' in line
    ]
    assert 'outcome="temporarily_unavailable"' in line
    assert line.endswith(" 1.0")
    await server.close()


async def test_the_stores_keep_when_the_switch_went_off(storage: Storage) -> None:
    assert await storage.maintenance_since() is None
    await storage.set_maintenance(100)
    await storage.set_maintenance(200)  # already off: still since 100
    assert await storage.maintenance_since() == 100
    await storage.set_maintenance(None)
    assert await storage.maintenance_since() is None
    await storage.set_maintenance(None)
    await storage.set_maintenance(300)
    assert await storage.maintenance_since() == 300
