"""The client cache of database stores: bounded in time and size, forgotten on local writes."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asgi_oauth.models import Client
from asgi_oauth.storage import SQLiteStorage
from asgi_oauth.storage._client_cache import ClientCache

from .conftest import FakeClock


def test_entries_expire_after_the_ttl() -> None:
    clock = FakeClock(0)
    cache = ClientCache(1.0, clock=clock)
    client = Client("c")
    cache.put(client)
    assert cache.get("c") is client
    clock.advance(0.99)
    assert cache.get("c") is client
    clock.advance(0.01)
    assert cache.get("c") is None


def test_size_is_bounded_oldest_first() -> None:
    cache = ClientCache(60, max_size=3, clock=FakeClock(0))
    for name in "abcd":
        cache.put(Client(name))
    assert [cache.get(name) is not None for name in "abcd"] == [False, True, True, True]


def test_zero_ttl_caches_nothing() -> None:
    cache = ClientCache(0)
    cache.put(Client("c"))
    assert cache.get("c") is None


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStorage, SQLiteStorage]]:
    """Two stores on one file, like two server processes."""
    first = SQLiteStorage(tmp_path / "db", client_cache_ttl=0.3)
    second = SQLiteStorage(tmp_path / "db", client_cache_ttl=0.3)
    yield first, second
    await first.close()
    await second.close()


@pytest.mark.anyio
async def test_a_change_by_another_process_is_seen_within_the_ttl(
    stores: tuple[SQLiteStorage, SQLiteStorage],
) -> None:
    first, second = stores
    await first.save_client(Client("c", name="old"))
    assert (await second.get_client("c")) == Client("c", name="old")
    await first.save_client(Client("c", name="new"))
    assert (await second.get_client("c")) == Client("c", name="old")  # still cached
    await asyncio.sleep(0.35)
    assert (await second.get_client("c")) == Client("c", name="new")


@pytest.mark.anyio
async def test_own_writes_are_seen_at_once(stores: tuple[SQLiteStorage, SQLiteStorage]) -> None:
    first, _ = stores
    client = Client("c", name="old")
    await first.save_client(client)
    assert await first.get_client("c") == client
    await first.save_client(dataclasses.replace(client, name="new"))
    assert (await first.get_client("c")) == dataclasses.replace(client, name="new")
    assert await first.delete_client("c")
    assert await first.get_client("c") is None


@pytest.mark.anyio
async def test_unknown_clients_are_not_cached(
    stores: tuple[SQLiteStorage, SQLiteStorage],
) -> None:
    first, second = stores
    assert await second.get_client("later") is None
    await first.save_client(Client("later"))
    assert await second.get_client("later") == Client("later")
