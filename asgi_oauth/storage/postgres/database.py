"""The PostgreSQL store's engine: its pool, and how a statement is run.

Every query goes through ``_run``, so the policy lives in one place: the pool is
created (and the schema migrated) on first use, and again after a failed start;
a read that meets a connection the database dropped is retried once, as reading
twice is harmless, while a write or a transaction is never repeated; and every
driver fault, a timeout included, becomes a ``StorageError``. The mixins holding
the ``Storage`` methods build on this class and talk to it only through
``_fetchrow``, ``_fetch``, ``_execute``, ``_write`` and ``_transaction``. The
revocation signal (``revocation_signal``) starts with the pool and closes with the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from ...errors import StorageError
from .._client_cache import ClientCache
from . import schema as _pg
from .signal import NOTIFY, PostgresSignal, channel_for

_T = TypeVar("_T")

#: Errors that mean the database or the connection failed, not the statement.
_CONNECTION_ERRORS = (
    asyncpg.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    # What asyncpg raises for a connection that read the database's "terminating
    # connection" notice while idle in the pool: the connection is as good as gone.
    asyncpg.exceptions.InternalClientError,
    OSError,
)
_ERRORS = (asyncpg.PostgresError, *_CONNECTION_ERRORS, asyncio.TimeoutError)


class PostgresDatabase:
    """The pool and the statement runners a ``PostgresStorage`` is built on."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        min_size: int = 2,
        max_size: int = 10,
        acquire_timeout: float = 5.0,
        command_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        client_cache_ttl: float = 1.0,
    ) -> None:
        if schema is not None:
            _pg.check_schema_name(schema)
        if not 0 < min_size <= max_size:
            raise ValueError("need 0 < min_size <= max_size")
        self._dsn = dsn
        self._schema = schema
        self._min_size, self._max_size = min_size, max_size
        self._acquire_timeout = acquire_timeout
        self._command_timeout = command_timeout
        self._connect_timeout = connect_timeout
        self._clients = ClientCache(client_cache_ttl)
        self._pool: Any = None
        self._pool_lock = asyncio.Lock()
        self._closed = False
        channel = channel_for(schema)
        self.revocation_signal = PostgresSignal(
            dsn,
            channel,
            send=lambda: self._execute(NOTIFY, channel),
            connect_timeout=connect_timeout,
        )

    async def close(self) -> None:
        self._closed = True
        await self.revocation_signal.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout=self._command_timeout)
            except (*_ERRORS,):
                pool.terminate()

    # -- plumbing ----------------------------------------------------------------------

    async def _get_pool(self) -> Any:
        if self._pool is not None:
            return self._pool
        if self._closed:
            raise StorageError("the store is closed")
        async with self._pool_lock:
            if self._pool is None:
                self._pool, _ = await self._create_pool()
        return self._pool

    async def _create_pool(self) -> tuple[Any, int]:
        """A pool on a migrated schema, and how many migrations ran.

        On failure nothing is kept, so the next call tries again."""
        settings = {"search_path": self._schema} if self._schema else None
        try:
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                command_timeout=self._command_timeout,
                timeout=self._connect_timeout,
                server_settings=settings,
                reset=_keep_session,
            )
        except _ERRORS as exc:
            raise StorageError(f"cannot connect to PostgreSQL: {exc}") from exc
        try:
            async with self._connection(pool) as conn:
                ran = await _pg.migrate(conn, self._schema)
        except BaseException:
            pool.terminate()
            raise
        # Listening before the first read: nothing is cached that a revocation could miss.
        await self.revocation_signal.start()
        return pool, ran

    @contextlib.asynccontextmanager
    async def _connection(self, pool: Any) -> AsyncIterator[Any]:
        try:
            async with pool.acquire(timeout=self._acquire_timeout) as conn:
                yield conn
        except _ERRORS as exc:
            raise StorageError(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc

    async def _run(self, fn: Callable[[Any], Awaitable[_T]], *, retry: bool) -> _T:
        pool = await self._get_pool()
        for attempt in (1, 2):
            try:
                async with self._connection(pool) as conn:
                    return await fn(conn)
            except StorageError as exc:
                # A read on a connection the database dropped (a restart) is safe to
                # repeat; a wait for a free connection that timed out is not repeated.
                cause = exc.__cause__
                dropped = isinstance(cause, _CONNECTION_ERRORS) and not isinstance(
                    cause, TimeoutError
                )
                if not (retry and attempt == 1 and dropped):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _fetchrow(self, sql: str, *args: object) -> Any:
        if _has_nul(args):
            return None
        return await self._run(lambda conn: conn.fetchrow(sql, *args), retry=True)

    async def _fetch(self, sql: str, *args: object) -> list[Any]:
        if _has_nul(args):
            return []
        rows: list[Any] = await self._run(lambda conn: conn.fetch(sql, *args), retry=True)
        return rows

    async def _execute(self, sql: str, *args: object) -> str:
        status: str = await self._run(lambda conn: conn.execute(sql, *args), retry=False)
        return status

    async def _write(self, sql: str, *args: object) -> list[Any]:
        """A write whose rows are returned (``RETURNING``, a data-modifying ``WITH``):
        like ``_execute``, never repeated."""
        rows: list[Any] = await self._run(lambda conn: conn.fetch(sql, *args), retry=False)
        return rows

    async def _transaction(self, fn: Callable[[Any], Awaitable[_T]]) -> _T:
        async def in_transaction(conn: Any) -> _T:
            async with conn.transaction():
                return await fn(conn)

        return await self._run(in_transaction, retry=False)


class _Lost(Exception):
    """Another instance's key became active first: roll the transaction back."""


def statement_failed(error: Exception) -> bool:
    """Whether a ``StorageError`` came from the statement (a constraint, bad data) rather
    than from the connection: the same statement would fail again on another."""
    cause = error.__cause__
    return isinstance(cause, asyncpg.PostgresError) and not isinstance(cause, _CONNECTION_ERRORS)


async def _keep_session(conn: Any) -> None:
    """Skip asyncpg's reset query on release (an extra round trip each time): this store
    keeps no session state; its transactions and advisory locks end with themselves."""


def _has_nul(args: Sequence[object]) -> bool:
    """Whether a lookup names text with a NUL: PostgreSQL text cannot hold one, so no row
    matches, and a client id or username typed with ``%00`` finds nothing instead of
    failing the request."""
    return any(isinstance(arg, str) and "\x00" in arg for arg in args)
