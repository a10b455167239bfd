"""``PostgresStorage`` on the machine's PostgreSQL: what the shared contract cannot show.

Migrations (once, concurrently, refusing a newer schema), races between two
instances (two pools, as two server processes have), faults (an exhausted pool,
a slow statement, an outage, dropped connections), database URLs and the
``migrate``/``purge`` commands. Every test has a fresh schema of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from asgi_oauth import (
    AuthorizationServer,
    InvalidGrantError,
    Settings,
    StorageError,
    TemporarilyUnavailableError,
    Token,
    TokenResponse,
    User,
)
from asgi_oauth.cli import main
from asgi_oauth.crypto import hash_token
from asgi_oauth.storage import Storage, _rows, open_storage

from .conftest import ISSUER, REDIRECT_URI, Credentials
from .helpers import request
from .postgres import POSTGRES_URL
from .tcp_proxy import TCPProxy, tcp_proxy
from .test_grant_authorization_code import exchange, issue_code
from .test_storage import (
    NOW,
    make_client,
    make_code,
    make_device,
    make_key,
    make_pair,
    make_pushed,
    make_token,
)

if TYPE_CHECKING:
    from asgi_oauth.storage.postgres import PostgresStorage

pytestmark = pytest.mark.anyio

TABLES = {
    "schema_version",
    "federated_identities",
    "clients",
    "client_origins",
    "users",
    "authorization_codes",
    "tokens",
    "consents",
    "device_authorizations",
    "failures",
    "signing_keys",
    "pushed_authorization_requests",
    "once_keys",
    "sessions",
    "token_families",
    "request_counts",
    "maintenance",
}


# -- helpers -------------------------------------------------------------------------------


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to its query string."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def with_port(url: str, port: int) -> str:
    """``url`` pointed at 127.0.0.1:``port``, same user, database and query."""
    parts = urlsplit(url)
    user, at, _ = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}{at}127.0.0.1:{port}"))


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def schema_version() -> int:
    from asgi_oauth.storage.postgres.schema import SCHEMA_VERSION

    return SCHEMA_VERSION


def postgres_proxy() -> AbstractContextManager[TCPProxy]:
    """A cuttable TCP proxy in front of the test database."""
    target = urlsplit(POSTGRES_URL)
    return tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432)


async def admin_connection() -> Any:
    import asyncpg

    return await asyncpg.connect(POSTGRES_URL, timeout=5)


def terminate_blocking(application_name: str) -> int:
    """End every backend of ``application_name`` and wait until they are gone, from a
    thread, blocking the caller's event loop meanwhile: the caller's connections are
    dead when it next runs, but it has not read the news yet (as when the database
    restarts between two requests)."""
    ended: list[int] = []

    async def terminate() -> None:
        conn = await admin_connection()
        try:
            ended.append(await terminate_backends(conn, application_name))
        finally:
            await conn.close()

    thread = threading.Thread(target=lambda: asyncio.run(terminate()))
    thread.start()
    thread.join()
    return ended[0]


async def terminate_backends(admin: Any, application_name: str) -> int:
    """End every backend of ``application_name``, waiting until each is gone."""
    ended: int = await admin.fetchval(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))"
        " FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
        application_name,
    )
    return ended


async def wait_for_lock_wait(admin: Any, application_name: str) -> None:
    """Return once a backend of ``application_name`` waits on a lock."""
    deadline = time.monotonic() + 5
    sql = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = $1 AND wait_event_type = 'Lock'"
    )
    while not await admin.fetchval(sql, application_name):
        assert time.monotonic() < deadline, "the store never waited on the lock"
        await asyncio.sleep(0.01)


async def elapsed_failure(operation: Callable[[], Awaitable[object]]) -> float:
    """Seconds ``operation`` took to raise ``StorageError``."""
    started = time.monotonic()
    with pytest.raises(StorageError):
        await operation()
    return time.monotonic() - started


class Stores:
    """Opens ``PostgresStorage`` instances on one schema, tagged with one
    ``application_name`` so their backends can be found, and closes them all."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.application_name = f"asgi_oauth_{schema}"
        self._opened: list[PostgresStorage] = []

    def __call__(self, url: str = POSTGRES_URL, **options: Any) -> PostgresStorage:
        from asgi_oauth.storage.postgres import PostgresStorage

        dsn = with_query(url, application_name=self.application_name)
        store = PostgresStorage(dsn, schema=self.schema, **options)
        self._opened.append(store)
        return store

    async def close(self) -> None:
        for store in self._opened:
            await store.close()


