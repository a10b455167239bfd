"""The ASGI apps ``bench/run.py`` serves with uvicorn (``--app-dir bench``, ``apps:NAME``).

``hello`` is the ceiling: the least an ASGI app can do. ``oauth`` is ``OAuth2App``
on the store named by the environment, behind a lifespan handler that registers
the benchmark's clients on uvicorn's own event loop before the first request:

- ``BENCH_STORE``: ``memory`` (default), ``sqlite`` or ``postgres``;
- ``BENCH_DB``: the SQLite file (``synchronous="FULL"``: every commit is fsync'd);
- ``BENCH_POSTGRES_URL`` (default ``DEFAULT_POSTGRES_URL``), ``BENCH_POSTGRES_SCHEMA``
  (required: the bench creates a fresh schema per round and drops it afterwards)
  and ``BENCH_POSTGRES_POOL`` (the pool's fixed size, default
  ``DEFAULT_POSTGRES_POOL``): ``PostgresStorage`` on that schema;
- ``BENCH_ISSUER``: the issuer URL (default ``http://127.0.0.1:8000``);
- ``BENCH_ACCESS_TOKEN_LIFETIME`` and ``BENCH_PURGE_INTERVAL``: seconds, optional;
- ``BENCH_RATE_LIMIT``: optional, both ``rate_limit_per_client`` and
  ``rate_limit_per_address`` (requests per 60 s window);
- ``BENCH_JWT_ALG``: optional, ``RS256``, ``ES256`` or ``EdDSA``: access tokens are
  JWTs (RFC 9068) signed with it (``key_encryption_key`` is then the bench's own).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

from starlette.types import Message, Receive, Scope, Send

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.clients import new_client
from asgi_oauth.crypto import hash_secret
from asgi_oauth.storage import MemoryStorage, SQLiteStorage, Storage

#: The confidential client that asks for tokens (client_credentials, HTTP Basic).
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-client-secret-0123456789abcdef"
#: Where the PostgreSQL scenarios connect, unless ``BENCH_POSTGRES_URL`` says otherwise.
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
#: Connections in the PostgreSQL store's pool (min_size = max_size): see bench/README.md.
DEFAULT_POSTGRES_POOL = 10

#: The resource server that introspects them (``is_resource_server=True``).
RESOURCE_SERVER_ID = "bench-resource-server"
RESOURCE_SERVER_SECRET = "bench-resource-server-secret-0123456789"

#: Encrypts the signing keys of the JWT scenarios at rest (the store is thrown away).
BENCH_KEY_ENCRYPTION_KEY = "bench-key-encryption-key-0123456789abcdef"

_HELLO_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"5")]


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """GET anything: 200 ``hello``. The ceiling every other scenario is compared to."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": _HELLO_HEADERS})
        await send({"type": "http.response.body", "body": b"hello"})
    elif scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


class BenchApp:
    """``OAuth2App`` served alone, its lifespan's startup preceded by registering the
    benchmark's two clients: the rest of startup and shutdown is ``OAuth2App``'s own."""

    def __init__(self, server: AuthorizationServer) -> None:
        self.server = server
        self.app = OAuth2App(server)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def clients_first() -> Message:
            # A failure here ends the lifespan before startup completes: uvicorn exits.
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.register_clients()
            return message

        await self.app(scope, clients_first, send)

    async def register_clients(self) -> None:
        insecure = self.server.settings.insecure_transport
        for client_id, secret, is_resource_server in (
            (CLIENT_ID, CLIENT_SECRET, False),
            (RESOURCE_SERVER_ID, RESOURCE_SERVER_SECRET, True),
        ):
            registered = new_client(
                name=client_id,
                grant_types=("client_credentials",),
                is_resource_server=is_resource_server,
                insecure_transport=insecure,
                client_id=client_id,
            )
            client = dataclasses.replace(registered.client, secret_hash=hash_secret(secret))
            await self.server.storage.save_client(client)


def storage_from_env() -> Storage:
    """The store ``BENCH_STORE`` names (``middleware_apps`` uses it too)."""
    kind = os.environ.get("BENCH_STORE", "memory")
    if kind == "memory":
        return MemoryStorage()
    if kind == "sqlite":
        return SQLiteStorage(os.environ["BENCH_DB"], synchronous="FULL")
    if kind == "postgres":
        from asgi_oauth.storage.postgres import PostgresStorage

        pool = int(os.environ.get("BENCH_POSTGRES_POOL", DEFAULT_POSTGRES_POOL))
        return PostgresStorage(
            os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
            schema=os.environ["BENCH_POSTGRES_SCHEMA"],
            min_size=pool,
            max_size=pool,
        )
    raise ValueError(f"BENCH_STORE must be 'memory', 'sqlite' or 'postgres', not {kind!r}")


def _settings_from_env() -> Settings:
    settings = Settings(
        issuer=os.environ.get("BENCH_ISSUER", "http://127.0.0.1:8000"), insecure_transport=True
    )
    lifetime = os.environ.get("BENCH_ACCESS_TOKEN_LIFETIME")
    if lifetime:
        settings = dataclasses.replace(settings, access_token_lifetime=int(lifetime))
    purge_interval = os.environ.get("BENCH_PURGE_INTERVAL")
    if purge_interval:
        settings = dataclasses.replace(settings, purge_interval=int(purge_interval))
    rate_limit = os.environ.get("BENCH_RATE_LIMIT")
    if rate_limit:
        settings = dataclasses.replace(
            settings, rate_limit_per_client=int(rate_limit), rate_limit_per_address=int(rate_limit)
        )
    jwt_alg = os.environ.get("BENCH_JWT_ALG")
    if jwt_alg:
        settings = dataclasses.replace(
            settings,
            key_encryption_key=BENCH_KEY_ENCRYPTION_KEY,
            access_token_format="jwt",
            access_token_signing_alg=jwt_alg,  # type: ignore[arg-type]
        )
    return settings


class PurgeEndpoint:
    """``app`` with ``POST /bench/purge`` in front: ``server.purge_expired()``, the purge
    ``asgi-oauth purge`` and the background housekeeping run, started when the
    benchmark chooses (``bench/scale.py``). Answers ``{"purged": n, "seconds": s}``."""

    def __init__(self, app: BenchApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/bench/purge":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        purged = await self.app.server.purge_expired()
        seconds = time.perf_counter() - start
        body = json.dumps({"purged": purged, "seconds": seconds}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


oauth = BenchApp(AuthorizationServer(storage_from_env(), _settings_from_env()))
#: ``oauth`` with the purge endpoint (the same server, not a second one).
oauth_purge = PurgeEndpoint(oauth)
