"""Storage backends: the ``Storage`` protocol, ``MemoryStorage``, ``SQLiteStorage``,
``PostgresStorage`` (``asgi_oauth.storage.postgres``, with the ``postgres`` extra),
and ``open_storage`` to choose one by URL."""

from .base import Storage
from .memory import MemoryStorage
from .sqlite import SQLiteStorage
from .urls import DEFAULT_DATABASE_URL, open_storage

__all__ = ["DEFAULT_DATABASE_URL", "MemoryStorage", "SQLiteStorage", "Storage", "open_storage"]
