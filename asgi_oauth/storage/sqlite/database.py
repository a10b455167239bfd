"""The SQLite store's engine: its two connections, and the one thread that writes.

SQLite lets one connection write a file at a time, and an fsync per write would
cap a server at a few hundred writes a second, so writes and reads part ways.
Reads run inline on the caller's thread over a read-only connection, since a
primary-key lookup in WAL mode costs less than a thread hop. Writes go to one
writer thread that commits them in groups: an event loop hands it the writes of
each of its iterations at once, and it takes every write already handed over,
runs each inside its own ``SAVEPOINT`` within one ``BEGIN IMMEDIATE`` transaction,
and pays for one fsync per group, so a write is on disk before its caller gets
an answer and a failing write affects no other. A write that revoked something
moves the store's ``revocation_signal`` right after its group committed, there
rather than in its caller, which may be cancelled by then. The mixins holding the
``Storage`` methods build on ``SQLiteDatabase`` and talk to it only through
``_read`` and ``_write`` (and the caches ``_clients`` and ``_access_tokens``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar

from ...errors import StorageError
from .. import _rows
from .._client_cache import ClientCache
from .._token_cache import AccessTokenCache
from . import schema
from .signal import FileSignal

_T = TypeVar("_T")

logger = logging.getLogger("asgi_oauth")

#: The most writes committed together; a bigger group would only delay its first caller.
_MAX_BATCH = 256


class SQLiteDatabase:
    """The file's connections and its writer thread, under every ``SQLiteStorage`` method."""

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
        #: Moved after every committed revocation; shared with every process on the file.
        self.revocation_signal = FileSignal(self._path)
        #: Introspection's lookups, answered from memory until the signal moves.
        self._access_tokens = AccessTokenCache(self.revocation_signal)
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None  # owned by the writer thread
        self._pending: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
        self._queue: queue.SimpleQueue[list[_Job[Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._commits = 0  # committed groups, for tests and benchmarks

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
            self.revocation_signal.close()

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

    async def _write(
        self,
        fn: Callable[[sqlite3.Connection], _T],
        *,
        atomic: bool = False,
        revokes: Callable[[_T], bool] | None = None,
    ) -> _T:
        """Run ``fn`` on the writer thread; its result once it is committed.

        ``atomic`` marks a job of one SQL statement: SQLite undoes a failed
        statement by itself, so it runs without a savepoint. ``revokes`` tells
        from the result whether the job revoked something, to be signalled once
        committed. Each SQLite call
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
        pending.append(_Job(fn, loop, future, atomic, revokes))
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
        self._signal_revocations(done)
        return []

    def _signal_revocations(self, committed: list[_Job[Any]]) -> None:
        """Tell every process on the file, once, if a committed job revoked something."""
        try:
            if any(
                job.revokes is not None and job.error is None and job.revokes(job.result)
                for job in committed
            ):
                self.revocation_signal.revoked()
        except Exception:  # the writes are committed: their callers must still succeed
            logger.exception("signalling a revocation failed; caches expire it instead")

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
    __slots__ = ("atomic", "error", "fn", "future", "loop", "result", "revokes")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], _T],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[_T],
        atomic: bool = False,
        revokes: Callable[[_T], bool] | None = None,
    ) -> None:
        self.fn = fn
        self.atomic = atomic
        self.revokes = revokes
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
