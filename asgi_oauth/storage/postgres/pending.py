"""The PostgreSQL store's short-lived rows: device authorizations, pushed requests,
keys used once, failed-attempt and request counters, and the purge of whatever has expired."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...models import DeviceAuthorization, PushedAuthorizationRequest, Token
from .. import _rows
from ..base import FAILURE_RETENTION
from . import schema as _pg
from .database import PostgresDatabase
from .tokens import _consume_then_save, _count

#: The most rows one purge statement deletes: milliseconds of the database's time.
_PURGE_BATCH = 5000
#: What ``purge_expired`` deletes: (table, the time a row expires at).
_PURGED = (
    ("authorization_codes", "expires_at"),
    ("tokens", "expires_at"),
    ("device_authorizations", "expires_at"),
    ("signing_keys", "expires_at"),
    ("pushed_authorization_requests", "expires_at"),
    ("once_keys", "expires_at"),
    ("sessions", "expires_at"),
    ("token_families", "expires_at"),
    ("request_counts", "expires_at"),
    ("failures", "at"),
)


class _Pending(PostgresDatabase):
    """Device authorizations, pushed requests, keys used once and failure counters."""

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

    async def count_request(
        self, key: str, *, window_start: int, expires_at: int, limit: int
    ) -> bool:
        return bool(await self._write(_pg.COUNT_REQUEST, key, window_start, expires_at, limit))

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
        return await _consume_then_save(
            self,
            "UPDATE device_authorizations SET status = 'consumed'"
            " WHERE device_code_hash = $1 AND status = 'approved' AND expires_at > $2",
            (device_code_hash, now),
            tokens,
        )

    # -- expiry and failed attempts ----------------------------------------------------

    async def purge_expired(self, *, now: int) -> int:
        # In batches, each its own short statement: one DELETE of a million rows holds a
        # pooled connection for seconds, and every commit behind it also flushes the WAL
        # it has written so far.
        purged = 0
        for table, column in _PURGED:
            cutoff = now - FAILURE_RETENTION if table == "failures" else now
            sql = (
                # The condition again outside: a row updated meanwhile (a family whose
                # expiry a rotation moved) is judged by its new version.
                f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("  # noqa: S608 (constants)
                f"SELECT ctid FROM {table} WHERE {column} <= $1 LIMIT $2)) AND {column} <= $1"
            )
            while True:
                deleted = _count(await self._execute(sql, cutoff, _PURGE_BATCH))
                purged += deleted
                if deleted < _PURGE_BATCH:
                    break
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
