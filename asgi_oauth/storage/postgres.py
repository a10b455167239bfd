"""A store on PostgreSQL, for several server instances sharing one database.

Install with ``pip install 'asgi_oauth[postgres]'`` (asyncpg). Connections come
from a pool created, and the schema migrated, on first use. Every conditional
write of the ``Storage`` protocol decides with a guarded ``UPDATE`` inside its
transaction, so instances racing on one row get one winner: under READ
COMMITTED a second ``UPDATE`` waits for the first and re-checks its condition.

Faults become ``StorageError`` (and so ``temporarily_unavailable``) instead of
hanging: a pool that stays exhausted for ``acquire_timeout`` seconds, a query
running past ``command_timeout``, a database that cannot be reached. The pool
replaces broken connections by itself, so service resumes when the database
does; a read that meets a connection the database dropped is retried once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar

try:
    import asyncpg
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("PostgresStorage needs asyncpg: pip install 'asgi_oauth[postgres]'") from exc

from ..errors import StorageError
from ..models import (
    AuthorizationCode,
    BrowserSession,
    Client,
    DeviceAuthorization,
    PushedAuthorizationRequest,
    SigningKey,
    Token,
    User,
)
from . import _postgres_schema as _pg
from . import _rows
from ._client_cache import ClientCache
from .base import FAILURE_RETENTION, successor_of

_T = TypeVar("_T")

#: Errors that mean the database or the connection failed, not the statement.
_CONNECTION_ERRORS = (
    asyncpg.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    OSError,
)
_ERRORS = (asyncpg.PostgresError, *_CONNECTION_ERRORS, asyncio.TimeoutError)


class PostgresStorage:
    """A ``Storage`` on PostgreSQL, reached at ``dsn`` (``postgresql://user@host/db``).

    ``schema`` keeps the tables in their own PostgreSQL schema (created if
    missing). ``min_size``/``max_size`` bound the pool; ``acquire_timeout`` is
    how long a request waits for a free connection before it is refused;
    ``client_cache_ttl`` is how long a client read from the database is reused
    (a client changed by another instance is seen within that time).
    """

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

    # -- clients and users -------------------------------------------------------------

    async def get_client(self, client_id: str) -> Client | None:
        client = self._clients.get(client_id)
        if client is None:
            row = await self._fetchrow(_pg.SELECT_CLIENTS + " WHERE client_id = $1", client_id)
            if row is None:
                return None
            client = _rows.client_from_row(row)
            self._clients.put(client)
        return client

    async def add_client(self, client: Client) -> bool:
        return await self._put_client(client, _pg.ADD_CLIENT)

    async def save_client(self, client: Client) -> None:
        await self._put_client(client, _pg.UPSERT_CLIENT)

    async def _put_client(self, client: Client, insert: str) -> bool:
        row = _rows.client_row(client)
        origins = [(client.client_id, origin) for origin in client.allowed_origins]

        async def save(conn: Any) -> bool:
            if await conn.execute(insert, *row) == "INSERT 0 0":
                return False
            await conn.execute("DELETE FROM client_origins WHERE client_id = $1", client.client_id)
            await conn.executemany(
                "INSERT INTO client_origins (client_id, origin) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING",
                origins,
            )
            return True

        saved: bool = await self._transaction(save)
        self._clients.forget(client.client_id)
        return saved

    async def delete_client(self, client_id: str) -> bool:
        async def delete(conn: Any) -> bool:
            deleted = await conn.execute("DELETE FROM clients WHERE client_id = $1", client_id)
            if deleted == "DELETE 0":
                return False
            for table in (
                "client_origins",
                "authorization_codes",
                "device_authorizations",
                "pushed_authorization_requests",
                "consents",
            ):
                await conn.execute(f"DELETE FROM {table} WHERE client_id = $1", client_id)  # noqa: S608
            await _end_tokens_of(conn, "client_id", client_id)
            return True

        deleted: bool = await self._transaction(delete)
        self._clients.forget(client_id)
        return deleted

    async def list_clients(self) -> list[Client]:
        rows = await self._fetch(_pg.SELECT_CLIENTS + " ORDER BY client_id")
        return [_rows.client_from_row(row) for row in rows]

    async def is_allowed_origin(self, origin: str) -> bool:
        sql = "SELECT 1 FROM client_origins WHERE origin = $1 LIMIT 1"
        return await self._fetchrow(sql, origin) is not None

    async def get_user(self, username: str) -> User | None:
        row = await self._fetchrow(_pg.SELECT_USERS + " WHERE username = $1", username)
        return None if row is None else _rows.user_from_row(row)

    async def get_user_by_id(self, user_id: str) -> User | None:
        row = await self._fetchrow(_pg.SELECT_USERS + " WHERE user_id = $1", user_id)
        return None if row is None else _rows.user_from_row(row)

    async def add_user(self, user: User) -> bool:
        return await self._execute(_pg.INSERT_USER, *_rows.user_row(user)) == "INSERT 0 1"

    async def save_user(self, user: User) -> None:
        await self._execute(_pg.UPSERT_USER, *_rows.user_row(user))

    async def list_users(self) -> list[User]:
        rows = await self._fetch(_pg.SELECT_USERS + " ORDER BY username")
        return [_rows.user_from_row(row) for row in rows]

    async def delete_user(self, username: str) -> bool:
        async def delete(conn: Any) -> bool:
            user_id = await conn.fetchval(
                "DELETE FROM users WHERE username = $1 RETURNING user_id", username
            )
            if user_id is None:
                return False
            for table in ("consents", "authorization_codes", "device_authorizations"):
                sql = f"DELETE FROM {table} WHERE subject = $1"  # noqa: S608 (constants)
                await conn.execute(sql, user_id)
            await conn.execute("DELETE FROM sessions WHERE user_id = $1", user_id)
            await _end_tokens_of(conn, "subject", user_id)
            return True

        deleted: bool = await self._transaction(delete)
        return deleted

    async def get_consent(self, subject: str, client_id: str) -> frozenset[str] | None:
        row = await self._fetchrow(_pg.SELECT_CONSENT, subject, client_id)
        return None if row is None else frozenset(row[0].split())

    async def save_consent(self, subject: str, client_id: str, scope: frozenset[str]) -> None:
        await self._execute(_pg.UPSERT_CONSENT, *_rows.consent_row(subject, client_id, scope))

    # -- codes and tokens --------------------------------------------------------------

    async def save_authorization_code(self, code: AuthorizationCode) -> None:
        await self._execute(_pg.INSERT_CODE, *_rows.code_row(code))

    async def get_authorization_code(self, code_hash: str) -> AuthorizationCode | None:
        row = await self._fetchrow(_pg.SELECT_CODE, code_hash)
        return None if row is None else _rows.code_from_row(row)

    async def redeem_authorization_code(
        self, code_hash: str, *, tokens: Sequence[Token], now: int
    ) -> bool:
        return await self._consume_then_save(
            "UPDATE authorization_codes SET consumed_at = $1"
            " WHERE code_hash = $2 AND consumed_at IS NULL AND expires_at > $1",
            (now, code_hash),
            tokens,
        )

    async def save_tokens(self, tokens: Sequence[Token]) -> None:
        if not tokens:
            return
        columns = _pg.token_columns(tokens)
        family = _new_family(tokens)
        if family is None:
            await self._execute(_pg.INSERT_TOKENS, *columns)
            return

        async def save(conn: Any) -> None:
            await conn.execute(_pg.INSERT_FAMILY, *family)
            await conn.execute(_pg.INSERT_TOKENS, *columns)

        await self._transaction(save)

    async def get_token(self, token_hash: str) -> Token | None:
        row = await self._fetchrow(_pg.SELECT_TOKEN, token_hash)
        return None if row is None else _rows.token_from_row(row)

    async def rotate_refresh_token(
        self,
        token_hash: str,
        *,
        tokens: Sequence[Token],
        now: int,
        sealed_response: str | None = None,
    ) -> bool:
        successor = successor_of(tokens)
        family_id = tokens[0].family_id
        expires_at = max(token.expires_at for token in tokens)
        columns = _pg.token_columns(tokens)

        async def rotate(conn: Any) -> None:
            # The family row first, as revocations take it: a revocation that came
            # first has it revoked; one that comes later waits for this commit and
            # then sees the new tokens (READ COMMITTED reads afresh per statement).
            if await conn.execute(_pg.LOCK_FAMILY, family_id, expires_at) != "UPDATE 1":
                raise _Lost
            rotated = await conn.execute(
                "UPDATE tokens SET replaced_by = $1, rotated_at = $2, sealed_response = $3"
                " WHERE token_hash = $4 AND revoked_at IS NULL AND replaced_by IS NULL",
                successor,
                now,
                sealed_response,
                token_hash,
            )
            if rotated != "UPDATE 1":
                raise _Lost
            await conn.execute(_pg.INSERT_TOKENS, *columns)

        try:
            await self._transaction(rotate)
        except _Lost:
            return False
        return True

    async def revoke_token(self, token_hash: str, *, now: int) -> bool:
        sql = "UPDATE tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL"
        return await self._execute(sql, now, token_hash) == "UPDATE 1"

    async def revoke_family(self, family_id: str, *, now: int) -> int:
        async def revoke(conn: Any) -> int:
            # The family first: waits for a rotation in flight, and stops any after.
            await conn.execute(
                "UPDATE token_families SET revoked_at = $1"
                " WHERE family_id = $2 AND revoked_at IS NULL",
                now,
                family_id,
            )
            sql = "UPDATE tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL"
            return _count(await conn.execute(sql, now, family_id))

        revoked: int = await self._transaction(revoke)
        return revoked

    async def list_revoked_access_tokens(self, *, now: int) -> list[str]:
        rows = await self._fetch(_pg.SELECT_REVOKED_ACCESS_TOKENS, now)
        return [row[0] for row in rows]

    # -- signing keys ------------------------------------------------------------------

    async def list_signing_keys(self, *, now: int) -> list[SigningKey]:
        rows = await self._fetch(_pg.SELECT_SIGNING_KEYS, now)
        return [_rows.signing_key_from_row(row) for row in rows]

    async def add_signing_key(
        self, key: SigningKey, *, retire_active_until: int | None, now: int
    ) -> bool:
        row = _rows.signing_key_row(key)

        async def add(conn: Any) -> None:
            if retire_active_until is not None:
                await conn.execute(
                    "UPDATE signing_keys SET retired_at = $1, expires_at = $2"
                    " WHERE alg = $3 AND retired_at IS NULL",
                    now,
                    retire_active_until,
                    key.alg,
                )
            # A racing rotation's key, committed while the UPDATE waited, makes this a no-op.
            if await conn.execute(_pg.INSERT_SIGNING_KEY, *row) != "INSERT 0 1":
                raise _Lost

        try:
            await self._transaction(add)
        except _Lost:
            return False
        return True

    # -- pushed requests and keys used once --------------------------------------------

    async def save_pushed_authorization_request(self, request: PushedAuthorizationRequest) -> None:
        await self._execute(_pg.INSERT_PUSHED_REQUEST, *_rows.pushed_request_row(request))

    async def get_pushed_authorization_request(
        self, request_uri_hash: str
    ) -> PushedAuthorizationRequest | None:
        row = await self._fetchrow(_pg.SELECT_PUSHED_REQUEST, request_uri_hash)
        return None if row is None else _rows.pushed_request_from_row(row)

    async def consume_pushed_authorization_request(
        self, request_uri_hash: str, *, now: int
    ) -> bool:
        sql = (
            "UPDATE pushed_authorization_requests SET consumed_at = $1"
            " WHERE request_uri_hash = $2 AND consumed_at IS NULL AND expires_at > $1"
        )
        return await self._execute(sql, now, request_uri_hash) == "UPDATE 1"

    async def use_once(self, key: str, *, expires_at: int, now: int) -> bool:
        return await self._execute(_pg.USE_ONCE, key, expires_at, now) == "INSERT 0 1"

    # -- device authorizations ---------------------------------------------------------

    async def save_device_authorization(self, device: DeviceAuthorization) -> None:
        await self._execute(_pg.INSERT_DEVICE, *_rows.device_row(device))

    async def get_device_authorization(self, user_code_hash: str) -> DeviceAuthorization | None:
        row = await self._fetchrow(
            _pg.SELECT_DEVICES + " WHERE user_code_hash = $1", user_code_hash
        )
        return None if row is None else _rows.device_from_row(row)

    async def decide_device_authorization(
        self, user_code_hash: str, *, subject: str, approved: bool, now: int
    ) -> bool:
        sql = (
            "UPDATE device_authorizations SET status = $1, subject = $2"
            " WHERE user_code_hash = $3 AND status = 'pending' AND expires_at > $4"
        )
        status = "approved" if approved else "denied"
        return await self._execute(sql, status, subject, user_code_hash, now) == "UPDATE 1"

    async def poll_device_authorization(
        self, device_code_hash: str, *, client_id: str, now: int
    ) -> DeviceAuthorization | None:
        select = _pg.SELECT_DEVICES + " WHERE device_code_hash = $1 AND client_id = $2 FOR UPDATE"

        async def poll(conn: Any) -> DeviceAuthorization | None:
            row = await conn.fetchrow(select, device_code_hash, client_id)
            if row is None:
                return None
            device = _rows.device_from_row(row)
            last, interval = device.last_polled_at, device.interval
            if last is not None and now - last < interval:
                interval += 5
            await conn.execute(
                'UPDATE device_authorizations SET last_polled_at = $1, "interval" = $2'
                " WHERE device_code_hash = $3",
                now,
                interval,
                device_code_hash,
            )
            return device

        polled: DeviceAuthorization | None = await self._transaction(poll)
        return polled

    async def redeem_device_code(
        self, device_code_hash: str, *, tokens: Sequence[Token], now: int
    ) -> bool:
        return await self._consume_then_save(
            "UPDATE device_authorizations SET status = 'consumed'"
            " WHERE device_code_hash = $1 AND status = 'approved' AND expires_at > $2",
            (device_code_hash, now),
            tokens,
        )

    async def _consume_then_save(
        self, consume: str, args: tuple[object, ...], tokens: Sequence[Token]
    ) -> bool:
        """One transaction: a guarded UPDATE of one row; the tokens (and their new
        family) only if it matched."""
        columns = _pg.token_columns(tokens)
        family = _new_family(tokens)

        async def redeem(conn: Any) -> bool:
            if await conn.execute(consume, *args) != "UPDATE 1":
                return False
            if family is not None:
                await conn.execute(_pg.INSERT_FAMILY, *family)
            await conn.execute(_pg.INSERT_TOKENS, *columns)
            return True

        redeemed: bool = await self._transaction(redeem)
        return redeemed

    async def purge_expired(self, *, now: int) -> int:
        async def purge(conn: Any) -> int:
            purged = 0
            for table in (
                "authorization_codes",
                "tokens",
                "device_authorizations",
                "signing_keys",
                "pushed_authorization_requests",
                "once_keys",
                "sessions",
                "token_families",
            ):
                sql = f"DELETE FROM {table} WHERE expires_at <= $1"  # noqa: S608 (constants)
                purged += _count(await conn.execute(sql, now))
            sql = "DELETE FROM failures WHERE at <= $1"
            return purged + _count(await conn.execute(sql, now - FAILURE_RETENTION))

        purged: int = await self._transaction(purge)
        return purged

    async def take_attempt(self, key: str, *, limit: int, since: int, now: int) -> int | None:
        async def take(conn: Any) -> int | None:
            # One counter at a time per key, across instances, until this commits.
            lock = "SELECT pg_advisory_xact_lock($1, hashtext($2))"
            await conn.execute(lock, _pg.FAILURE_LOCK_CLASS, key)
            sql = "SELECT count(*), min(at) FROM failures WHERE key = $1 AND at >= $2"
            count, first = await conn.fetchrow(sql, key, since)
            if count >= limit:
                return int(first)
            await conn.execute("INSERT INTO failures (key, at) VALUES ($1, $2)", key, now)
            return None

        taken: int | None = await self._transaction(take)
        return taken

    async def forget_failure(self, key: str, *, at: int) -> None:
        sql = (
            "DELETE FROM failures WHERE ctid ="
            " (SELECT ctid FROM failures WHERE key = $1 AND at = $2 LIMIT 1)"
        )
        await self._execute(sql, key, at)

    async def clear_failures(self, key: str) -> None:
        await self._execute("DELETE FROM failures WHERE key = $1", key)

    async def save_session(self, session: BrowserSession) -> None:
        await self._execute(_pg.INSERT_SESSION, *_rows.session_row(session))

    async def get_session(self, session_hash: str) -> BrowserSession | None:
        row = await self._fetchrow(_pg.SELECT_SESSION, session_hash)
        return None if row is None else _rows.session_from_row(row)

    async def delete_session(self, session_hash: str) -> bool:
        sql = "DELETE FROM sessions WHERE session_hash = $1"
        return await self._execute(sql, session_hash) == "DELETE 1"

    async def close(self) -> None:
        self._closed = True
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

    async def _transaction(self, fn: Callable[[Any], Awaitable[_T]]) -> _T:
        async def in_transaction(conn: Any) -> _T:
            async with conn.transaction():
                return await fn(conn)

        return await self._run(in_transaction, retry=False)


class _Lost(Exception):
    """Another instance's key became active first: roll the transaction back."""


async def _end_tokens_of(conn: Any, column: Literal["client_id", "subject"], value: str) -> None:
    """Revoke the access tokens of a client or user (the revocation list names them until
    they expire) and delete their refresh tokens, their families first (as
    ``revoke_family`` does, so no rotation in flight slips a new token past)."""
    await conn.execute(
        f"UPDATE token_families SET revoked_at = $1 WHERE {column} = $2"  # noqa: S608
        " AND revoked_at IS NULL",
        int(time.time()),
        value,
    )
    await conn.execute(
        f"UPDATE tokens SET revoked_at = $1 WHERE {column} = $2"  # noqa: S608 (constants)
        " AND kind = 'access_token' AND revoked_at IS NULL",
        int(time.time()),
        value,
    )
    sql = f"DELETE FROM tokens WHERE {column} = $1 AND kind <> 'access_token'"  # noqa: S608
    await conn.execute(sql, value)


async def _keep_session(conn: Any) -> None:
    """Skip asyncpg's reset query on release (an extra round trip each time): this store
    keeps no session state; its transactions and advisory locks end with themselves."""


def _new_family(tokens: Sequence[Token]) -> tuple[str, str, str | None, int] | None:
    """The ``INSERT_FAMILY`` row of a new grant that has a refresh token, or None."""
    for token in tokens:
        if token.kind == "refresh_token":
            return (token.family_id, token.client_id, token.subject, token.expires_at)
    return None


def _has_nul(args: Sequence[object]) -> bool:
    """Whether a lookup names text with a NUL: PostgreSQL text cannot hold one, so no row
    matches, and a client id or username typed with ``%00`` finds nothing instead of
    failing the request."""
    return any(isinstance(arg, str) and "\x00" in arg for arg in args)


def _count(status: str) -> int:
    """Rows a command touched, from its status (``UPDATE 3``, ``DELETE 0``)."""
    return int(status.rpartition(" ")[2])
