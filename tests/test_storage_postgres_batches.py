"""PostgreSQL: the token inserts and lookups of concurrent requests share one statement,
and one bad call in a batch fails alone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from asgi_oauth.errors import StorageError
from asgi_oauth.storage.postgres import schema as pg
from asgi_oauth.storage.postgres.batch import MAX_BATCH, Batcher

from .test_storage import make_token
from .test_storage_postgres import Stores, stores  # noqa: F401 - the fixture

pytestmark = pytest.mark.anyio


def count_statements(store: Any, method: str, sql: str) -> list[tuple[object, ...]]:
    """Record the arguments of each ``sql`` statement the store runs through ``method``."""
    calls: list[tuple[object, ...]] = []
    original = getattr(store, method)

    async def counting(statement: str, *args: object) -> Any:
        if statement == sql:
            calls.append(args)
        return await original(statement, *args)

    setattr(store, method, counting)
    return calls


async def test_concurrent_token_inserts_are_one_statement(stores: Stores) -> None:  # noqa: F811
    store = stores()
    await store.migrate()
    inserts = count_statements(store, "_execute", pg.INSERT_TOKENS)
    tokens = [make_token(f"batch-{n}") for n in range(40)]
    await asyncio.gather(*(store.save_tokens([token]) for token in tokens))
    assert len(inserts) == 1
    assert len(inserts[0][0]) == 40  # type: ignore[arg-type]
    for token in tokens:
        assert await store.get_token(token.token_hash) == token


async def test_a_bad_token_in_a_batch_fails_alone(stores: Stores) -> None:  # noqa: F811
    store = stores()
    await store.migrate()
    good = [make_token(f"good-{n}") for n in range(6)]
    # PostgreSQL text cannot hold a NUL: the statement fails, whichever row it is.
    bad = make_token("bad", client_id="client\x00")
    results = await asyncio.gather(
        *(store.save_tokens([token]) for token in [*good[:3], bad, *good[3:]]),
        return_exceptions=True,
    )
    assert [isinstance(r, StorageError) for r in results] == [False] * 3 + [True] + [False] * 3
    for token in good:
        assert await store.get_token(token.token_hash) == token
    assert await store.get_token("bad") is None


async def test_concurrent_lookups_are_one_statement(stores: Stores) -> None:  # noqa: F811
    store = stores()
    tokens = [make_token(f"read-{n}") for n in range(5)]
    await store.save_tokens(tokens)
    reads = count_statements(store, "_fetch", pg.SELECT_TOKENS)
    wanted = [t.token_hash for t in tokens] * 3 + ["unknown-1", "unknown-2", "read-0"]
    found = await asyncio.gather(*(store.get_token(h) for h in wanted))
    assert len(reads) == 1
    assert [t.token_hash if t else None for t in found] == [
        h if h.startswith("read-") else None for h in wanted
    ]


async def test_a_lost_database_fails_every_call_of_the_batch() -> None:
    async def down(items: Any) -> list[None]:
        raise StorageError("PostgreSQL: ConnectionDoesNotExistError")

    batcher: Batcher[int, None] = Batcher(down, isolate=lambda error: False)
    results = await asyncio.gather(*(batcher.submit(n) for n in range(5)), return_exceptions=True)
    assert all(isinstance(r, StorageError) for r in results)


async def test_a_batch_never_holds_more_than_its_limit() -> None:
    sizes: list[int] = []

    async def run(items: Any) -> list[int]:
        sizes.append(len(items))
        return [item * 2 for item in items]

    batcher: Batcher[int, int] = Batcher(run)
    count = MAX_BATCH * 2 + 3
    assert await asyncio.gather(*(batcher.submit(n) for n in range(count))) == [
        n * 2 for n in range(count)
    ]
    assert sizes == [MAX_BATCH, MAX_BATCH, 3]


async def test_a_lone_call_is_not_held_back() -> None:
    """A call made alone goes out on the loop's next turn, not after a timer."""
    turns = 0

    async def run(items: Any) -> list[int]:
        return [turns for _ in items]

    async def count_turns() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    counter = asyncio.ensure_future(count_turns())
    try:
        assert await Batcher(run).submit(1) <= 2
    finally:
        counter.cancel()
