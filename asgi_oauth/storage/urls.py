"""Choosing a store by URL, so the same application code runs on any of them.

``sqlite:///relative/file.db``, ``sqlite:////absolute/file.db`` (or a plain
path), ``postgresql://user@host:5432/db`` (``?schema=name`` keeps the tables in
their own PostgreSQL schema), and ``memory:`` for tests.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .base import Storage
from .memory import MemoryStorage
from .sqlite import SQLiteStorage

DEFAULT_DATABASE_URL = "sqlite:///asgi_oauth.db"


def open_storage(url: str) -> Storage:
    """The store a database URL names; raises ``ValueError`` for one it cannot name."""
    if url in ("memory:", "memory://"):
        return MemoryStorage()
    if url.startswith("sqlite:///"):
        return SQLiteStorage(url.removeprefix("sqlite:///"))
    scheme = urlsplit(url).scheme
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresStorage

        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = dict(query).get("schema")
        rest = urlencode([(k, v) for k, v in query if k != "schema"])
        return PostgresStorage(urlunsplit(parts._replace(query=rest)), schema=schema)
    if "://" in url or scheme == "sqlite":
        raise ValueError(
            f"unsupported database URL: {url!r} (expected sqlite:///path or postgresql://...)"
        )
    return SQLiteStorage(url)
