"""The default store: one SQLite file in WAL mode, durable and safe across processes.

Reads run inline on the caller's thread over a read-only connection, since a
primary-key lookup in WAL mode costs less than a thread hop. Writes go to one
writer thread that commits them in groups: an event loop hands it the writes of
each of its iterations at once, and it takes every write already handed over,
runs each inside its own ``SAVEPOINT`` within one ``BEGIN IMMEDIATE`` transaction,
and pays for one fsync per group, so a write is on disk before its caller gets
an answer and a failing write affects no other. The conditional writes of the
``Storage`` protocol decide with a guarded ``UPDATE`` (or a read, when the
old row is the answer) inside that transaction, so concurrent servers on one
file still get one winner. Every SQLite failure reaches the
caller as ``StorageError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Generic, Literal, TypeVar

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
from . import _rows
from . import _sqlite_schema as schema
from ._client_cache import ClientCache
from .base import FAILURE_RETENTION, successor_of

_T = TypeVar("_T")

#: The most writes committed together; a bigger group would only delay its first caller.
_MAX_BATCH = 256


class SQLiteStorage:
    """A ``Storage`` in one SQLite file, opened (and migrated) on first use.

    ``synchronous="FULL"`` fsyncs every commit; ``"NORMAL"`` may lose the last
    commits on power loss, never on a crash of the process. ``busy_timeout`` is
    how many seconds to wait for another process holding the file's lock.
    ``client_cache_ttl`` is how long a client read from the file is reused: a
    client changed by another process (the command line, another server) is
    seen within that many seconds; 0 reads it every time.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "asgi_oauth.db",
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        busy_timeout: float = 5.0,
        client_cache_ttl: float = 1.0,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', not {synchronous!r}")
        if os.fspath(path) in ("", ":memory:"):
            raise ValueError("SQLiteStorage needs a file: its reader and writer share it")
        self._path = os.fspath(path)
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._clients = ClientCache(client_cache_ttl)
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None  # owned by the writer thread
        self._pending: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
        self._queue: queue.SimpleQueue[list[_Job[Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._commits = 0  # committed groups, for tests and benchmarks

    async def migrate(self) -> None:
        """Create or upgrade the schema now rather than on first use; safe to repeat."""
        await self._write(_nothing)

    async def get_client(self, client_id: str) -> Client | None:
        client = self._clients.get(client_id)
        if client is None:
            rows = await self._read(schema.SELECT_CLIENTS + " WHERE client_id = ?", (client_id,))
            if not rows:
                return None
            client = _rows.client_from_row(rows[0])
            self._clients.put(client)
        return client

    async def add_client(self, client: Client) -> bool:
        return await self._put_client(client, replace=False)

    async def save_client(self, client: Client) -> None:
        await self._put_client(client, replace=True)

    async def _put_client(self, client: Client, *, replace: bool) -> bool:
        row = _rows.client_row(client)
        origins = [(client.client_id, origin) for origin in client.allowed_origins]

        def save(conn: sqlite3.Connection) -> bool:
            insert = schema.INSERT_CLIENT if replace else schema.ADD_CLIENT
            if conn.execute(insert, row).rowcount == 0:
                return False
            conn.execute("DELETE FROM client_origins WHERE client_id = ?", (client.client_id,))
            conn.executemany(
                "INSERT OR IGNORE INTO client_origins (client_id, origin) VALUES (?, ?)", origins
            )
            return True

        saved = await self._write(save)
        self._clients.forget(client.client_id)
        return saved

    async def delete_client(self, client_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            if conn.execute("DELETE FROM clients WHERE client_id = ?", (client_id,)).rowcount == 0:
                return False
            conn.execute("DELETE FROM client_origins WHERE client_id = ?", (client_id,))
            conn.execute("DELETE FROM authorization_codes WHERE client_id = ?", (client_id,))
            _end_tokens_of(conn, "client_id", client_id)
            conn.execute("DELETE FROM device_authorizations WHERE client_id = ?", (client_id,))
            conn.execute(
                "DELETE FROM pushed_authorization_requests WHERE client_id = ?", (client_id,)
            )
            conn.execute("DELETE FROM consents WHERE client_id = ?", (client_id,))
            return True

        deleted = await self._write(delete)
        self._clients.forget(client_id)
        return deleted

    async def list_clients(self) -> list[Client]:
        return [
            _rows.client_from_row(row)
            for row in await self._read(schema.SELECT_CLIENTS + " ORDER BY client_id")
        ]

    async def is_allowed_origin(self, origin: str) -> bool:
        sql = "SELECT 1 FROM client_origins WHERE origin = ? LIMIT 1"
        return bool(await self._read(sql, (origin,)))

    async def get_user(self, username: str) -> User | None:
        rows = await self._read(schema.SELECT_USER, (username,))
        return _rows.user_from_row(rows[0]) if rows else None

    async def get_user_by_id(self, user_id: str) -> User | None:
        rows = await self._read(schema.SELECT_USER_BY_ID, (user_id,))
        return _rows.user_from_row(rows[0]) if rows else None

    async def add_user(self, user: User) -> bool:
        row = _rows.user_row(user)
        return await self._write(
            lambda conn: conn.execute(schema.INSERT_USER, row).rowcount == 1, atomic=True
        )

    async def save_user(self, user: User) -> None:
        row = _rows.user_row(user)
        await self._write(lambda conn: conn.execute(schema.UPSERT_USER, row).close(), atomic=True)

    async def list_users(self) -> list[User]:
        rows = await self._read(schema.SELECT_USERS + " ORDER BY username")
        return [_rows.user_from_row(row) for row in rows]

    async def delete_user(self, username: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            found = conn.execute(schema.SELECT_USER, (username,)).fetchall()
            if not found:
                return False
            user_id = found[0][0]
            for table in ("consents", "authorization_codes", "device_authorizations"):
                conn.execute(f"DELETE FROM {table} WHERE subject = ?", (user_id,))  # noqa: S608
            conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
            _end_tokens_of(conn, "subject", user_id)
            conn.execute("DELETE FROM users WHERE username = ?", (username,))
            return True

        return await self._write(delete)

    async def get_consent(self, subject: str, client_id: str) -> frozenset[str] | None:
        rows = await self._read(schema.SELECT_CONSENT, (subject, client_id))
        return frozenset(rows[0][0].split()) if rows else None

    async def save_consent(self, subject: str, client_id: str, scope: frozenset[str]) -> None:
        row = _rows.consent_row(subject, client_id, scope)
        await self._write(
            lambda conn: conn.execute(schema.INSERT_CONSENT, row).close(), atomic=True
        )

    async def save_authorization_code(self, code: AuthorizationCode) -> None:
        row = _rows.code_row(code)
        await self._write(lambda conn: conn.execute(schema.INSERT_CODE, row).close(), atomic=True)

    async def get_authorization_code(self, code_hash: str) -> AuthorizationCode | None:
        rows = await self._read(schema.SELECT_CODE, (code_hash,))
        return _rows.code_from_row(rows[0]) if rows else None

    async def redeem_authorization_code(
        self, code_hash: str, *, tokens: Sequence[Token], now: int
    ) -> bool:
        return await self._consume_then_save(
            "UPDATE authorization_codes SET consumed_at = ?"
            " WHERE code_hash = ? AND consumed_at IS NULL AND expires_at > ?",
            (now, code_hash, now),
            tokens,
        )

    async def save_tokens(self, tokens: Sequence[Token]) -> None:
        if not tokens:
            return
        insert, rows = schema.insert_tokens(len(tokens)), schema.token_rows(tokens)
        await self._write(lambda conn: conn.execute(insert, rows).close(), atomic=True)

    async def get_token(self, token_hash: str) -> Token | None:
        rows = await self._read(schema.SELECT_TOKEN, (token_hash,))
        return _rows.token_from_row(rows[0]) if rows else None

    async def rotate_refresh_token(
        self,
        token_hash: str,
        *,
        tokens: Sequence[Token],
        now: int,
        sealed_response: str | None = None,
    ) -> bool:
        successor = successor_of(tokens)
        insert, rows = schema.insert_tokens(len(tokens)), schema.token_rows(tokens)

        def rotate(conn: sqlite3.Connection) -> bool:
            # One writer at a time holds the file: a family revoked before this ran has
            # this token revoked (or deleted), and one revoked after sees the new rows.
            rotated = conn.execute(
                "UPDATE tokens SET replaced_by = ?, rotated_at = ?, sealed_response = ?"
                " WHERE token_hash = ? AND revoked_at IS NULL AND replaced_by IS NULL",
                (successor, now, sealed_response, token_hash),
            )
            if rotated.rowcount == 0:
                return False
            conn.execute(insert, rows)
            return True

        return await self._write(rotate)

    async def revoke_token(self, token_hash: str, *, now: int) -> bool:
        sql = "UPDATE tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL"
        return await self._write(
            lambda conn: conn.execute(sql, (now, token_hash)).rowcount == 1, atomic=True
        )

    async def revoke_family(self, family_id: str, *, now: int) -> int:
        sql = "UPDATE tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL"
        return await self._write(
            lambda conn: conn.execute(sql, (now, family_id)).rowcount, atomic=True
        )

    async def list_revoked_access_tokens(self, *, now: int) -> list[str]:
        rows = await self._read(schema.SELECT_REVOKED_ACCESS_TOKENS, (now,))
        return [token_hash for (token_hash,) in rows]

    async def list_signing_keys(self, *, now: int) -> list[SigningKey]:
        rows = await self._read(schema.SELECT_SIGNING_KEYS, (now,))
        return [_rows.signing_key_from_row(row) for row in rows]

    async def add_signing_key(
        self, key: SigningKey, *, retire_active_until: int | None, now: int
    ) -> bool:
        row = _rows.signing_key_row(key)

        def add(conn: sqlite3.Connection) -> bool:
            # The writer holds the file's lock: nobody adds a key between the two.
            if retire_active_until is not None:
                conn.execute(
                    "UPDATE signing_keys SET retired_at = ?, expires_at = ?"
                    " WHERE alg = ? AND retired_at IS NULL",
                    (now, retire_active_until, key.alg),
                )
            return conn.execute(schema.INSERT_SIGNING_KEY, row).rowcount == 1

        return await self._write(add)

    async def save_device_authorization(self, device: DeviceAuthorization) -> None:
        row = _rows.device_row(device)
        await self._write(lambda conn: conn.execute(schema.INSERT_DEVICE, row).close(), atomic=True)

    async def get_device_authorization(self, user_code_hash: str) -> DeviceAuthorization | None:
        sql = schema.SELECT_DEVICES + " WHERE user_code_hash = ?"
        rows = await self._read(sql, (user_code_hash,))
        return _rows.device_from_row(rows[0]) if rows else None

    async def decide_device_authorization(
        self, user_code_hash: str, *, subject: str, approved: bool, now: int
    ) -> bool:
        sql = (
            "UPDATE device_authorizations SET status = ?, subject = ?"
            " WHERE user_code_hash = ? AND status = 'pending' AND expires_at > ?"
        )
        params = ("approved" if approved else "denied", subject, user_code_hash, now)
        return await self._write(lambda conn: conn.execute(sql, params).rowcount == 1, atomic=True)

    async def poll_device_authorization(
        self, device_code_hash: str, *, client_id: str, now: int
    ) -> DeviceAuthorization | None:
        select = schema.SELECT_DEVICES + " WHERE device_code_hash = ? AND client_id = ?"

        def poll(conn: sqlite3.Connection) -> DeviceAuthorization | None:
            rows = conn.execute(select, (device_code_hash, client_id)).fetchall()
            if not rows:
                return None
            device = _rows.device_from_row(rows[0])
            last, interval = device.last_polled_at, device.interval
            if last is not None and now - last < interval:
                interval += 5
            conn.execute(
                "UPDATE device_authorizations SET last_polled_at = ?, interval = ?"
                " WHERE device_code_hash = ?",
                (now, interval, device_code_hash),
            )
            return device

        return await self._write(poll)

    async def redeem_device_code(
        self, device_code_hash: str, *, tokens: Sequence[Token], now: int
    ) -> bool:
        return await self._consume_then_save(
            "UPDATE device_authorizations SET status = 'consumed'"
            " WHERE device_code_hash = ? AND status = 'approved' AND expires_at > ?",
            (device_code_hash, now),
            tokens,
        )

    async def _consume_then_save(
        self, consume: str, args: tuple[object, ...], tokens: Sequence[Token]
    ) -> bool:
        """One job: a guarded UPDATE of one row; the tokens only if it matched."""
        insert, rows = schema.insert_tokens(len(tokens)), schema.token_rows(tokens)

        def redeem(conn: sqlite3.Connection) -> bool:
            if conn.execute(consume, args).rowcount != 1:
                return False
            conn.execute(insert, rows)
            return True

        return await self._write(redeem)

    async def save_pushed_authorization_request(self, request: PushedAuthorizationRequest) -> None:
        row = _rows.pushed_request_row(request)
        await self._write(
            lambda conn: conn.execute(schema.INSERT_PUSHED_REQUEST, row).close(), atomic=True
        )

    async def get_pushed_authorization_request(
        self, request_uri_hash: str
    ) -> PushedAuthorizationRequest | None:
        rows = await self._read(schema.SELECT_PUSHED_REQUEST, (request_uri_hash,))
        return _rows.pushed_request_from_row(rows[0]) if rows else None

    async def consume_pushed_authorization_request(
        self, request_uri_hash: str, *, now: int
    ) -> bool:
        sql = (
            "UPDATE pushed_authorization_requests SET consumed_at = ?"
            " WHERE request_uri_hash = ? AND consumed_at IS NULL AND expires_at > ?"
        )
        params = (now, request_uri_hash, now)
        return await self._write(lambda conn: conn.execute(sql, params).rowcount == 1, atomic=True)

    async def use_once(self, key: str, *, expires_at: int, now: int) -> bool:
        params = (key, expires_at, now)
        return await self._write(
            lambda conn: conn.execute(schema.USE_ONCE, params).rowcount == 1, atomic=True
        )

    async def purge_expired(self, *, now: int) -> int:
        def purge(conn: sqlite3.Connection) -> int:
            codes = conn.execute("DELETE FROM authorization_codes WHERE expires_at <= ?", (now,))
            tokens = conn.execute("DELETE FROM tokens WHERE expires_at <= ?", (now,))
            devices = conn.execute(
                "DELETE FROM device_authorizations WHERE expires_at <= ?", (now,)
            )
            keys = conn.execute("DELETE FROM signing_keys WHERE expires_at <= ?", (now,))
            pushed = conn.execute(
                "DELETE FROM pushed_authorization_requests WHERE expires_at <= ?", (now,)
            )
            once = conn.execute("DELETE FROM once_keys WHERE expires_at <= ?", (now,))
            sessions = conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
            failures = conn.execute(
                "DELETE FROM failures WHERE at <= ?", (now - FAILURE_RETENTION,)
            )
            done = (codes, tokens, devices, keys, pushed, once, sessions, failures)
            return sum(c.rowcount for c in done)

        return await self._write(purge)

    async def take_attempt(self, key: str, *, limit: int, since: int, now: int) -> int | None:
        def take(conn: sqlite3.Connection) -> int | None:
            # Inside the writer's transaction, which holds the file: no other process
            # counts between this read and the insert.
            sql = "SELECT count(*), min(at) FROM failures WHERE key = ? AND at >= ?"
            ((count, first),) = conn.execute(sql, (key, since)).fetchall()
            if count >= limit:
                return int(first)
            conn.execute("INSERT INTO failures (key, at) VALUES (?, ?)", (key, now))
            return None

        return await self._write(take)

    async def forget_failure(self, key: str, *, at: int) -> None:
        sql = (
            "DELETE FROM failures WHERE rowid ="
            " (SELECT rowid FROM failures WHERE key = ? AND at = ? LIMIT 1)"
        )
        await self._write(lambda conn: conn.execute(sql, (key, at)).close(), atomic=True)

    async def clear_failures(self, key: str) -> None:
        sql = "DELETE FROM failures WHERE key = ?"
        await self._write(lambda conn: conn.execute(sql, (key,)).close(), atomic=True)

    async def save_session(self, session: BrowserSession) -> None:
        row = _rows.session_row(session)
        await self._write(
            lambda conn: conn.execute(schema.INSERT_SESSION, row).close(), atomic=True
        )

    async def get_session(self, session_hash: str) -> BrowserSession | None:
        rows = await self._read(schema.SELECT_SESSION, (session_hash,))
        return _rows.session_from_row(rows[0]) if rows else None

    async def delete_session(self, session_hash: str) -> bool:
        sql = "DELETE FROM sessions WHERE session_hash = ?"
        return await self._write(
            lambda conn: conn.execute(sql, (session_hash,)).rowcount == 1, atomic=True
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._flush(asyncio.get_running_loop())
        self._closed = True
        try:
            if self._thread is not None:
                self._queue.put(None)  # after every write already handed over
                await asyncio.to_thread(self._thread.join)
        finally:
            with self._read_lock:
                if self._reader is not None:
                    self._reader.close()
                    self._reader = None

    # -- reading, on the caller's thread ---------------------------------------------------

    async def _read(self, sql: str, params: _rows.Row = ()) -> list[Any]:
        conn = self._reader or await self._open_reader()
        try:
            with self._read_lock:
                return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite read failed: {exc}") from exc

    async def _open_reader(self) -> sqlite3.Connection:
        await self._write(_nothing)  # the writer creates the file and its schema first
        with self._read_lock:
            if self._closed:
                raise StorageError("the store is closed")
            if self._reader is None:
                try:
                    self._reader = self._connect()
                    self._reader.execute("PRAGMA query_only = 1")
                except sqlite3.Error as exc:
                    if self._reader is not None:
                        self._reader.close()
                        self._reader = None
                    raise StorageError(f"cannot open {self._path}: {exc}") from exc
            return self._reader

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,  # sets SQLite's busy_timeout
            isolation_level=None,  # autocommit: transactions are explicit
            check_same_thread=False,
        )

    # -- writing, on the writer thread ------------------------------------------------------

    async def _write(self, fn: Callable[[sqlite3.Connection], _T], *, atomic: bool = False) -> _T:
        """Run ``fn`` on the writer thread; its result once it is committed.

        ``atomic`` marks a job of one SQL statement: SQLite undoes a failed
        statement by itself, so it runs without a savepoint. Each SQLite call
        hands the GIL to the event loop and back, which is the writer's main
        cost under load.
        """
        if self._closed:
            raise StorageError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(self._flush, loop)
        pending.append(_Job(fn, loop, future, atomic))
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand the writer every write a loop made in one iteration.

        Waking the writer once the loop is done, rather than at each write,
        keeps the two threads from taking the GIL from each other write by write.
        """
        jobs = self._pending.pop(loop, None)
        if not jobs:
            return
        if self._closed:
            for job in jobs:
                job.error = StorageError("the store is closed")
            _settle(jobs)
            return
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    name = "asgi_oauth-sqlite-writer"
                    self._thread = threading.Thread(target=self._run, name=name, daemon=True)
                    self._thread.start()
        self._queue.put(jobs)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            jobs, stopping = self._next_group()
            for start in range(0, len(jobs), _MAX_BATCH):
                self._run_group(jobs[start : start + _MAX_BATCH])
        self._close_writer()

    def _next_group(self) -> tuple[list[_Job[Any]], bool]:
        """Wait for some writes, then take those already queued; True when told to stop."""
        jobs: list[_Job[Any]] = []
        item = self._queue.get()
        while item is not None:
            jobs += item
            if len(jobs) >= _MAX_BATCH:
                return jobs, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return jobs, False
        return jobs, True

    def _run_group(self, jobs: list[_Job[Any]]) -> None:
        pending = jobs
        try:
            while pending:
                pending = self._commit(pending)
        except BaseException as exc:  # a bug: fail the rest, never leave callers waiting
            for job in pending:
                job.error = StorageError(f"SQLite writer failed: {exc!r}")
            self._close_writer()  # rolls back; the next group reopens it
        finally:
            _deliver(jobs)

    def _commit(self, jobs: list[_Job[Any]]) -> list[_Job[Any]]:
        """Run ``jobs`` in one transaction; return those left for the next one.

        Some failures (disk full, I/O errors) make SQLite roll back the whole
        transaction: the jobs run so far then fail, and the rest are retried.
        """
        done: list[_Job[Any]] = []
        conn = self._writer
        try:
            if conn is None:
                conn = self._writer = self._open_writer()
            conn.execute("BEGIN IMMEDIATE")
            for job in jobs:
                done.append(job)
                if not job.atomic:
                    conn.execute("SAVEPOINT job")
                try:
                    job.result = job.fn(conn)
                except Exception as exc:
                    job.error = _as_storage_error(exc)
                    if not conn.in_transaction:
                        raise _RolledBack from exc
                    if not job.atomic:
                        conn.execute("ROLLBACK TO job")
                if not job.atomic:
                    conn.execute("RELEASE job")
            conn.execute("COMMIT")
        except (sqlite3.Error, _RolledBack) as exc:
            cause = exc.__cause__ if isinstance(exc, _RolledBack) else exc
            if conn is not None and conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # SQLite rolled back already
                    conn.execute("ROLLBACK")
            for job in done or jobs:
                if job.error is None:
                    job.error = StorageError(f"SQLite write failed: {cause}")
                    job.error.__cause__ = cause
            return jobs[len(done) :] if done else []
        self._commits += 1
        return []

    def _open_writer(self) -> sqlite3.Connection:
        conn = self._connect()
        try:
            self._use_wal(conn)
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA cache_size = -16384")  # KiB: keeps hot index pages
            schema.migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL, which is remembered in the file, unless it is already.

        SQLite fails the switch at once, without waiting, while another process
        opens the file, so two processes starting together retry here.
        """
        deadline = time.monotonic() + self._busy_timeout
        while conn.execute("PRAGMA journal_mode").fetchall() != [("wal",)]:
            try:
                conn.execute("PRAGMA journal_mode = WAL").fetchall()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class _RolledBack(Exception):
    """SQLite rolled back the whole transaction while a job failed."""


class _Job(Generic[_T]):
    __slots__ = ("atomic", "error", "fn", "future", "loop", "result")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], _T],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[_T],
        atomic: bool = False,
    ) -> None:
        self.fn = fn
        self.atomic = atomic
        self.loop = loop
        self.future = future
        self.result: _T | None = None
        self.error: BaseException | None = None


def _deliver(jobs: list[_Job[Any]]) -> None:
    """Resolve the jobs' futures, with one wake-up per event loop."""
    by_loop: defaultdict[asyncio.AbstractEventLoop, list[_Job[Any]]] = defaultdict(list)
    for job in jobs:
        by_loop[job.loop].append(job)
    for loop, its_jobs in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
            loop.call_soon_threadsafe(_settle, its_jobs)


def _settle(jobs: list[_Job[Any]]) -> None:
    for job in jobs:
        if job.future.done():  # cancelled by its caller
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)


def _as_storage_error(exc: Exception) -> BaseException:
    if not isinstance(exc, sqlite3.Error):
        return exc
    error = StorageError(f"SQLite write failed: {exc}")
    error.__cause__ = exc
    return error


def _nothing(conn: sqlite3.Connection) -> None:
    return None


def _end_tokens_of(
    conn: sqlite3.Connection, column: Literal["client_id", "subject"], value: str
) -> None:
    """Revoke the access tokens of a client or user (the revocation list names them until
    they expire) and delete their refresh tokens."""
    conn.execute(
        f"UPDATE tokens SET revoked_at = ? WHERE {column} = ?"  # noqa: S608 (constants)
        " AND kind = 'access_token' AND revoked_at IS NULL",
        (int(time.time()), value),
    )
    conn.execute(
        f"DELETE FROM tokens WHERE {column} = ? AND kind <> 'access_token'",  # noqa: S608
        (value,),
    )
