"""The machine's PostgreSQL for tests: where it is, whether it answers, a schema per test.

Tests that need it skip when it does not answer (with the reason), and fail
instead under ``ASGI_OAUTH_REQUIRE_ALL=1``, as CI runs them.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets
import threading

POSTGRES_URL = os.environ.get(
    "ASGI_OAUTH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


def _in_thread(coro_fn: object) -> object:
    """Run a coroutine function on its own loop in a thread (safe inside a running loop)."""
    result: list[object] = []

    def run() -> None:
        result.append(asyncio.run(coro_fn()))  # type: ignore[operator]

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return result[0] if result else None


@functools.cache
def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it answers."""
    try:
        import asyncpg
    except ImportError:
        return "asyncpg is not installed: pip install -e '.[test]'"

    async def probe() -> str | None:
        try:
            conn = await asyncpg.connect(POSTGRES_URL, timeout=3)
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
            where = f"PostgreSQL not reachable at {POSTGRES_URL}"
            return f"{where} ({exc}); set ASGI_OAUTH_TEST_POSTGRES"
        await conn.close()
        return None

    reason = _in_thread(probe)
    return reason if isinstance(reason, str) else None


def new_schema_name() -> str:
    return f"test_{secrets.token_hex(6)}"


def drop_schema(name: str) -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        finally:
            await conn.close()

    _in_thread(drop)
