"""``purge_expired`` in batches: more expired rows than one batch all go, live ones stay.

The SQL stores delete a bounded number of rows per write so that a large purge never
holds the writer (SQLite) or one long transaction (PostgreSQL); the batch is made
tiny here so that every table needs several.
"""

from __future__ import annotations

import pytest

from asgi_oauth.storage import Storage
from asgi_oauth.storage.base import FAILURE_RETENTION
from asgi_oauth.storage.sqlite import pending as sqlite_pending

from .test_storage import NOW, exist, make_code, make_token

pytestmark = pytest.mark.anyio

BATCH = 3


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_pending, "_PURGE_BATCH", BATCH)
    try:
        from asgi_oauth.storage.postgres import pending as postgres_pending
    except ImportError:  # pragma: no cover - asyncpg missing: the postgres case skips
        return
    monkeypatch.setattr(postgres_pending, "_PURGE_BATCH", BATCH)


async def test_purge_of_many_batches_removes_every_expired_row(storage: Storage) -> None:
    expired = [make_token(f"old-{i:02}", expires_at=NOW - i) for i in range(3 * BATCH + 1)]
    live = [make_token(f"live-{i}", expires_at=NOW + 1 + i) for i in range(BATCH + 1)]
    await storage.save_tokens(expired + live)
    for i in range(BATCH + 2):
        await storage.save_authorization_code(make_code(f"code-{i}", expires_at=NOW - i))
    await storage.save_authorization_code(make_code("code-live", expires_at=NOW + 60))
    for i in range(2 * BATCH):
        window = NOW - 120 + i
        assert await storage.count_request("key", window_start=window, expires_at=NOW, limit=9)
    assert await storage.count_request("key", window_start=NOW, expires_at=NOW + 60, limit=9)
    for i in range(BATCH + 1):
        old = NOW - FAILURE_RETENTION - i
        assert await storage.take_attempt(f"guess-{i}", limit=9, since=old, now=old) is None
    assert await storage.take_attempt("recent", limit=9, since=NOW, now=NOW) is None

    purged = await storage.purge_expired(now=NOW)

    assert purged == len(expired) + (BATCH + 2) + 2 * BATCH + (BATCH + 1)
    assert await exist(storage, [t.token_hash for t in expired]) == [False] * len(expired)
    assert await exist(storage, [t.token_hash for t in live]) == [True] * len(live)
    assert await storage.get_authorization_code("code-0") is None
    assert await storage.get_authorization_code("code-live") is not None
    # The live window kept its count of one: a limit of 2 lets exactly one more through.
    assert await storage.count_request("key", window_start=NOW, expires_at=NOW + 60, limit=2)
    assert not await storage.count_request("key", window_start=NOW, expires_at=NOW + 60, limit=2)
    # The recent failure is still counted; the old ones are gone.
    assert await storage.take_attempt("recent", limit=1, since=NOW, now=NOW) == NOW
    assert await storage.purge_expired(now=NOW) == 0
