"""What only ``SQLiteStorage`` promises: durability, migrations, group commit, failures."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from asgi_oauth.errors import StorageError
from asgi_oauth.models import (
    AuthorizationCode,
    BrowserSession,
    Client,
    DeviceAuthorization,
    PushedAuthorizationRequest,
    SigningKey,
    Token,
    User,
)
from asgi_oauth.storage import SQLiteStorage, _rows, sqlite
from asgi_oauth.storage.sqlite import schema as _sqlite_schema

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "oauth.db"


@pytest.fixture
async def store(path: Path) -> AsyncIterator[SQLiteStorage]:
    store = SQLiteStorage(path)
    yield store
    await store.close()


def make_client() -> Client:
    return Client("client-1", allowed_origins=("https://app.example",), created_at=NOW)


def make_user() -> User:
    return User("user-1", "alice", "scrypt$pw", created_at=NOW)


def make_code() -> AuthorizationCode:
    return AuthorizationCode(
        "code-1", "client-1", "user-1", frozenset({"openid"}), None, "family-c", NOW, NOW + 60
    )


def make_token(token_hash: str = "token-1", **kw: Any) -> Token:
    fields: dict[str, Any] = {"kind": "access_token", "client_id": "client-1"}
    fields |= {"scope": frozenset({"openid"}), "family_id": "family-1"}
    fields |= {"issued_at": NOW, "expires_at": NOW + 3600}
    return Token(token_hash=token_hash, **{**fields, **kw})


def make_pair(prefix: str, parent: str | None = None) -> list[Token]:
    return [
        make_token(f"{prefix}-at", parent_hash=parent),
        make_token(f"{prefix}-rt", kind="refresh_token", parent_hash=parent),
    ]


def read_file(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Query the file over a connection of its own, as another process would."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


class Gate:
    """Holds the writer thread inside a job, so that the writes behind it queue up."""

    def __init__(self, store: SQLiteStorage) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.task = asyncio.ensure_future(store._write(self._hold))

    def _hold(self, conn: sqlite3.Connection) -> None:
        self.entered.set()
        self.opened.wait(10)

    async def __aenter__(self) -> Gate:
        assert await asyncio.to_thread(self.entered.wait, 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.opened.set()
        await self.task


async def until_queued(store: SQLiteStorage, count: int) -> None:
    """Let the event loop hand ``count`` groups of writes to the (held) writer."""
    for _ in range(100):
        if store._queue.qsize() >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError("the writes never reached the writer's queue")


async def test_data_survives_close_and_reopen(path: Path) -> None:
    client, user, code = make_client(), make_user(), make_code()
    tokens = make_pair("g0")
    first = SQLiteStorage(path)
    await first.save_client(client)
    await first.save_user(user)
    await first.save_authorization_code(code)
    await first.save_tokens(tokens)
    await first.close()

    second = SQLiteStorage(path)
    try:
        assert await second.get_client("client-1") == client
        assert await second.is_allowed_origin("https://app.example") is True
        assert await second.get_user("alice") == user
        assert await second.get_authorization_code("code-1") == code
        assert [await second.get_token(t.token_hash) for t in tokens] == tokens
    finally:
        await second.close()


async def test_synchronous_normal_works_too(path: Path) -> None:
    store = SQLiteStorage(path, synchronous="NORMAL")
    try:
        await store.save_tokens([make_token()])
        assert await store.get_token("token-1") == make_token()
    finally:
        await store.close()
    assert read_file(path, "PRAGMA journal_mode") == [("wal",)]


async def test_migrate_is_idempotent_and_keeps_existing_tables(path: Path) -> None:
    store = SQLiteStorage(path)
    await store.migrate()
    await store.migrate()
    await store.save_tokens([make_token()])
    await store.close()
    version = read_file(path, "SELECT version FROM schema_version")
    tables = read_file(path, "SELECT type, name, rootpage, sql FROM sqlite_schema ORDER BY name")
    assert version == [(_sqlite_schema.SCHEMA_VERSION,)]
    assert {
        "clients",
        "client_origins",
        "users",
        "authorization_codes",
        "tokens",
        "consents",
        "device_authorizations",
    } <= {name for _, name, _, _ in tables}

    again = SQLiteStorage(path)
    try:
        await again.migrate()
        assert await again.get_token("token-1") == make_token()
    finally:
        await again.close()
    assert read_file(path, "SELECT version FROM schema_version") == version
    assert read_file(path, "SELECT type, name, rootpage, sql FROM sqlite_schema ORDER BY name") == (
        tables
    )

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert _sqlite_schema.migrate(conn) == 0
    finally:
        conn.close()


#: Clients, codes and tokens as schema versions 1 to 4 stored them.
OLD_INSERT_CLIENT = (
    "INSERT INTO clients (client_id, secret_hash, name, redirect_uris, grant_types, scope,"
    " allowed_origins, is_resource_server, require_pkce, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
OLD_INSERT_CODE = (
    "INSERT INTO authorization_codes (code_hash, client_id, subject, scope, redirect_uri,"
    " family_id, issued_at, expires_at, code_challenge, code_challenge_method, nonce,"
    " consumed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
OLD_INSERT_TOKEN = (
    "INSERT INTO tokens (token_hash, kind, client_id, scope, family_id, issued_at, expires_at,"
    " subject, audience, parent_hash, replaced_by, rotated_at, revoked_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def make_old_file(path: Path, monkeypatch: pytest.MonkeyPatch, version: int) -> None:
    """A file as an earlier release left it: its first ``version`` migrations, some rows."""
    monkeypatch.setattr(_sqlite_schema, "MIGRATIONS", _sqlite_schema.MIGRATIONS[:version])
    monkeypatch.setattr(_sqlite_schema, "SCHEMA_VERSION", version)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert _sqlite_schema.migrate(conn) == version
        conn.execute(OLD_INSERT_CLIENT, _rows.client_row(make_client())[:10])
        conn.execute(_sqlite_schema.INSERT_USER, _rows.user_row(make_user()))
        conn.execute(OLD_INSERT_CODE, _rows.code_row(make_code())[:12])
        conn.executemany(OLD_INSERT_TOKEN, [_rows.token_row(t)[:13] for t in make_pair("g0")])
    finally:
        conn.close()
        monkeypatch.undo()


async def test_a_version_1_file_is_upgraded_in_place(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_old_file(path, monkeypatch, 1)
    tables = {name for (name,) in read_file(path, "SELECT name FROM sqlite_schema")}
    assert "tokens" in tables
    assert "device_authorizations" not in tables

    store = SQLiteStorage(path)
    try:
        assert await store.get_client("client-1") == make_client()
        assert await store.get_user("alice") == make_user()
        assert await store.get_user_by_id("user-1") == make_user()
        assert await store.get_authorization_code("code-1") == make_code()
        assert [await store.get_token(t.token_hash) for t in make_pair("g0")] == make_pair("g0")

        await store.save_consent("user-1", "client-1", frozenset({"openid"}))
        assert await store.get_consent("user-1", "client-1") == frozenset({"openid"})
        device = DeviceAuthorization(
            "device-1", "user-code-1", "client-1", frozenset({"openid"}), "f-d", NOW, NOW + 600, 5
        )
        await store.save_device_authorization(device)
        assert await store.decide_device_authorization(
            "user-code-1", subject="user-1", approved=True, now=NOW
        )
        assert await store.redeem_device_code("device-1", tokens=make_pair("d"), now=NOW)
        consumed = await store.get_device_authorization("user-code-1")
        assert consumed == dataclasses.replace(device, status="consumed", subject="user-1")

        assert await store.delete_client("client-1") is True
        assert await store.get_device_authorization("user-code-1") is None
        assert await store.get_consent("user-1", "client-1") is None
    finally:
        await store.close()

    assert read_file(path, "SELECT version FROM schema_version") == [
        (_sqlite_schema.SCHEMA_VERSION,)
    ]
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert _sqlite_schema.migrate(conn) == 0
    finally:
        conn.close()


async def test_a_version_3_file_gains_the_openid_connect_columns_and_keys(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_old_file(path, monkeypatch, 3)
    store = SQLiteStorage(path)
    try:
        await store.migrate()
        clients = "SELECT access_token_format, id_token_signed_response_alg FROM clients"
        assert read_file(path, clients) == [(None, "RS256")]
        assert read_file(path, "SELECT auth_time, acr, amr FROM authorization_codes") == [
            (None, None, "")
        ]
        client = await store.get_client("client-1")
        assert client == make_client()
        assert client is not None and client.access_token_format is None
        assert client.id_token_signed_response_alg == "RS256"
        code = await store.get_authorization_code("code-1")
        assert code == make_code()
        assert code is not None and (code.auth_time, code.acr, code.amr) == (None, None, ())
        assert [await store.get_token(t.token_hash) for t in make_pair("g0")] == make_pair("g0")

        jwt = dataclasses.replace(
            make_client(), access_token_format="jwt", id_token_signed_response_alg="ES256"
        )
        await store.save_client(jwt)
        assert await store.get_client("client-1") == jwt
        key = SigningKey("kid-1", "ES256", "{}", "sealed", NOW)
        assert await store.add_signing_key(key, retire_active_until=None, now=NOW)
        assert await store.list_signing_keys(now=NOW) == [key]
        assert await store.delete_client("client-1") is True
        assert await store.list_revoked_access_tokens(now=NOW) == ["g0-at"]
        assert await store.get_token("g0-rt") is None
    finally:
        await store.close()
    assert read_file(path, "SELECT version FROM schema_version") == [
        (_sqlite_schema.SCHEMA_VERSION,)
    ]


async def test_a_version_4_file_gains_the_pushed_request_and_dpop_columns(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_old_file(path, monkeypatch, 4)
    device = DeviceAuthorization(
        "device-1", "user-code-1", "client-1", frozenset({"openid"}), "f-d", NOW, NOW + 600, 5
    )
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(
            "INSERT INTO device_authorizations (device_code_hash, user_code_hash, client_id,"
            " scope, family_id, issued_at, expires_at, interval, status, subject,"
            " last_polled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _rows.device_row(device)[:11],
        )
    finally:
        conn.close()

    store = SQLiteStorage(path)
    try:
        await store.migrate()
        clients = (
            "SELECT require_pushed_authorization_requests, dpop_bound_access_tokens,"
            " registration_access_token_hash, registration_metadata FROM clients"
        )
        assert read_file(path, clients) == [(0, 0, None, "")]
        assert read_file(path, "SELECT resource, dpop_jkt FROM authorization_codes") == [("", None)]
        assert read_file(path, "SELECT resource FROM device_authorizations") == [("",)]
        assert read_file(path, "SELECT jkt FROM tokens") == [(None,), (None,)]
        assert await store.get_client("client-1") == make_client()
        assert await store.get_authorization_code("code-1") == make_code()
        assert await store.get_device_authorization("user-code-1") == device
        assert [await store.get_token(t.token_hash) for t in make_pair("g0")] == make_pair("g0")

        pushed = PushedAuthorizationRequest("par-1", "client-1", {"a": "b"}, NOW, NOW + 60)
        await store.save_pushed_authorization_request(pushed)
        assert await store.consume_pushed_authorization_request("par-1", now=NOW)
        assert await store.use_once("jti-1", expires_at=NOW + 60, now=NOW)
        assert not await store.use_once("jti-1", expires_at=NOW + 60, now=NOW)
        assert await store.delete_client("client-1") is True
        assert await store.get_pushed_authorization_request("par-1") is None
        assert await store.purge_expired(now=NOW + 60) == 1
    finally:
        await store.close()
    assert read_file(path, "SELECT version FROM schema_version") == [
        (_sqlite_schema.SCHEMA_VERSION,)
    ]


async def test_the_revocation_list_and_the_active_keys_have_indexes(path: Path) -> None:
    store = SQLiteStorage(path)
    await store.migrate()
    await store.close()
    indexes = read_file(
        path, "SELECT name, \"unique\", partial FROM pragma_index_list('signing_keys')"
    )
    assert ("signing_keys_active_alg", 1, 1) in indexes
    conn = sqlite3.connect(path)
    try:
        sql = "EXPLAIN QUERY PLAN " + _sqlite_schema.SELECT_REVOKED_ACCESS_TOKENS
        plan = conn.execute(sql, (NOW,)).fetchall()
    finally:
        conn.close()
    assert "tokens_revoked_access" in str(plan)


async def test_the_device_user_code_is_unique_and_purge_has_an_index(path: Path) -> None:
    store = SQLiteStorage(path)
    await store.migrate()
    await store.close()
    indexes = read_file(
        path, "SELECT name, \"unique\" FROM pragma_index_list('device_authorizations')"
    )
    columns = {
        name: [c for (c,) in read_file(path, f"SELECT name FROM pragma_index_info('{name}')")]
        for name, _ in indexes
    }
    assert ("device_authorizations_user_code_hash", 1) in indexes
    assert columns["device_authorizations_user_code_hash"] == ["user_code_hash"]
    assert columns["device_authorizations_expires_at"] == ["expires_at"]
    plan = read_file(
        path, "EXPLAIN QUERY PLAN DELETE FROM device_authorizations WHERE expires_at <= 0"
    )
    assert "device_authorizations_expires_at" in str(plan)


@pytest.mark.parametrize("table", ["pushed_authorization_requests", "once_keys"])
async def test_purge_of_pushed_requests_and_keys_used_once_has_an_index(
    path: Path, table: str
) -> None:
    store = SQLiteStorage(path)
    await store.migrate()
    await store.close()
    plan = read_file(path, f"EXPLAIN QUERY PLAN DELETE FROM {table} WHERE expires_at <= 0")
    assert f"{table}_expires_at" in str(plan)


async def test_two_stores_on_one_file_see_each_other(path: Path) -> None:
    one, two = SQLiteStorage(path), SQLiteStorage(path)
    try:
        await asyncio.gather(one.migrate(), two.migrate())
        await one.save_tokens(make_pair("g0"))
        assert await two.get_token("g0-rt") == make_pair("g0")[1]

        new = make_pair("g1", parent="g0-rt")
        assert await two.rotate_refresh_token("g0-rt", tokens=new, now=NOW)
        rotated = await one.get_token("g0-rt")
        assert rotated is not None
        assert rotated.replaced_by == "g1-rt"

        await one.save_authorization_code(make_code())
        results = await asyncio.gather(
            *(
                store.redeem_authorization_code("code-1", tokens=make_pair(f"r{i}"), now=NOW)
                for i, store in enumerate([one, two] * 5)
            )
        )
        assert results.count(True) == 1
    finally:
        await one.close()
        await two.close()


@pytest.fixture
def junk(path: Path) -> Path:
    path.write_bytes(b"this is not an SQLite database\n" * 200)
    return path


async def test_a_file_that_is_not_a_database_raises_storage_error(junk: Path) -> None:
    store = SQLiteStorage(junk)
    try:
        with pytest.raises(StorageError) as info:
            await store.get_token("token-1")
        assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
        with pytest.raises(StorageError):
            await store.save_tokens([make_token()])
        with pytest.raises(StorageError):
            await store.migrate()
    finally:
        await store.close()


async def test_a_schema_from_the_future_is_refused(path: Path) -> None:
    store = SQLiteStorage(path)
    await store.migrate()
    await store.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE schema_version SET version = 999")
    conn.close()

    store = SQLiteStorage(path)
    try:
        with pytest.raises(StorageError, match="newer"):
            await store.get_client("client-1")
    finally:
        await store.close()


async def test_read_failures_raise_storage_error(store: SQLiteStorage, path: Path) -> None:
    await store.save_tokens([make_token()])
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE tokens")
    conn.close()
    with pytest.raises(StorageError) as info:
        await store.get_token("token-1")
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)


async def test_a_locked_database_raises_storage_error_then_recovers(path: Path) -> None:
    store = SQLiteStorage(path, busy_timeout=0.05)
    try:
        await store.migrate()
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StorageError, match="locked"):
                await store.save_tokens([make_token()])
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert await store.get_token("token-1") is None
        await store.save_tokens([make_token()])
        assert await store.get_token("token-1") == make_token()
    finally:
        await store.close()


async def test_a_full_disk_raises_storage_error_and_writes_nothing(store: SQLiteStorage) -> None:
    await store.save_tokens([make_token("seed")])
    await store._write(lambda conn: conn.execute("PRAGMA max_page_count = 1").close())
    big = [make_token(f"big-{i}", scope=frozenset({f"s{i}-" + "x" * 2000})) for i in range(50)]

    with pytest.raises(StorageError, match="full"):
        await store.save_tokens(big)
    assert [await store.get_token(t.token_hash) for t in big] == [None] * len(big)
    await store.save_authorization_code(make_code())
    with pytest.raises(StorageError):
        await store.redeem_authorization_code("code-1", tokens=big, now=NOW)
    code = await store.get_authorization_code("code-1")
    assert code is not None
    assert code.consumed_at is None

    await store._write(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823").close())
    assert await store.redeem_authorization_code("code-1", tokens=big, now=NOW) is True
    assert await store.get_token("big-49") == big[49]


async def test_every_answer_matches_the_file_when_the_disk_fills(store: SQLiteStorage) -> None:
    await store.save_tokens([make_token("seed")])
    await store._write(lambda conn: conn.execute("PRAGMA max_page_count = 1").close())
    batches = [
        [make_token(f"b{i}-{j}", scope=frozenset({"x" * (50 + 400 * i)})) for j in range(20)]
        for i in range(6)
    ]
    async with Gate(store):
        calls = [asyncio.ensure_future(store.save_tokens(batch)) for batch in batches]
        await until_queued(store, 1)
    outcomes = await asyncio.gather(*calls, return_exceptions=True)

    assert any(isinstance(outcome, StorageError) for outcome in outcomes)
    for batch, outcome in zip(batches, outcomes, strict=True):
        assert outcome is None or isinstance(outcome, StorageError)
        stored = [await store.get_token(t.token_hash) for t in batch]
        assert stored == (batch if outcome is None else [None] * len(batch))


async def test_a_failing_write_does_not_spoil_its_group(store: SQLiteStorage) -> None:
    await store.save_tokens([make_token("taken")])
    commits = store._commits
    async with Gate(store):
        duplicate = asyncio.ensure_future(store.save_tokens([make_token("taken")]))
        broken = asyncio.ensure_future(store._write(lambda conn: 1 // 0))
        half = asyncio.ensure_future(
            store.save_tokens([make_token("half-1"), make_token("taken", family_id="other")])
        )
        valid = asyncio.ensure_future(store.save_tokens(make_pair("ok")))
        await until_queued(store, 1)

    with pytest.raises(StorageError, match="UNIQUE"):
        await duplicate
    with pytest.raises(ZeroDivisionError):
        await broken
    with pytest.raises(StorageError):
        await half
    await valid
    assert store._commits == commits + 2  # the gate's group, then the four writes' group
    assert await store.get_token("taken") == make_token("taken")
    assert await store.get_token("half-1") is None
    assert [await store.get_token(t.token_hash) for t in make_pair("ok")] == make_pair("ok")


async def test_writes_are_committed_in_groups(store: SQLiteStorage) -> None:
    await store.migrate()
    commits = store._commits
    tokens = [make_token(f"t{i}", family_id=f"f{i}") for i in range(300)]
    async with Gate(store):
        calls = [asyncio.ensure_future(store.save_tokens([token])) for token in tokens]
        await until_queued(store, 1)
    await asyncio.gather(*calls)

    assert store._commits - commits == 1 + math.ceil(len(tokens) / sqlite._MAX_BATCH)
    assert [await store.get_token(t.token_hash) for t in tokens] == tokens


async def test_writes_behind_a_rolled_back_transaction_are_retried(store: SQLiteStorage) -> None:
    def abort(conn: sqlite3.Connection) -> None:
        conn.execute("ROLLBACK")  # what SQLite does by itself on some I/O errors
        raise sqlite3.OperationalError("disk I/O error (simulated)")

    await store.migrate()
    async with Gate(store):
        before = asyncio.ensure_future(store.save_tokens([make_token("before")]))
        aborted = asyncio.ensure_future(store._write(abort))
        after = asyncio.ensure_future(store.save_tokens([make_token("after")]))
        await until_queued(store, 1)

    with pytest.raises(StorageError, match="simulated"):
        await before  # its write went with the transaction
    with pytest.raises(StorageError, match="simulated"):
        await aborted
    await after
    assert await store.get_token("before") is None
    assert await store.get_token("after") == make_token("after")


async def test_a_bug_in_the_writer_fails_its_group_and_the_writer_goes_on(
    store: SQLiteStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.migrate()

    def boom(jobs: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(store, "_commit", boom)
    with pytest.raises(StorageError, match="bug"):
        await store.save_tokens([make_token()])
    monkeypatch.undo()
    await store.save_tokens([make_token()])
    assert await store.get_token("token-1") == make_token()


async def test_a_read_racing_close_fails_cleanly(store: SQLiteStorage) -> None:
    read = asyncio.ensure_future(store.get_client("client-1"))
    await asyncio.sleep(0)  # the read is waiting for the file to be opened
    await store.close()
    with pytest.raises(StorageError, match="closed"):
        await read


async def test_a_cancelled_write_is_still_committed(store: SQLiteStorage) -> None:
    async with Gate(store):
        call = asyncio.ensure_future(store.save_tokens([make_token()]))
        await until_queued(store, 1)
        call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await store.save_tokens([make_token("after")])
    assert await store.get_token("token-1") == make_token()


async def test_close_is_idempotent_and_final(path: Path) -> None:
    never_used = SQLiteStorage(path)
    await never_used.close()
    await never_used.close()

    store = SQLiteStorage(path)
    await store.save_client(make_client())
    pending = asyncio.ensure_future(store.save_tokens([make_token()]))
    await asyncio.sleep(0)  # queued, not yet handed to the writer
    await store.close()
    await pending  # a write made before close() is committed, not dropped
    await store.close()

    with pytest.raises(StorageError, match="closed"):
        await store.get_client("client-1")
    with pytest.raises(StorageError, match="closed"):
        await store.save_tokens([make_token("late")])
    with pytest.raises(StorageError, match="closed"):
        await store.migrate()
    assert read_file(path, "SELECT token_hash FROM tokens") == [("token-1",)]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStorage("x.db", synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="file"):
        SQLiteStorage(":memory:")


async def test_a_uri_list_with_white_space_is_refused(store: SQLiteStorage) -> None:
    # Lists of URIs are stored space-separated, which a URI can never break (RFC 3986 §2).
    bad = dataclasses.replace(make_client(), redirect_uris=("https://a.example/c b",))
    with pytest.raises(ValueError, match="not a URI list"):
        await store.save_client(bad)
    assert await store.get_client(bad.client_id) is None


async def test_uri_lists_keep_their_order(store: SQLiteStorage) -> None:
    uris = ("https://b.example/cb", "https://a.example/cb", "com.example.app:/cb")
    client = dataclasses.replace(make_client(), redirect_uris=uris, allowed_origins=())
    await store.save_client(client)
    assert await store.get_client(client.client_id) == client


async def test_a_version_5_file_gains_sessions_and_sealed_responses(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_old_file(path, monkeypatch, 5)
    store = SQLiteStorage(path)
    try:
        await store.migrate()
        assert read_file(path, "SELECT sealed_response FROM tokens") == [(None,), (None,)]
        assert [await store.get_token(t.token_hash) for t in make_pair("g0")] == make_pair("g0")
        new = make_pair("g1", parent="g0-rt")
        assert await store.rotate_refresh_token("g0-rt", tokens=new, now=NOW, sealed_response="s")
        rotated = await store.get_token("g0-rt")
        assert rotated is not None and rotated.sealed_response == "s"
        session = BrowserSession("session-1", "user-1", NOW, NOW + 60)
        await store.save_session(session)
        assert await store.get_session("session-1") == session
        assert await store.delete_user("alice") is True
        assert await store.get_session("session-1") is None
    finally:
        await store.close()
    assert read_file(path, "SELECT version FROM schema_version") == [
        (_sqlite_schema.SCHEMA_VERSION,)
    ]
