"""A client's ``application_type`` is kept by every store, and old databases gain it.

A client registered before the field existed has none (NULL): it keeps the
redirect URI rules it had, which allow what either kind may use. The migration
that adds the column is checked on a SQLite file and a PostgreSQL schema left by
the release before, with a client in it; ``asgi-oauth clients`` sets it.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from asgi_oauth.storage import SQLiteStorage, Storage, _rows
from asgi_oauth.storage.sqlite import schema as sqlite_schema

from .postgres import POSTGRES_URL
from .test_cli_commands import Cli, on, stored_client
from .test_storage import make_client

pytestmark = pytest.mark.anyio

#: The client columns of the schema before ``application_type``, in row order.


def before_application_type(schema: Any) -> int:
    """How many migrations a store of the release before ``application_type`` had."""
    return next(i for i, m in enumerate(schema.MIGRATIONS) if "application_type" in " ".join(m))


OLD_CLIENT_COLUMNS = (
    "client_id, secret_hash, name, redirect_uris, grant_types, scope, allowed_origins,"
    " is_resource_server, require_pkce, created_at, access_token_format,"
    " id_token_signed_response_alg, require_pushed_authorization_requests,"
    " dpop_bound_access_tokens, registration_access_token_hash, registration_metadata"
)


async def test_every_kind_is_stored_and_read_back(storage: Storage) -> None:
    native = make_client("native", application_type="native")
    assert await storage.add_client(native)
    assert await storage.get_client("native") == native
    web = dataclasses.replace(native, application_type="web")
    await storage.save_client(web)
    assert await storage.get_client("native") == web
    assert await storage.add_client(make_client("legacy"))
    legacy = await storage.get_client("legacy")
    assert legacy is not None and legacy.application_type is None
    assert [c.application_type for c in await storage.list_clients()] == [None, "web"]


def test_the_old_client_columns_come_first_in_the_row_then_application_type() -> None:
    columns = OLD_CLIENT_COLUMNS.split(", ")
    row = _rows.client_row(make_client(application_type="native"))
    assert len(row) > len(columns) and row[len(columns)] == "native"


async def test_a_sqlite_file_of_the_release_before_gains_the_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    old_version = before_application_type(sqlite_schema)
    monkeypatch.setattr(sqlite_schema, "MIGRATIONS", sqlite_schema.MIGRATIONS[:old_version])
    monkeypatch.setattr(sqlite_schema, "SCHEMA_VERSION", old_version)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert sqlite_schema.migrate(conn) == old_version
        columns = {row[1] for row in conn.execute("PRAGMA table_info(clients)")}
        assert "application_type" not in columns
        conn.execute(
            f"INSERT INTO clients ({OLD_CLIENT_COLUMNS}) VALUES ({', '.join('?' * 16)})",
            _rows.client_row(make_client())[:16],
        )
    finally:
        conn.close()
        monkeypatch.undo()

    store = SQLiteStorage(path)
    try:
        await store.migrate()
        assert await store.get_client("client-1") == make_client()
        native = make_client("client-2", application_type="native")
        assert await store.add_client(native)
        assert await store.get_client("client-2") == native
    finally:
        await store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        rows = conn.execute("SELECT application_type FROM clients ORDER BY client_id").fetchall()
        assert rows == [(None,), ("native",)]
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [
            (sqlite_schema.SCHEMA_VERSION,)
        ]
        assert sqlite_schema.migrate(conn) == 0
    finally:
        conn.close()


async def test_a_postgres_schema_of_the_release_before_gains_the_column(
    pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncpg

    from asgi_oauth.storage.postgres import PostgresStorage
    from asgi_oauth.storage.postgres import schema as postgres_schema

    old_version = before_application_type(postgres_schema)
    monkeypatch.setattr(postgres_schema, "MIGRATIONS", postgres_schema.MIGRATIONS[:old_version])
    monkeypatch.setattr(postgres_schema, "SCHEMA_VERSION", old_version)
    old = PostgresStorage(POSTGRES_URL, schema=pg_schema)
    try:
        assert await old.migrate() == old_version
    finally:
        await old.close()
        monkeypatch.undo()
    admin: Any = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        columns = await admin.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = $1 AND table_name = 'clients'",
            pg_schema,
        )
        assert "application_type" not in {row["column_name"] for row in columns}
        values = ", ".join(f"${i}" for i in range(1, 17))
        await admin.execute(
            f'INSERT INTO "{pg_schema}".clients ({OLD_CLIENT_COLUMNS}) VALUES ({values})',
            *_rows.client_row(make_client())[:16],
        )
        store = PostgresStorage(POSTGRES_URL, schema=pg_schema)
        try:
            assert await store.migrate() == postgres_schema.SCHEMA_VERSION - old_version
            assert await store.get_client("client-1") == make_client()
            web = make_client("client-2", application_type="web")
            assert await store.add_client(web)
            assert await store.get_client("client-2") == web
            assert await store.migrate() == 0
        finally:
            await store.close()
        rows = await admin.fetch(
            f'SELECT application_type FROM "{pg_schema}".clients ORDER BY client_id'
        )
        assert [row["application_type"] for row in rows] == [None, "web"]
    finally:
        await admin.close()


def test_the_command_line_sets_and_checks_the_application_type(tmp_path: Path) -> None:
    cli = Cli(tmp_path, tmp_path / "oauth.db")  # ``clients create`` makes the file
    cursor = "cursor://anysphere.cursor-retrieval/oauth/callback"
    created = cli.create_client(
        "Cursor", "--public", "--application-type", "native", "--redirect-uri", cursor
    )
    stored = stored_client(cli.db, created["client_id"])
    assert stored is not None and stored.application_type == "native"
    cli.refuses(
        "clients", "update", "--application-type", "web", *on(created["client_id"]),
        message="web application",
    )  # fmt: skip
    cli.refuses(
        "clients", "create", "--name", "Site", "--application-type", "web",
        "--redirect-uri", "http://127.0.0.1/cb", message="web application",
    )  # fmt: skip
    odd = cli("clients", "create", "--name", "Odd", "--application-type", "desktop")
    assert odd.code == 2 and "invalid choice: 'desktop'" in odd.err
