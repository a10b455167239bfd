"""Choosing a store by URL, so the same application code runs on any of them.

``sqlite:///relative/file.db``, ``sqlite:////absolute/file.db`` (or a plain
path), ``postgresql://user@host:5432/db`` (``?schema=name`` keeps the tables in
their own PostgreSQL schema), and ``memory:`` for tests.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .base import Storage
from .memory import MemoryStorage
from .sqlite import SQLiteStorage

DEFAULT_DATABASE_URL = "sqlite:///asgi_oauth.db"

StoreKind = Literal["memory", "sqlite", "postgresql"]


def open_storage(url: str) -> Storage:
    """The store a database URL names; raises ``ValueError`` for one it cannot name."""
    kind = store_kind(url)
    if kind == "memory":
        return MemoryStorage()
    if kind == "postgresql":
        from .postgres import PostgresStorage

        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = dict(query).get("schema")
        rest = urlencode([(k, v) for k, v in query if k != "schema"])
        return PostgresStorage(urlunsplit(parts._replace(query=rest)), schema=schema)
    return SQLiteStorage(sqlite_path(url) or url)


def store_kind(url: str) -> StoreKind:
    """Which store a database URL names, without opening it; ``ValueError`` for none."""
    if url in ("memory:", "memory://"):
        return "memory"
    if sqlite_path(url) is not None:
        return "sqlite"
    scheme = urlsplit(url).scheme
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    if "://" in url or scheme == "sqlite":
        raise ValueError(
            f"unsupported database URL: {redact_url(url)!r}"
            " (expected sqlite:///path or postgresql://...)"
        )
    return "sqlite"


def redact_url(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def sqlite_path(url: str) -> str | None:
    """The file a SQLite URL or path names; None for any other store."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    return None if "://" in url or url.startswith("memory:") else url
