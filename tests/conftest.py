"""Shared fixtures: a server on a memory store, registered clients, an HTTP client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.storage import MemoryStorage, SQLiteStorage, Storage

from .https_helpers import DocumentHost, serve_documents
from .postgres import drop_schema, new_schema_name, postgres_unavailable

ISSUER = "https://as.example/oauth2"
REDIRECT_URI = "https://app.example/cb"


class FakeClock:
    """A settable clock, so expiry is tested without sleeping."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str | None

    @property
    def basic(self) -> tuple[str, str]:
        assert self.client_secret is not None
        return (self.client_id, self.client_secret)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """In CI (ASGI_OAUTH_REQUIRE_ALL=1) a test skipped for a missing service fails instead."""
    report = yield
    # An expected failure (xfail) is reported as skipped too; it is no missing service.
    missing = report.skipped and not hasattr(report, "wasxfail")
    if missing and os.environ.get("ASGI_OAUTH_REQUIRE_ALL") == "1":
        report.outcome = "failed"
        report.longrepr = f"skipped, but ASGI_OAUTH_REQUIRE_ALL=1 requires it: {report.longrepr}"
    return report


@pytest.fixture
def pg_schema() -> Generator[str, None, None]:
    """A fresh, empty PostgreSQL schema for one test, dropped afterwards."""
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(reason)
    name = new_schema_name()
    yield name
    drop_schema(name)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings() -> Settings:
    return Settings(issuer=ISSUER)


@pytest.fixture
async def server(settings: Settings, clock: FakeClock) -> AsyncIterator[AuthorizationServer]:
    server = AuthorizationServer(MemoryStorage(), settings, clock=clock)
    yield server
    await server.close()


@pytest.fixture
async def confidential(server: AuthorizationServer) -> Credentials:
    """A confidential client that may use every grant."""
    registered = await server.register_client(
        name="Confidential",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "client_credentials", "refresh_token", "password"],
        scope=["read", "write"],
        allowed_origins=["https://app.example"],
    )
    return Credentials(registered.client.client_id, registered.client_secret)


@pytest.fixture
async def public(server: AuthorizationServer) -> Credentials:
    """A public (browser or native) client: PKCE, no secret."""
    registered = await server.register_client(
        name="Public",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token"],
        scope=["read", "write"],
        public=True,
        allowed_origins=["https://spa.example"],
    )
    return Credentials(registered.client.client_id, None)


@pytest.fixture
async def resource_server(server: AuthorizationServer) -> Credentials:
    registered = await server.register_client(
        name="API", grant_types=["client_credentials"], is_resource_server=True
    )
    return Credentials(registered.client.client_id, registered.client_secret)


@pytest.fixture
def oauth_app(server: AuthorizationServer) -> OAuth2App:
    return OAuth2App(server)


@pytest.fixture
async def http(oauth_app: OAuth2App) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the app mounted at /oauth2 in Starlette, as in the README."""
    app = Starlette(
        routes=[
            Mount("/oauth2", app=oauth_app),
            Route(oauth_app.metadata_path, oauth_app.metadata_app),
        ]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://as.example") as client:
        yield client


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocumentHost]:
    """An https server on loopback serving client ID metadata documents."""
    with serve_documents(tmp_path_factory.mktemp("documents")) as host:
        yield host


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    """A fresh store of each kind, the machine's PostgreSQL included (a schema of its own;
    a skip without PostgreSQL, a failure under ASGI_OAUTH_REQUIRE_ALL=1)."""
    store: Storage
    if request.param == "memory":
        store = MemoryStorage()
    elif request.param == "sqlite":
        store = SQLiteStorage(tmp_path / "store.db")
    else:
        from asgi_oauth.storage.postgres import PostgresStorage

        from .postgres import POSTGRES_URL

        store = PostgresStorage(POSTGRES_URL, schema=request.getfixturevalue("pg_schema"))
    yield store
    await store.close()


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """A fresh store of each kind that needs no service: the memory store, a SQLite file."""
    if request.param == "memory":
        return MemoryStorage()
    return SQLiteStorage(tmp_path / "o.db")
