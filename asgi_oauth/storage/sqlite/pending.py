"""The SQLite store's short-lived rows: device authorizations, pushed requests,
keys used once, failed-attempt and request counters, and the purge of whatever has expired."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from ...models import DeviceAuthorization, PushedAuthorizationRequest, Token
from .. import _rows
from ..base import FAILURE_RETENTION
from . import schema
from .database import SQLiteDatabase
from .tokens import _consume_then_save

#: The most rows one purge write deletes: a few milliseconds of the writer's time, so
#: the writes queued behind it wait no longer than that.
_PURGE_BATCH = 2000
#: What ``purge_expired`` deletes: (table, the key a batch names its rows by, the time
#: a row expires at); ``request_counts`` has no rowid.
_PURGED = (
    ("authorization_codes", "rowid", "expires_at"),
    ("tokens", "rowid", "expires_at"),
    ("device_authorizations", "rowid", "expires_at"),
    ("signing_keys", "rowid", "expires_at"),
    ("pushed_authorization_requests", "rowid", "expires_at"),
    ("once_keys", "rowid", "expires_at"),
    ("sessions", "rowid", "expires_at"),
    ("request_counts", "key, window_start", "expires_at"),
    ("failures", "rowid", "at"),
)


class _Pending(SQLiteDatabase):
    """Device authorizations, pushed requests, keys used once and failure counters."""

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
        return await _consume_then_save(
            self,
            "UPDATE device_authorizations SET status = 'consumed'"
            " WHERE device_code_hash = ? AND status = 'approved' AND expires_at > ?",
            (device_code_hash, now),
            tokens,
        )

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

    async def count_request(
        self, key: str, *, window_start: int, expires_at: int, limit: int
    ) -> bool:
        params = (key, window_start, expires_at, limit)
        return await self._write(
            lambda conn: bool(conn.execute(schema.COUNT_REQUEST, params).fetchall()), atomic=True
        )

    async def purge_expired(self, *, now: int) -> int:
        # In batches, each its own write: one DELETE of a million rows would hold the
        # writer (and the file's lock) for seconds, and every write waits behind it.
        purged = 0
        for table, key, column in _PURGED:
            cutoff = now - FAILURE_RETENTION if table == "failures" else now
            sql = (
                f"DELETE FROM {table} WHERE ({key}) IN"  # noqa: S608 (constants only)
                f" (SELECT {key} FROM {table} WHERE {column} <= ? LIMIT ?)"
            )
            while True:
                deleted = await self._write(_deleting(sql, (cutoff, _PURGE_BATCH)), atomic=True)
                purged += deleted
                if deleted < _PURGE_BATCH:
                    break
        return purged

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


def _deleting(sql: str, params: tuple[int, int]) -> Callable[[sqlite3.Connection], int]:
    """A write job: one batch of ``purge_expired``, how many rows it deleted."""
    return lambda conn: conn.execute(sql, params).rowcount