@pytest.fixture
async def stores(pg_schema: str) -> AsyncIterator[Stores]:
    opened = Stores(pg_schema)
    yield opened
    await opened.close()


@pytest.fixture
async def admin(pg_schema: str) -> AsyncIterator[Any]:
    """A direct connection, outside every store, to inspect and provoke."""
    conn = await admin_connection()
    yield conn
    await conn.close()


@pytest.fixture
async def proxy(stores: Stores) -> AsyncIterator[TCPProxy]:
    """A cuttable way to the database; the stores are closed before it goes, so no
    connection through it is left half-way."""
    with postgres_proxy() as started:
        yield started
        await stores.close()


async def tables_in(admin: Any, schema: str) -> set[str]:
    rows = await admin.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
    )
    return {row["table_name"] for row in rows}


async def version_in(admin: Any, schema: str) -> list[int]:
    """Every ``schema_version`` row's version (one row when all is well)."""
    rows = await admin.fetch(f'SELECT version FROM "{schema}".schema_version')
    return [row["version"] for row in rows]


async def token_hashes(admin: Any, schema: str) -> set[str]:
    rows = await admin.fetch(f'SELECT token_hash FROM "{schema}".tokens')
    return {row["token_hash"] for row in rows}


async def insert_tokens(admin: Any, schema: str, tokens: list[Token]) -> None:
    """Tokens written straight into the table, past every store."""
    for token in tokens:
        await admin.execute(
            f'INSERT INTO "{schema}".tokens (token_hash, kind, client_id, scope, family_id,'
            " issued_at, expires_at, subject, audience, parent_hash, replaced_by,"
            " rotated_at, revoked_at, jkt)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            *_rows.token_row(token),
        )


async def warm(*stores: Storage) -> None:
    """Open every store's pool, so a race is between queries and not pool start-ups."""
    for store in stores:
        assert await store.get_token("warm-up") is None


# -- migrations ----------------------------------------------------------------------------


async def test_migrate_creates_every_table_and_records_the_version(
    stores: Stores, admin: Any
) -> None:
    await stores().migrate()
    assert await tables_in(admin, stores.schema) == TABLES
    assert await version_in(admin, stores.schema) == [schema_version()]


async def test_migrate_of_a_fresh_schema_reports_the_migrations_it_ran(stores: Stores) -> None:
    assert await stores().migrate() == schema_version()


async def test_migrate_again_is_a_no_op(stores: Stores, admin: Any) -> None:
    store = stores()
    await store.migrate()
    await store.save_client(make_client())
    assert await store.migrate() == 0
    assert await stores().migrate() == 0  # another instance finds nothing to do either
    assert await tables_in(admin, stores.schema) == TABLES
    assert await version_in(admin, stores.schema) == [schema_version()]
    assert await store.get_client("client-1") is not None


async def test_concurrent_migrations_of_a_fresh_schema_all_succeed(
    stores: Stores, admin: Any
) -> None:
    instances = [stores() for _ in range(5)]
    ran = await asyncio.gather(*(store.migrate() for store in instances))
    assert all(isinstance(count, int) for count in ran)
    assert await tables_in(admin, stores.schema) == TABLES
    assert await version_in(admin, stores.schema) == [schema_version()]


async def test_concurrent_migrations_of_a_fresh_schema_run_once(stores: Stores) -> None:
    instances = [stores() for _ in range(5)]
    ran = await asyncio.gather(*(store.migrate() for store in instances))
    assert sorted(ran) == [0, 0, 0, 0, schema_version()]


async def test_a_schema_newer_than_supported_is_refused_and_left_alone(
    stores: Stores, admin: Any
) -> None:
    newer = schema_version() + 1
    await admin.execute(f'CREATE SCHEMA "{stores.schema}"')
    await admin.execute(
        f'CREATE TABLE "{stores.schema}".schema_version'
        " (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
    )
    await admin.execute(f'INSERT INTO "{stores.schema}".schema_version VALUES (1, $1)', newer)
    store = stores()
    with pytest.raises(StorageError, match="newer than the supported"):
        await store.migrate()
    with pytest.raises(StorageError, match="newer than the supported"):
        await store.get_token("token-1")
    assert await tables_in(admin, stores.schema) == {"schema_version"}
    assert await version_in(admin, stores.schema) == [newer]


async def test_first_use_migrates_without_an_explicit_migrate(stores: Stores, admin: Any) -> None:
    store = stores()
    await store.save_tokens([make_token()])
    assert await store.get_token("token-1") == make_token()
    assert await tables_in(admin, stores.schema) == TABLES
    assert await version_in(admin, stores.schema) == [schema_version()]


