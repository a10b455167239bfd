"""SQLite: introspection's lookups of access tokens come from memory until the store's
revocation signal moves, and every change another process makes is still seen at once.

Two stores on one file stand for two processes (``uvicorn --workers 2``); the real
workers are in ``test_instant_revocation_sqlite`` and the contract tests."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from asgi_oauth.models import Token
from asgi_oauth.revocation_signal import LocalSignal
from asgi_oauth.storage import SQLiteStorage
from asgi_oauth.storage._token_cache import AccessTokenCache

from .test_instant_revocation_sqlite import make_token
from .test_storage import make_client

pytestmark = pytest.mark.anyio


class Pair:
    def __init__(self, path: Path) -> None:
        self.one, self.other = SQLiteStorage(path), SQLiteStorage(path)
        self.reads = 0
        original = self.other._read

        async def counting(sql: str, params: Any = ()) -> list[Any]:
            self.reads += 1
            return await original(sql, params)

        self.other._read = counting  # type: ignore[method-assign]


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    stores = Pair(tmp_path / "oauth.db")
    await stores.one.migrate()
    yield stores
    await stores.one.close()
    await stores.other.close()


async def test_a_lookup_reads_nothing_once_the_row_is_kept(pair: Pair) -> None:
    await pair.one.save_tokens([make_token("at-1")])
    first = await pair.other.get_token("at-1")  # the signal is read from now on
    assert await pair.other.get_token("at-1") == first  # read under the signal: kept
    reads = pair.reads
    assert await pair.other.get_token("at-1") == first
    assert pair.reads == reads


async def test_a_lookup_that_finds_nothing_leaves_no_signal_file(
    pair: Pair, tmp_path: Path
) -> None:
    """The signal file is made by the first revocation, or once an access token was
    found: looking up an unknown token (``asgi-oauth tokens revoke`` of a typo) makes
    nothing beside the database."""
    assert await pair.other.get_token("unknown") is None
    assert not (tmp_path / "oauth.db-revocations").exists()


async def test_a_revocation_by_another_process_is_seen_at_once(pair: Pair) -> None:
    await pair.one.save_tokens([make_token("at-1")])
    for _ in range(3):  # kept from the second on
        assert (await pair.other.get_token("at-1")).revoked_at is None  # type: ignore[union-attr]
    assert await pair.one.revoke_token("at-1", now=int(time.time()))
    token = await pair.other.get_token("at-1")
    assert token is not None and token.revoked_at is not None
    assert not token.is_active(int(time.time()))


@pytest.mark.parametrize("how", ["family", "client", "grant"])
async def test_every_way_of_ending_an_access_token_is_seen_at_once(pair: Pair, how: str) -> None:
    now = int(time.time())
    await pair.one.save_client(make_client("client-1"))
    await pair.one.save_tokens([_with(make_token("at-1"), subject="user-1")])
    for _ in range(3):  # kept from the second on
        kept = await pair.other.get_token("at-1")
        assert kept is not None and kept.is_active(now)
    if how == "family":  # refresh token reuse, a replayed code
        assert await pair.one.revoke_family("family-1", now=now)
    elif how == "client":
        assert await pair.one.delete_client("client-1")
    else:  # the person revoked the application on /account
        assert await pair.one.revoke_grant("user-1", "client-1", now=now)
    ended = await pair.other.get_token("at-1")
    assert ended is not None and not ended.is_active(now)


async def test_refresh_tokens_are_read_every_time(pair: Pair) -> None:
    """A rotation changes a refresh token without a revocation: it is never kept."""
    await pair.one.save_tokens([make_token("rt-1", "refresh_token")])
    await pair.other.get_token("rt-1")
    reads = pair.reads
    successor = _with(make_token("rt-2", "refresh_token"), parent_hash="rt-1")
    assert await pair.one.rotate_refresh_token("rt-1", tokens=[successor], now=int(time.time()))
    rotated = await pair.other.get_token("rt-1")
    assert pair.reads == reads + 1
    assert rotated is not None and rotated.rotated_at is not None


async def test_an_unknown_token_is_looked_up_again(pair: Pair) -> None:
    """Not kept as unknown: another process may issue it the next moment."""
    assert await pair.other.get_token("at-later") is None
    await pair.one.save_tokens([make_token("at-later")])
    assert await pair.other.get_token("at-later") is not None


def warmed(cache: AccessTokenCache) -> AccessTokenCache:
    """A cache that has found its first access token, and so reads the signal."""
    cache.put(cache.version, make_token("first"))
    return cache


def test_nothing_is_kept_until_the_signal_is_read() -> None:
    cache = AccessTokenCache(LocalSignal())
    assert cache.get("at-1") is None
    cache.put(cache.version, make_token("at-1"))  # read before the signal was: not kept
    assert cache.get("at-1") is None
    cache.put(cache.version, make_token("at-1"))
    assert cache.get("at-1") is not None


def test_rows_read_before_a_revocation_are_not_kept() -> None:
    signal = LocalSignal()
    cache = warmed(AccessTokenCache(signal))
    assert cache.get("at-1") is None
    seen = cache.version
    signal.revoked()  # committed between the version read and the row read's answer
    assert cache.get("other") is None  # the next lookup clears and moves on
    cache.put(seen, make_token("at-1"))
    assert cache.get("at-1") is None


def test_entries_live_no_longer_than_their_ttl() -> None:
    now = [100.0]
    cache = warmed(AccessTokenCache(LocalSignal(), ttl=5.0, clock=lambda: now[0]))
    cache.get("at-1")
    cache.put(cache.version, make_token("at-1"))
    assert cache.get("at-1") is not None
    now[0] += 5.0
    assert cache.get("at-1") is None


def test_a_signal_that_is_not_live_keeps_nothing() -> None:
    class Deaf(LocalSignal):
        live = False

    cache = warmed(AccessTokenCache(Deaf()))
    cache.get("at-1")
    cache.put(cache.version, make_token("at-1"))
    assert cache.get("at-1") is None


def test_the_cache_is_bounded() -> None:
    cache = warmed(AccessTokenCache(LocalSignal(), max_size=3))
    cache.get("x")
    for n in range(4):
        cache.put(cache.version, make_token(f"at-{n}"))
    assert [cache.get(f"at-{n}") is not None for n in range(4)] == [False] * 3 + [True]


def _with(token: Token, **changes: Any) -> Token:
    return dataclasses.replace(token, **changes)
