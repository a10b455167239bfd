"""A store on PostgreSQL, for several server instances sharing one database.

Install with ``pip install 'asgi-oauth[postgres]'`` (asyncpg). Connections come
from a pool created, and the schema migrated, on first use. Every conditional
write of the ``Storage`` protocol decides with a guarded ``UPDATE`` inside its
transaction, so instances racing on one row get one winner: under READ
COMMITTED a second ``UPDATE`` waits for the first and re-checks its condition.

Faults become ``StorageError`` (and so ``temporarily_unavailable``) instead of
hanging: a pool that stays exhausted for ``acquire_timeout`` seconds, a query
running past ``command_timeout``, a database that cannot be reached. The pool
replaces broken connections by itself, so service resumes when the database
does; a read that meets a connection the database dropped is retried once.

The package: ``database`` (the pool and the statement runners), ``schema`` (the
tables, their migrations and the SQL), ``signal`` (the ``revocation_signal``:
``LISTEN``/``NOTIFY``, so every instance on the schema learns of a revocation at
once), and the ``Storage`` methods in four mixins on ``database``:
``accounts``, ``tokens``, ``pending`` and ``maintenance``.
"""

from __future__ import annotations

try:
    import asyncpg  # noqa: F401 - checked here, before any module that needs it
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("PostgresStorage needs asyncpg: pip install 'asgi-oauth[postgres]'") from exc

from . import schema as _pg
from .accounts import _Accounts
from .maintenance import _Maintenance
from .pending import _Pending
from .tokens import _Tokens

__all__ = ["PostgresStorage"]


class PostgresStorage(_Accounts, _Tokens, _Pending, _Maintenance):
    """A ``Storage`` on PostgreSQL, reached at ``dsn`` (``postgresql://user@host/db``).

    ``schema`` keeps the tables in their own PostgreSQL schema (created if
    missing). ``min_size``/``max_size`` bound the pool; ``acquire_timeout`` is
    how long a request waits for a free connection before it is refused;
    ``client_cache_ttl`` is how long a client read from the database is reused
    (a client changed by another instance is seen within that time).
    """

    async def migrate(self) -> int:
        """Create or upgrade the schema now rather than on first use; safe to repeat,
        and safe when several instances start at once. Returns how many migrations ran."""
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool, ran = await self._create_pool()
                    return ran
        async with self._connection(self._pool) as conn:
            return await _pg.migrate(conn, self._schema)
