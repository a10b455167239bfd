"""Guessing limits on passwords and user codes are shared by every process on one store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from asgi_oauth import AuthorizationServer, InvalidGrantError, OAuthRequest, Settings
from asgi_oauth.storage import MemoryStorage, SQLiteStorage
from asgi_oauth.throttle import SharedThrottle

from .conftest import ISSUER, FakeClock

pytestmark = pytest.mark.anyio

LIMIT, WINDOW = 3, 60
FROM_ATTACKER = OAuthRequest(client_address="203.0.113.9")


async def test_shared_throttle_refuses_after_the_limit_for_the_rest_of_the_window() -> None:
    clock = FakeClock()
    throttle = SharedThrottle(MemoryStorage(), LIMIT, WINDOW, clock=clock)
    for _ in range(LIMIT):
        await throttle.attempt("k", InvalidGrantError, "no")  # counted, then found wrong
        clock.advance(10)
    with pytest.raises(InvalidGrantError) as refused:
        await throttle.attempt("k", InvalidGrantError, "slow down")
    assert refused.value.status == 429
    # The first failure was 30 s ago: it leaves the window in 30 s.
    assert refused.value.headers["Retry-After"] == "30"
    await throttle.attempt("other", InvalidGrantError, "no")
    clock.advance(30)
    await throttle.attempt("k", InvalidGrantError, "no")  # one failure left the window
    await throttle.succeeded("k")
    for _ in range(LIMIT - 1):
        await throttle.attempt("k", InvalidGrantError, "no")
    right = await throttle.attempt("k", InvalidGrantError, "no")
    # A right guess that keeps the rest of the count: refunded, it leaves room for one.
    await throttle.refund("k", right)
    await throttle.attempt("k", InvalidGrantError, "no")
    with pytest.raises(InvalidGrantError):
        await throttle.attempt("k", InvalidGrantError, "no")


@pytest.fixture
async def two_instances(tmp_path: Path) -> AsyncIterator[tuple[AuthorizationServer, ...]]:
    """Two servers on one SQLite file, each with its own store object, as two processes."""
    settings = Settings(issuer=ISSUER, max_failed_attempts=LIMIT, failed_attempts_window=WINDOW)
    db = tmp_path / "shared.db"
    servers = tuple(AuthorizationServer(SQLiteStorage(db), settings) for _ in range(2))
    await servers[0].create_user("alice", "right password")
    yield servers
    for server in servers:
        await server.close()


async def test_password_guesses_on_one_instance_count_on_the_other(
    two_instances: tuple[AuthorizationServer, AuthorizationServer],
) -> None:
    first, second = two_instances
    for server in (first, second, first):
        with pytest.raises(InvalidGrantError) as wrong:
            await server.authenticate_user(FROM_ATTACKER, "alice", "guess")
        assert wrong.value.status == 400
    # The limit is reached across both: even the right password is refused on either.
    for server in (second, first):
        with pytest.raises(InvalidGrantError) as refused:
            await server.authenticate_user(FROM_ATTACKER, "alice", "right password")
        assert refused.value.status == 429
    # Another address is not locked out.
    user = await second.authenticate_user(
        OAuthRequest(client_address="198.51.100.7"), "alice", "right password"
    )
    assert user.username == "alice"


async def test_user_code_guesses_on_one_instance_count_on_the_other(
    two_instances: tuple[AuthorizationServer, AuthorizationServer],
) -> None:
    first, second = two_instances
    for server in (first, second, second):
        with pytest.raises(InvalidGrantError):
            await server.find_device_authorization("BCDF-GHJK", FROM_ATTACKER)
    with pytest.raises(InvalidGrantError) as refused:
        await first.find_device_authorization("BCDF-GHJK", FROM_ATTACKER)
    assert refused.value.status == 429


async def test_any_typed_username_is_counted_even_on_postgresql(pg_schema: str) -> None:
    from asgi_oauth.storage.postgres import PostgresStorage

    from .postgres import POSTGRES_URL

    server = AuthorizationServer(
        PostgresStorage(POSTGRES_URL, schema=pg_schema),
        Settings(issuer=ISSUER, max_failed_attempts=1, failed_attempts_window=WINDOW),
    )
    try:
        # A NUL fits no PostgreSQL text column: the store keeps a digest of the key.
        with pytest.raises(InvalidGrantError) as wrong:
            await server.authenticate_user(FROM_ATTACKER, "al\x00ice", "guess")
        assert wrong.value.status == 400
        with pytest.raises(InvalidGrantError) as refused:
            await server.authenticate_user(FROM_ATTACKER, "al\x00ice", "guess")
        assert refused.value.status == 429
    finally:
        await server.close()