async def test_a_version_2_schema_gains_the_openid_connect_columns(
    stores: Stores, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asgi_oauth.storage.postgres import schema as _postgres_schema

    monkeypatch.setattr(_postgres_schema, "MIGRATIONS", _postgres_schema.MIGRATIONS[:2])
    monkeypatch.setattr(_postgres_schema, "SCHEMA_VERSION", 2)
    assert await stores().migrate() == 2
    monkeypatch.undo()
    schema = stores.schema
    await admin.execute(
        f'INSERT INTO "{schema}".clients (client_id, secret_hash, name, redirect_uris,'
        " grant_types, scope, allowed_origins, is_resource_server, require_pkce, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        *_rows.client_row(make_client())[:10],
    )
    await admin.execute(
        f'INSERT INTO "{schema}".authorization_codes (code_hash, client_id, subject, scope,'
        " redirect_uri, family_id, issued_at, expires_at, code_challenge,"
        " code_challenge_method, nonce, consumed_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        *_rows.code_row(make_code())[:12],
    )

    store = stores()
    assert await store.migrate() == schema_version() - 2
    assert await tables_in(admin, schema) == TABLES
    assert await store.get_client("client-1") == make_client()
    assert await store.get_authorization_code("code-1") == make_code()
    assert await store.add_signing_key(make_key("kid-1"), retire_active_until=None, now=NOW)


async def test_a_version_3_schema_gains_the_pushed_request_and_dpop_columns(
    stores: Stores, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asgi_oauth.storage.postgres import schema as _postgres_schema

    monkeypatch.setattr(_postgres_schema, "MIGRATIONS", _postgres_schema.MIGRATIONS[:3])
    monkeypatch.setattr(_postgres_schema, "SCHEMA_VERSION", 3)
    assert await stores().migrate() == 3
    monkeypatch.undo()
    schema = stores.schema
    await admin.execute(
        f'INSERT INTO "{schema}".clients (client_id, secret_hash, name, redirect_uris,'
        " grant_types, scope, allowed_origins, is_resource_server, require_pkce, created_at,"
        " access_token_format, id_token_signed_response_alg)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        *_rows.client_row(make_client())[:12],
    )
    await admin.execute(
        f'INSERT INTO "{schema}".authorization_codes (code_hash, client_id, subject, scope,'
        " redirect_uri, family_id, issued_at, expires_at, code_challenge,"
        " code_challenge_method, nonce, consumed_at, auth_time, acr, amr)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        *_rows.code_row(make_code())[:15],
    )
    await admin.execute(
        f'INSERT INTO "{schema}".device_authorizations (device_code_hash, user_code_hash,'
        ' client_id, scope, family_id, issued_at, expires_at, "interval", status, subject,'
        " last_polled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        *_rows.device_row(make_device())[:11],
    )
    await admin.execute(
        f'INSERT INTO "{schema}".tokens (token_hash, kind, client_id, scope, family_id,'
        " issued_at, expires_at, subject, audience, parent_hash, replaced_by, rotated_at,"
        " revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        *_rows.token_row(make_token())[:13],
    )

    store = stores()
    assert await store.migrate() == schema_version() - 3
    assert await tables_in(admin, schema) == TABLES
    assert await store.get_client("client-1") == make_client()
    assert await store.get_authorization_code("code-1") == make_code()
    assert await store.get_device_authorization("user-code-1") == make_device()
    assert await store.get_token("token-1") == make_token()
    await store.save_pushed_authorization_request(make_pushed())
    assert await store.consume_pushed_authorization_request("par-1", now=NOW)
    assert await store.use_once("jti-1", expires_at=NOW + 60, now=NOW)


async def test_a_version_4_schema_gains_sessions_and_the_families_of_live_refresh_tokens(
    stores: Stores, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asgi_oauth.storage.postgres import schema as _postgres_schema

    monkeypatch.setattr(_postgres_schema, "MIGRATIONS", _postgres_schema.MIGRATIONS[:4])
    monkeypatch.setattr(_postgres_schema, "SCHEMA_VERSION", 4)
    assert await stores().migrate() == 4
    monkeypatch.undo()
    revoked = [
        dataclasses.replace(t, revoked_at=NOW) for t in make_pair("r0", family_id="family-r")
    ]
    # A live family, and a revoked one, as version 4 kept them.
    await insert_tokens(admin, stores.schema, [*make_pair("g0"), *revoked])

    store = stores()
    assert await store.migrate() == schema_version() - 4
    assert await tables_in(admin, stores.schema) == TABLES
    families = await admin.fetch(
        f'SELECT family_id, client_id, subject, expires_at, revoked_at FROM "{stores.schema}"'
        ".token_families"
    )
    assert [tuple(row) for row in families] == [
        ("family-1", "client-1", "user-1", NOW + 86400, None)
    ]
    new = make_pair("g1", parent="g0-rt")
    assert await store.rotate_refresh_token("g0-rt", tokens=new, now=NOW, sealed_response="s")
    rotated = await store.get_token("g0-rt")
    assert rotated is not None and rotated.sealed_response == "s"
    assert await store.rotate_refresh_token("r0-rt", tokens=make_pair("r1"), now=NOW) is False


# -- one winner across instances -----------------------------------------------------------


async def test_first_signing_keys_on_two_instances_leave_one_active_key(
    stores: Stores, admin: Any
) -> None:
    first, second = stores(), stores()
    await warm(first, second)
    keys = [make_key(f"rs-{i:02}") for i in range(30)]
    outcomes = await asyncio.gather(
        *(
            (first, second)[i % 2].add_signing_key(key, retire_active_until=None, now=NOW)
            for i, key in enumerate(keys)
        )
    )
    assert outcomes.count(True) == 1
    rows = await admin.fetch(f'SELECT kid, retired_at FROM "{stores.schema}".signing_keys')
    assert [tuple(row) for row in rows] == [(keys[outcomes.index(True)].kid, None)]


async def test_concurrent_key_rotations_on_two_instances_leave_one_active_key(
    stores: Stores, admin: Any
) -> None:
    first, second = stores(), stores()
    await warm(first, second)
    assert await first.add_signing_key(make_key("rs-old"), retire_active_until=None, now=NOW)
    keys = [make_key(f"rs-{i:02}", created_at=NOW + 1) for i in range(30)]
    outcomes = await asyncio.gather(
        *(
            (first, second)[i % 2].add_signing_key(key, retire_active_until=NOW + 99, now=NOW + 1)
            for i, key in enumerate(keys)
        )
    )
    won = {key.kid for key, added in zip(keys, outcomes, strict=True) if added is True}
    assert won and all(added is False for added in outcomes if added is not True)
    rows = await admin.fetch(
        f'SELECT kid, retired_at, expires_at FROM "{stores.schema}".signing_keys'
    )
    active = [row["kid"] for row in rows if row["retired_at"] is None]
    assert len(active) == 1 and active[0] in won
    assert {row["kid"] for row in rows} == {"rs-old"} | won
    retired = {(row["retired_at"], row["expires_at"]) for row in rows if row["kid"] not in active}
    assert retired == {(NOW + 1, NOW + 99)}
    assert [k.kid for k in await second.list_signing_keys(now=NOW) if k.is_active] == active


async def test_concurrent_code_redemptions_on_two_instances_have_one_winner(
    stores: Stores, admin: Any
) -> None:
    first, second = stores(), stores()
    await warm(first, second)
    code = make_code()
    await first.save_authorization_code(code)
    attempts = [make_pair(f"try-{i}", family_id=code.family_id) for i in range(30)]
    outcomes = await asyncio.gather(
        *(
            (first, second)[i % 2].redeem_authorization_code(code.code_hash, tokens=pair, now=NOW)
            for i, pair in enumerate(attempts)
        )
    )
    assert outcomes.count(True) == 1
    winner = attempts[outcomes.index(True)]
    assert await token_hashes(admin, stores.schema) == {t.token_hash for t in winner}
    redeemed = await second.get_authorization_code(code.code_hash)
    assert redeemed is not None and redeemed.consumed_at == NOW


async def test_concurrent_rotations_on_two_instances_have_one_winner(
    stores: Stores, admin: Any
) -> None:
    first, second = stores(), stores()
    await warm(first, second)
    original = make_token("rt-0", kind="refresh_token", expires_at=NOW + 86400)
    await first.save_tokens([original])
    attempts = [make_pair(f"try-{i}", parent="rt-0") for i in range(30)]
    outcomes = await asyncio.gather(
        *(
            (first, second)[i % 2].rotate_refresh_token("rt-0", tokens=pair, now=NOW)
            for i, pair in enumerate(attempts)
        )
    )
    assert outcomes.count(True) == 1
    winner = attempts[outcomes.index(True)]
    assert await token_hashes(admin, stores.schema) == {"rt-0", *(t.token_hash for t in winner)}
    rotated = await second.get_token("rt-0")
    assert rotated is not None and rotated.replaced_by == winner[1].token_hash


async def rotation_in_flight(admin: Any, schema: str, successors: list[Token]) -> Any:
    """A rotation of family-1 half done on a direct connection, as a store does it: the
    family's row locked and the successors inserted; the open transaction to commit."""
    in_flight = admin.transaction()
    await in_flight.start()
    sql = f'UPDATE "{schema}".token_families SET expires_at = expires_at WHERE family_id = $1'
    await admin.execute(sql, "family-1")
    await insert_tokens(admin, schema, successors)
    return in_flight


async def test_revoking_a_family_waits_for_a_rotation_in_flight_and_revokes_its_tokens(
    stores: Stores, admin: Any
) -> None:
    """What a rotation does, held open on a direct connection: it has locked the family
    row and inserted its successor when the revocation starts; the revocation waits, and
    then revokes the successor too (READ COMMITTED would not see it otherwise)."""
    store = stores()
    await store.save_tokens(make_pair("g0"))
    in_flight = await rotation_in_flight(admin, stores.schema, make_pair("g1", parent="g0-rt"))
    revoking = asyncio.create_task(store.revoke_family("family-1", now=NOW + 1))
    await wait_for_lock_wait(admin, stores.application_name)
    await in_flight.commit()

    assert await revoking == 4
    successor = await store.get_token("g1-rt")
    assert successor is not None and successor.revoked_at == NOW + 1


async def test_deleting_a_user_waits_for_a_rotation_in_flight_and_ends_its_tokens(
    stores: Stores, admin: Any
) -> None:
    store = stores()
    assert await store.add_user(User("user-1", "alice", "scrypt$pw"))
    await store.save_tokens(make_pair("g0"))
    in_flight = await rotation_in_flight(admin, stores.schema, make_pair("g1", parent="g0-rt"))
    deleting = asyncio.create_task(store.delete_user("alice"))
    await wait_for_lock_wait(admin, stores.application_name)
    await in_flight.commit()

    assert await deleting is True
    successor = await store.get_token("g1-at")
    assert successor is not None and successor.revoked_at is not None
    assert await store.get_token("g1-rt") is None
    rotated = make_pair("g2", parent="g0-rt")
    assert await store.rotate_refresh_token("g0-rt", tokens=rotated, now=NOW + 2) is False


async def test_concurrent_attempts_on_two_instances_are_counted_up_to_the_limit(
    stores: Stores,
) -> None:
    first, second = stores(), stores()
    await warm(first, second)
    taken = await asyncio.gather(
        *((first, second)[i % 2].take_attempt("k", limit=10, since=0, now=NOW) for i in range(60))
    )
    assert taken.count(None) == 10


async def test_concurrent_device_redemptions_on_two_instances_have_one_winner(
    stores: Stores, admin: Any
) -> None:
    first, second = stores(), stores()
    await warm(first, second)
    device = make_device()
    await first.save_device_authorization(device)
    assert await second.decide_device_authorization(
        device.user_code_hash, subject="user-1", approved=True, now=NOW
    )
    attempts = [make_pair(f"try-{i}", family_id=device.family_id) for i in range(30)]
    outcomes = await asyncio.gather(
        *(
            (first, second)[i % 2].redeem_device_code(device.device_code_hash, tokens=pair, now=NOW)
            for i, pair in enumerate(attempts)
        )
    )
    assert outcomes.count(True) == 1
    winner = attempts[outcomes.index(True)]
    assert await token_hashes(admin, stores.schema) == {t.token_hash for t in winner}
    redeemed = await first.get_device_authorization(device.user_code_hash)
    assert redeemed is not None and redeemed.status == "consumed"


async def test_concurrent_device_decisions_on_two_instances_have_one_winner(
    stores: Stores,
) -> None:
    first, second = stores(), stores()
    await warm(first, second)
    device = make_device()
    await first.save_device_authorization(device)
    outcomes = await asyncio.gather(
        *(
            (first, second)[i % 2].decide_device_authorization(
                device.user_code_hash, subject=f"user-{i}", approved=i % 3 != 0, now=NOW
            )
            for i in range(30)
        )
    )
    assert outcomes.count(True) == 1
    won = outcomes.index(True)
    decided = await second.get_device_authorization(device.user_code_hash)
    assert decided is not None
    assert decided.subject == f"user-{won}"
    assert decided.status == ("approved" if won % 3 != 0 else "denied")


async def test_concurrent_consumptions_of_a_pushed_request_on_two_instances_have_one_winner(
    stores: Stores, admin: Any
) -> None:
    first, second = stores(), stores()
    await warm(first, second)
    for n in range(5):
        await first.save_pushed_authorization_request(make_pushed(f"par-{n}"))
        outcomes = await asyncio.gather(
            *(
                (first, second)[i % 2].consume_pushed_authorization_request(f"par-{n}", now=NOW + i)
                for i in range(30)
            )
        )
        assert outcomes.count(True) == 1
        consumed_at = await admin.fetchval(
            f'SELECT consumed_at FROM "{stores.schema}".pushed_authorization_requests'
            " WHERE request_uri_hash = $1",
            f"par-{n}",
        )
        assert consumed_at == NOW + outcomes.index(True)


@pytest.mark.parametrize("known", ["unknown", "expired"])
async def test_concurrent_uses_of_a_key_on_two_instances_have_one_winner(
    stores: Stores, admin: Any, known: str
) -> None:
    first, second = stores(), stores()
    await warm(first, second)
    for n in range(5):
        key = f"jti-{n}"
        if known == "expired":
            assert await first.use_once(key, expires_at=NOW, now=NOW - 60)
        outcomes = await asyncio.gather(
            *(
                (first, second)[i % 2].use_once(key, expires_at=NOW + 60 + i, now=NOW)
                for i in range(30)
            )
        )
        assert outcomes.count(True) == 1
        expires_at = await admin.fetchval(
            f'SELECT expires_at FROM "{stores.schema}".once_keys WHERE key = $1', key
        )
        assert expires_at == NOW + 60 + outcomes.index(True)


# -- one winner across servers -------------------------------------------------------------


async def register_spa(server: AuthorizationServer) -> Credentials:
    """A public client (PKCE, no secret: no scrypt in the way of a race)."""
    registered = await server.register_client(
        name="SPA",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token"],
        scope=["read", "write"],
        public=True,
    )
    return Credentials(registered.client.client_id, None)


@pytest.fixture
async def servers(
    stores: Stores,
) -> AsyncIterator[tuple[AuthorizationServer, AuthorizationServer]]:
    """Two servers on two stores of one schema: two processes behind a load balancer."""
    settings = Settings(issuer=ISSUER)
    pair = (AuthorizationServer(stores(), settings), AuthorizationServer(stores(), settings))
    await warm(pair[0].storage, pair[1].storage)
    yield pair
    for server in pair:
        await server.close()


async def test_concurrent_code_exchanges_on_two_servers_issue_once_and_revoke_on_replay(
    servers: tuple[AuthorizationServer, AuthorizationServer],
) -> None:
    spa = await register_spa(servers[0])
    code = await issue_code(servers[0], spa)
    outcomes = await asyncio.gather(
        *(servers[i % 2].token(request(spa, **exchange(spa, code))) for i in range(40)),
        return_exceptions=True,
    )
    issued = [o for o in outcomes if isinstance(o, TokenResponse)]
    assert len(issued) == 1
    assert all(isinstance(o, InvalidGrantError) for o in outcomes if o is not issued[0])
    # RFC 6749 §4.1.2: the replays revoke what the code issued, whichever server saw them.
    for value in (issued[0].access_token, issued[0].refresh_token):
        assert value is not None
        token = await servers[1].storage.get_token(hash_token(value))
        assert token is not None and token.revoked_at is not None
        for server in servers:
            assert not (await server.introspect_token(value)).active


async def test_concurrent_refreshes_on_two_servers_rotate_once(
    servers: tuple[AuthorizationServer, AuthorizationServer], admin: Any, stores: Stores
) -> None:
    spa = await register_spa(servers[0])
    code = await issue_code(servers[0], spa)
    pair = await servers[0].token(request(spa, **exchange(spa, code)))
    assert pair.refresh_token is not None
    form = {"grant_type": "refresh_token", "refresh_token": pair.refresh_token}
    outcomes = await asyncio.gather(
        *(servers[i % 2].token(request(spa, **form)) for i in range(20)),
        return_exceptions=True,
    )
    issued = [o for o in outcomes if isinstance(o, TokenResponse)]
    assert len(issued) == 1 and issued[0].refresh_token is not None
    assert all(isinstance(o, InvalidGrantError) for o in outcomes if o is not issued[0])
    old_hash = hash_token(pair.refresh_token)
    children = await admin.fetch(
        f'SELECT kind FROM "{stores.schema}".tokens WHERE parent_hash = $1', old_hash
    )
    assert sorted(row["kind"] for row in children) == ["access_token", "refresh_token"]
    old = await servers[1].storage.get_token(old_hash)
    assert old is not None and old.replaced_by == hash_token(issued[0].refresh_token)


# -- faults --------------------------------------------------------------------------------


async def test_an_exhausted_pool_refuses_within_acquire_timeout(stores: Stores, admin: Any) -> None:
    store = stores(min_size=1, max_size=1, acquire_timeout=0.3)
    code = make_code()
    await store.save_authorization_code(code)
    # The store's only connection waits on a row the admin connection locked.
    lock = admin.transaction()
    await lock.start()
    await admin.execute(
        f'SELECT 1 FROM "{stores.schema}".authorization_codes WHERE code_hash = $1 FOR UPDATE',
        code.code_hash,
    )
    holder = asyncio.create_task(
        store.redeem_authorization_code(code.code_hash, tokens=make_pair("won"), now=NOW)
    )
    try:
        await wait_for_lock_wait(admin, stores.application_name)
        elapsed = await elapsed_failure(lambda: store.get_token("won-at"))
    finally:
        await lock.rollback()
    assert 0.25 <= elapsed < 2
    assert await holder is True
    assert await store.get_token("won-at") is not None


async def test_a_statement_past_command_timeout_fails_and_writes_nothing(
    stores: Stores, admin: Any
) -> None:
    store = stores(command_timeout=0.5)
    code = make_code()
    await store.save_authorization_code(code)
    lock = admin.transaction()
    await lock.start()
    await admin.execute(
        f'SELECT 1 FROM "{stores.schema}".authorization_codes WHERE code_hash = $1 FOR UPDATE',
        code.code_hash,
    )
    try:
        elapsed = await elapsed_failure(
            lambda: store.redeem_authorization_code(
                code.code_hash, tokens=make_pair("late"), now=NOW
            )
        )
    finally:
        await lock.rollback()
    assert 0.4 <= elapsed < 2
    assert await store.get_token("late-at") is None
    assert await store.redeem_authorization_code(code.code_hash, tokens=make_pair("won"), now=NOW)


async def test_an_outage_fails_fast_and_the_same_store_recovers(
    stores: Stores, proxy: TCPProxy
) -> None:
    store = stores(with_port(POSTGRES_URL, proxy.port), connect_timeout=0.5)
    await store.save_tokens([make_token("before")])
    proxy.cut()
    assert await elapsed_failure(lambda: store.get_token("before")) < 3
    assert await elapsed_failure(lambda: store.save_tokens([make_token("during")])) < 3
    assert await elapsed_failure(lambda: store.get_token("before")) < 3
    proxy.restore()
    assert await store.get_token("before") is not None
    await store.save_tokens([make_token("after")])
    assert await store.get_token("after") is not None
    assert await store.get_token("during") is None


async def test_a_read_right_after_a_restart_is_retried(stores: Stores, proxy: TCPProxy) -> None:
    store = stores(with_port(POSTGRES_URL, proxy.port), connect_timeout=0.5)
    await store.save_tokens([make_token()])
    # Every connection drops and the database answers again before the next request.
    proxy.cut()
    proxy.restore()
    assert await store.get_token("token-1") is not None


async def test_an_unreachable_database_at_first_use_fails_then_recovers(
    stores: Stores, proxy: TCPProxy
) -> None:
    proxy.cut()
    store = stores(with_port(POSTGRES_URL, proxy.port), connect_timeout=0.5)
    assert await elapsed_failure(lambda: store.get_token("token-1")) < 3
    assert await elapsed_failure(lambda: store.save_tokens([make_token()])) < 3
    proxy.restore()  # the pool is created on the next call, not cached as failed
    assert await store.get_token("token-1") is None
    await store.save_tokens([make_token()])
    assert await store.get_token("token-1") is not None


async def test_a_database_that_never_answers_fails_within_connect_timeout(
    stores: Stores,
) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) and says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        store = stores(with_port(POSTGRES_URL, silent.getsockname()[1]), connect_timeout=0.5)
        elapsed = await elapsed_failure(lambda: store.get_token("token-1"))
    assert 0.4 <= elapsed < 2


async def test_the_pool_replaces_connections_the_database_ended(stores: Stores, admin: Any) -> None:
    store = stores()
    await store.save_tokens([make_token()])
    assert await terminate_backends(admin, stores.application_name) >= 1
    assert await store.get_token("token-1") is not None
    await store.save_tokens([make_token("token-2")])
    assert await store.get_token("token-2") is not None


async def test_a_read_on_connections_the_database_ended_is_retried(stores: Stores) -> None:
    store = stores()
    await store.save_tokens([make_token()])
    assert await store.get_token("token-1") is not None
    assert terminate_blocking(stores.application_name) >= 1
    assert await store.get_token("token-1") is not None
    await store.save_tokens([make_token("token-2")])
    assert await store.get_token("token-2") is not None


async def test_the_server_answers_503_during_an_outage_and_recovers(
    stores: Stores, proxy: TCPProxy
) -> None:
    store = stores(with_port(POSTGRES_URL, proxy.port), connect_timeout=0.5)
    server = AuthorizationServer(store, Settings(issuer=ISSUER))
    spa = await register_spa(server)
    code = await issue_code(server, spa)
    proxy.cut()
    with pytest.raises(TemporarilyUnavailableError) as caught:
        await server.token(request(spa, **exchange(spa, code)))
    assert caught.value.status == 503
    assert caught.value.headers["Retry-After"].isdigit()
    proxy.restore()
    # The failed attempt consumed nothing: the same code still redeems.
    response = await server.token(request(spa, **exchange(spa, code)))
    assert (await server.introspect_token(response.access_token)).active
    await server.close()


# -- database URLs -------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
async def test_open_storage_keeps_the_tables_in_the_schema_the_url_names(
    scheme: str, pg_schema: str, admin: Any
) -> None:
    from asgi_oauth.storage.postgres import PostgresStorage

    url = scheme + ":" + POSTGRES_URL.partition(":")[2]
    store = open_storage(with_query(url, schema=pg_schema))
    try:
        assert isinstance(store, PostgresStorage)
        await store.save_client(make_client())
    finally:
        await store.close()
    rows = await admin.fetch(f'SELECT client_id FROM "{pg_schema}".clients')
    assert [row["client_id"] for row in rows] == ["client-1"]


async def test_open_storage_passes_other_url_parameters_to_the_connection(
    pg_schema: str, admin: Any
) -> None:
    name = f"asgi_oauth_url_{pg_schema}"
    store = open_storage(with_query(POSTGRES_URL, schema=pg_schema, application_name=name))
    try:
        assert await store.get_token("token-1") is None
        found = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", name
        )
        assert found >= 1
    finally:
        await store.close()


@pytest.mark.parametrize("schema", ["a;drop", "Public", "1st", "", "x" * 64])
def test_open_storage_refuses_an_invalid_schema_name(schema: str) -> None:
    pytest.importorskip("asyncpg")
    with pytest.raises(ValueError, match="schema"):
        open_storage(with_query(POSTGRES_URL, schema=schema))


# -- the command line ----------------------------------------------------------------------


def test_cli_purge_deletes_expired_rows_and_keeps_live_ones(
    pg_schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = with_query(POSTGRES_URL, schema=pg_schema)
    now = int(time.time())
    past, future = now - 100, now + 3600

    async def populate() -> None:
        store = open_storage(url)
        try:
            for age, expires_at in (("old", past), ("new", future)):
                await store.save_authorization_code(make_code(f"code-{age}", expires_at=expires_at))
                await store.save_tokens([make_token(f"token-{age}", expires_at=expires_at)])
                device = make_device(f"dev-{age}", f"uc-{age}", expires_at=expires_at)
                await store.save_device_authorization(device)
        finally:
            await store.close()

    async def remaining() -> dict[str, list[str]]:
        conn = await admin_connection()
        try:
            found = {}
            for table, key in (
                ("authorization_codes", "code_hash"),
                ("tokens", "token_hash"),
                ("device_authorizations", "device_code_hash"),
            ):
                rows = await conn.fetch(f'SELECT {key} FROM "{pg_schema}".{table}')
                found[table] = sorted(row[0] for row in rows)
            return found
        finally:
            await conn.close()

    asyncio.run(populate())
    assert main(["purge", "--db", url]) == 0
    assert (
        capsys.readouterr().out == "purged 3 expired codes, device codes, tokens and signing keys\n"
    )
    assert asyncio.run(remaining()) == {
        "authorization_codes": ["code-new"],
        "tokens": ["token-new"],
        "device_authorizations": ["dev-new"],
    }


def test_cli_migrate_creates_the_schema(pg_schema: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = with_query(POSTGRES_URL, schema=pg_schema)
    assert main(["migrate", "--db", url]) == 0
    assert capsys.readouterr().out == f"database ready: {url}\n"

    async def inspect() -> tuple[set[str], list[int]]:
        conn = await admin_connection()
        try:
            return await tables_in(conn, pg_schema), await version_in(conn, pg_schema)
        finally:
            await conn.close()

    assert asyncio.run(inspect()) == (TABLES, [schema_version()])


@pytest.mark.parametrize("command", ["migrate", "purge"])
def test_cli_reports_an_unreachable_database_in_one_line(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("asyncpg")
    url = with_query(with_port(POSTGRES_URL, closed_port()), schema="unreachable")
    assert main([command, "--db", url]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("asgi-oauth: ")
    assert captured.err.count("\n") == 1 and captured.err.endswith("\n")
