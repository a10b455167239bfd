"""The PostgreSQL store's authorization codes, tokens, token families and signing keys.

A refresh token's family has a row in ``token_families``; a rotation and a
revocation both update that row first, so the row lock orders them and a revoked
family never gains a live token. Every revocation notifies the other instances in
its own transaction (``signal``), and only when it changed something: a request
naming an unknown or already revoked token flushes no one's cache.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import Any, Literal

from ...models import AuthorizationCode, SigningKey, Token
from .. import _rows
from ..base import successor_of
from . import schema as _pg
from .batch import Batcher
from .database import PostgresDatabase, _Lost, statement_failed
from .signal import notify


class _Tokens(PostgresDatabase):
    """Authorization codes, tokens (with their families) and signing keys."""

    # -- codes and tokens --------------------------------------------------------------

    async def save_authorization_code(self, code: AuthorizationCode) -> None:
        await self._execute(_pg.INSERT_CODE, *_rows.code_row(code))

    async def get_authorization_code(self, code_hash: str) -> AuthorizationCode | None:
        row = await self._fetchrow(_pg.SELECT_CODE, code_hash)
        return None if row is None else _rows.code_from_row(row)

    async def redeem_authorization_code(
        self, code_hash: str, *, tokens: Sequence[Token], now: int
    ) -> bool:
        return await _consume_then_save(
            self,
            "UPDATE authorization_codes SET consumed_at = $1"
            " WHERE code_hash = $2 AND consumed_at IS NULL AND expires_at > $1",
            (now, code_hash),
            tokens,
        )

    async def save_tokens(self, tokens: Sequence[Token]) -> None:
        if not tokens:
            return
        family = _new_family(tokens)
        if family is None:
            await self._token_inserts.submit(tokens)
            return
        columns = _pg.token_columns(tokens)

        async def save(conn: Any) -> None:
            await conn.execute(_pg.INSERT_FAMILY, *family)
            await conn.execute(_pg.INSERT_TOKENS, *columns)

        await self._transaction(save)

    async def get_token(self, token_hash: str) -> Token | None:
        if "\x00" in token_hash:
            return None
        row = await self._token_reads.submit(token_hash)
        return None if row is None else _rows.token_from_row(row)

    # Token issuance and introspection are the hot paths: concurrent requests share
    # one statement (``batch``). Tokens with a new family keep their transaction.

    @cached_property
    def _token_inserts(self) -> Batcher[Sequence[Token], None]:
        async def insert(batches: Sequence[Sequence[Token]]) -> list[None]:
            rows = [token for tokens in batches for token in tokens]
            await self._execute(_pg.INSERT_TOKENS, *_pg.token_columns(rows))
            return [None] * len(batches)

        return Batcher(insert, isolate=statement_failed)

    @cached_property
    def _token_reads(self) -> Batcher[str, Any]:
        async def select(hashes: Sequence[str]) -> list[Any]:
            found = {
                row["token_hash"]: row
                for row in await self._fetch(_pg.SELECT_TOKENS, list(set(hashes)))
            }
            return [found.get(token_hash) for token_hash in hashes]

        return Batcher(select)

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
        # One statement: the notification goes out with the change, in one round trip.
        rows = await self._write(
            "WITH revoked AS (UPDATE tokens SET revoked_at = $1"
            " WHERE token_hash = $2 AND revoked_at IS NULL RETURNING 1)"
            " SELECT pg_notify($3, '') FROM revoked",
            now,
            token_hash,
            self.revocation_signal.channel,
        )
        if rows:
            self.revocation_signal.moved()
        return bool(rows)

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
            count = _count(await conn.execute(sql, now, family_id))
            if count:
                await notify(conn, self.revocation_signal.channel)
            return count

        revoked: int = await self._transaction(revoke)
        if revoked:
            self.revocation_signal.moved()
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

        async def add(conn: Any) -> bool:
            retired = False
            if retire_active_until is not None:
                status = await conn.execute(
                    "UPDATE signing_keys SET retired_at = $1, expires_at = $2"
                    " WHERE alg = $3 AND retired_at IS NULL",
                    now,
                    retire_active_until,
                    key.alg,
                )
                retired = _count(status) > 0
            # A racing rotation's key, committed while the UPDATE waited, makes this a no-op.
            if await conn.execute(_pg.INSERT_SIGNING_KEY, *row) != "INSERT 0 1":
                raise _Lost
            if retired:
                await notify(conn, self.revocation_signal.channel)
            return retired

        try:
            retired: bool = await self._transaction(add)
        except _Lost:
            return False
        if retired:
            self.revocation_signal.moved()
        return True


async def _end_tokens_of(
    conn: Any, column: Literal["client_id", "subject"], value: str, channel: str
) -> None:
    """Revoke the access tokens of a client or user (the revocation list names them until
    they expire) and delete their refresh tokens, their families first (as
    ``revoke_family`` does, so no rotation in flight slips a new token past); notify
    ``channel`` at commit."""
    await _end_tokens_where(conn, f"{column} = $1", (value,), int(time.time()))
    await notify(conn, channel)


async def _end_tokens_where(conn: Any, where: str, args: tuple[object, ...], now: int) -> int:
    """``_end_tokens_of`` for the tokens and families ``where`` (constant SQL, on
    ``$1``...) matches, revoked at ``now``, without notifying; returns how many access
    tokens it revoked and refresh tokens it deleted."""
    at = f"${len(args) + 1}"
    await conn.execute(
        f"UPDATE token_families SET revoked_at = {at} WHERE {where}"  # noqa: S608
        " AND revoked_at IS NULL",
        *args,
        now,
    )
    revoked = await conn.execute(
        f"UPDATE tokens SET revoked_at = {at} WHERE {where}"  # noqa: S608 (constants)
        " AND kind = 'access_token' AND revoked_at IS NULL",
        *args,
        now,
    )
    sql = f"DELETE FROM tokens WHERE {where} AND kind <> 'access_token'"  # noqa: S608
    deleted = await conn.execute(sql, *args)
    return _count(revoked) + _count(deleted)


def _new_family(tokens: Sequence[Token]) -> tuple[str, str, str | None, int] | None:
    """The ``INSERT_FAMILY`` row of a new grant that has a refresh token, or None."""
    for token in tokens:
        if token.kind == "refresh_token":
            return (token.family_id, token.client_id, token.subject, token.expires_at)
    return None


def _count(status: str) -> int:
    """Rows a command touched, from its status (``UPDATE 3``, ``DELETE 0``)."""
    return int(status.rpartition(" ")[2])


async def _consume_then_save(
    store: PostgresDatabase, consume: str, args: tuple[object, ...], tokens: Sequence[Token]
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

    redeemed: bool = await store._transaction(redeem)
    return redeemed
