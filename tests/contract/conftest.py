"""The contract every store keeps as it is deployed: concurrency, limits, revocation,
sessions and bad input, run against real server processes.

A ``Cluster`` is the authorization server as a deployment runs it:

* ``memory``: one process, in-process (``MemoryStorage`` is atomic by construction,
  so this run checks the logic, not the atomicity);
* ``sqlite``: one uvicorn with four worker processes on one SQLite file;
* ``postgres``: three uvicorn instances on one PostgreSQL schema, as behind a
  load balancer.

Every test fires its requests at once, spread over the instances, each on its own
connection, and judges what the store holds afterwards. A cluster is shared by the
tests of a module (each test makes its own codes, tokens and users).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import pytest

from asgi_oauth import AuthorizationServer
from asgi_oauth.storage import MemoryStorage
from tests.postgres import POSTGRES_URL, drop_schema, new_schema_name, postgres_unavailable
from tests.servers.host import host_app, server_settings
from tests.servers.process import (
    Deployment,
    ServerProcess,
    deploy,
    provision,
    run_on_store,
    serve_all,
)

StoreKind = Literal["memory", "sqlite", "postgres"]
T = TypeVar("T")

SQLITE_WORKERS = 4
POSTGRES_INSTANCES = 3
#: Send one request: the client of the instance it goes to, and its number.
Send = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


@dataclass
class Cluster:
    """The server instances of one deployment, and a way to its store."""

    store: StoreKind
    deployment: Deployment
    #: The base URL of each instance (one for SQLite: its workers share the socket).
    urls: tuple[str, ...]
    processes: list[ServerProcess] = field(default_factory=list)
    #: The in-process server of a memory cluster, and the ASGI app around it.
    server: AuthorizationServer | None = None
    app: Any = None
    _log: list[str] = field(default_factory=list)

    def http(self, instance: int = 0, connections: int = 10) -> httpx.AsyncClient:
        """An HTTP client for one instance, with up to ``connections`` open at once."""
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        url = self.urls[instance % len(self.urls)]
        if self.app is not None:
            transport = httpx.ASGITransport(app=self.app, client=("127.0.0.1", 50000))
            return httpx.AsyncClient(transport=transport, base_url=url, timeout=30)
        return httpx.AsyncClient(base_url=url, timeout=30, limits=limits)

    async def spread(self, count: int, send: Send) -> list[httpx.Response]:
        """``count`` requests at once, alternating over the instances."""
        clients = [self.http(i, connections=count) for i in range(len(self.urls))]
        try:
            return await asyncio.gather(*(send(clients[i % len(clients)], i) for i in range(count)))
        finally:
            for client in clients:
                await client.aclose()

    async def on_store(self, fn: Callable[[AuthorizationServer], Awaitable[T]]) -> T:
        """Run ``fn`` on a server over the cluster's store, as another process would (the
        command line): for a memory cluster, on its one server."""
        if self.server is not None:
            return await fn(self.server)
        deployment = self.deployment
        return await asyncio.to_thread(run_on_store, deployment.db, deployment.issuer, fn)

    def events(self, name: str) -> list[str]:
        """The security events called ``name`` the instances logged so far."""
        lines = [line for p in self.processes for line in p.stderr().splitlines()]
        return [line for line in [*lines, *self._log] if f"event={name}" in line]


class _ListHandler(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module", params=["memory", "sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> StoreKind:
    kind: StoreKind = request.param
    if kind == "postgres":
        reason = postgres_unavailable()
        if reason is not None:
            pytest.skip(reason)
    return kind


def start_cluster(
    kind: StoreKind, directory: Path, stack: ExitStack, **settings: object
) -> Cluster:
    """A cluster of ``kind`` with ``settings`` on top of the test servers' own."""
    if kind == "memory":
        return _memory_cluster(stack, **settings)
    database_url = None
    if kind == "postgres":
        schema = new_schema_name()
        stack.callback(drop_schema, schema)
        database_url = f"{POSTGRES_URL}?schema={schema}"
    deployment = replace(
        deploy(directory, database_url),
        # Instances and workers share the session key, as behind one load balancer.
        secret_key=secrets.token_urlsafe(32),
        settings_json=json.dumps(settings),
    )
    if kind == "sqlite":
        deployments = [replace(deployment, workers=SQLITE_WORKERS)]
    else:
        deployments = [deployment] + [deployment.instance() for _ in range(POSTGRES_INSTANCES - 1)]
    processes = stack.enter_context(serve_all("uvicorn", deployments))
    return Cluster(kind, deployment, tuple(p.url for p in processes), processes)


def _memory_cluster(stack: ExitStack, **settings: object) -> Cluster:
    issuer = "http://127.0.0.1:8000/oauth2"
    server = AuthorizationServer(
        MemoryStorage(),
        server_settings(issuer, secret_key=secrets.token_urlsafe(32), purge_interval=0, **settings),
    )
    client, resource_server, native = asyncio.run(provision(server))
    deployment = Deployment(
        db="memory:",
        port=8000,
        issuer=issuer,
        log_dir=Path("."),
        client=client,
        resource_server=resource_server,
        public_client_id=native,
    )
    log: list[str] = []
    handler = _ListHandler(log)
    logger = logging.getLogger("asgi_oauth")
    logger.addHandler(handler)
    stack.callback(logger.removeHandler, handler)
    return Cluster(
        "memory",
        deployment,
        ("http://127.0.0.1:8000",),
        server=server,
        app=host_app(server),
        _log=log,
    )


@pytest.fixture(scope="module")
def cluster(store_kind: StoreKind, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The module's cluster on ``store_kind``: the test servers' settings, clients may
    register themselves (RFC 7591), and devices poll every 5 s (so polls racing across
    a second's edge are still too fast)."""
    with ExitStack() as stack:
        directory = tmp_path_factory.mktemp(store_kind)
        yield start_cluster(
            store_kind, directory, stack, client_registration="open", device_poll_interval=5
        )


def statuses(responses: Sequence[httpx.Response]) -> list[tuple[int, object]]:
    """Each response's status and RFC 6749 ``error`` (None on success)."""
    out: list[tuple[int, object]] = []
    for response in responses:
        error = None
        if response.headers.get("content-type", "").startswith("application/json"):
            error = response.json().get("error")
        out.append((response.status_code, error))
    return out
