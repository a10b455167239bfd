"""The SQLite store's authorization codes, tokens and signing keys.

A rotation or a key change that must see no concurrent writer runs as one job on
the writer thread, whose ``BEGIN IMMEDIATE`` holds the file against other processes.
Every revocation, and every new signing key, moves the store's revocation signal.
The two helpers here also serve the other mixins: ``_consume_then_save`` redeems a
code or a device code for tokens in one job, and ``_end_tokens_of`` ends the tokens
of a deleted client or user (``_end_tokens_where``, those of a withdrawn grant).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Literal

from ...models import AuthorizationCode, SigningKey, Token
from .. import _rows
from ..base import successor_of
from . import schema
from .database import SQLiteDatabase


class _Tokens(SQLiteDatabase):
    """Authorization codes, refresh and access tokens, and signing keys."""

    async def save_authorization_code(self, code: AuthorizationCode) -> None:
        row = _rows.code_row(code)
        await self._write(lambda conn: conn.execute(schema.INSERT_CODE, row).close(), atomic=True)

    async def get_authorization_code(self, code_hash: str) -> AuthorizationCode | None:
        rows = await self._read(schema.SELECT_CODE, (code_hash,))
        return _rows.code_from_row(rows[0]) if rows else None

    async def redeem_authorization_code(
        self, code_hash: str, *, tokens: Sequence[Token], now: int
    ) -> bool:
        return await _consume_then_save(
            self,
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
        cache = self._access_tokens
        token = cache.get(token_hash)
        if token is not None:
            return token
        version = cache.version  # read before the row: see _token_cache
        rows = await self._read(schema.SELECT_TOKEN, (token_hash,))
        if not rows:
            return None
        token = _rows.token_from_row(rows[0])
        cache.put(version, token)
        return token

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
            lambda conn: conn.execute(sql, (now, token_hash)).rowcount == 1,
            atomic=True,
            revokes=bool,
        )

    async def revoke_family(self, family_id: str, *, now: int) -> int:
        sql = "UPDATE tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL"
        return await self._write(
            lambda conn: conn.execute(sql, (now, family_id)).rowcount, atomic=True, revokes=bool
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

        # Signalled: other processes reread their keys, to sign with the new one and to
        # refuse what a key retired at once signed.
        return await self._write(add, revokes=bool)


async def _consume_then_save(
    store: SQLiteDatabase, consume: str, args: tuple[object, ...], tokens: Sequence[Token]
) -> bool:
    """One job: a guarded UPDATE of one row; the tokens only if it matched."""
    insert, rows = schema.insert_tokens(len(tokens)), schema.token_rows(tokens)

    def redeem(conn: sqlite3.Connection) -> bool:
        if conn.execute(consume, args).rowcount != 1:
            return False
        conn.execute(insert, rows)
        return True

    return await store._write(redeem)


def _end_tokens_of(
    conn: sqlite3.Connection, column: Literal["client_id", "subject"], value: str
) -> None:
    """Revoke the access tokens of a client or user (the revocation list names them until
    they expire) and delete their refresh tokens."""
    _end_tokens_where(conn, f"{column} = ?", (value,), int(time.time()))


def _end_tokens_where(
    conn: sqlite3.Connection, where: str, args: tuple[object, ...], now: int
) -> int:
    """``_end_tokens_of`` for the tokens ``where`` (constant SQL) matches, revoked at
    ``now``; returns how many access tokens it revoked and refresh tokens it deleted."""
    revoked = conn.execute(
        f"UPDATE tokens SET revoked_at = ? WHERE {where}"  # noqa: S608 (constants)
        " AND kind = 'access_token' AND revoked_at IS NULL",
        (now, *args),
    ).rowcount
    deleted = conn.execute(
        f"DELETE FROM tokens WHERE {where} AND kind <> 'access_token'",  # noqa: S608
        args,
    ).rowcount
    return revoked + deleted
