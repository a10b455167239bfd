"""A revocation on PostgreSQL reaches every instance at once (``LISTEN``/``NOTIFY``).

First the store's ``revocation_signal`` in-process: two stores on one schema (as
two instances have) hear each other's revocations and nothing else, a store on
another schema hears nothing, and a lost listener connection reconnects, says it
fell back, and moves ``version()`` once it is back. Then real processes: two
uvicorn instances on one schema, each with its own ``/api`` behind
``BearerTokenMiddleware`` and a warm ``LocalIntrospector`` cache: a revocation
through A is refused by B within ``BOUND`` seconds, for opaque and JWT access
tokens, and still ends refused when B's database connections (its listener
among them, through ``tcp_proxy``) were cut while it was made.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest

from .openid_helpers import KEK
from .postgres import POSTGRES_URL, drop_schema, new_schema_name
from .servers.process import API_ME, REVOKE, TOKEN, Deployment, ServerProcess, deploy, serve_all
from .tcp_proxy import TCPProxy, tcp_proxy
from .test_multi_instance import through_port, with_schema
from .test_storage import make_client, make_key, make_pair, make_token, make_user

if TYPE_CHECKING:
    from asgi_oauth.storage.postgres import PostgresStorage

#: The issue's promise: refused by every other instance within 100 ms of the revocation.
BOUND = 0.1
#: B's ``/api`` cache time: far longer than any bound here, so only the signal can refuse.
CACHE_TTL = 60.0
#: How long a notification may take to arrive in-process (a busy 2-core machine).
ARRIVAL = 2.0
#: A cut listener is back within its longest backoff (``signal.BACKOFF_MAX``, 5 s), plus a
#: connect and scheduling noise.
RECONNECT = 8.0
NOW = 1_700_000_000


# -- the signal, in-process ------------------------------------------------------------------


@pytest.fixture
async def stores(pg_schema: str) -> AsyncIterator[Callable[..., PostgresStorage]]:
    """Opens stores (on the test's schema unless told), as instances do; closes them all."""
    from asgi_oauth.storage.postgres import PostgresStorage

    opened: list[PostgresStorage] = []

    def open_(
        url: str = POSTGRES_URL, schema: str = pg_schema, connect_timeout: float = 2.0
    ) -> PostgresStorage:
        store = PostgresStorage(url, schema=schema, connect_timeout=connect_timeout)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()


async def moved_from(store: PostgresStorage, version: object, within: float = ARRIVAL) -> bool:
    """Whether ``store``'s signal moves away from ``version`` within ``within`` seconds."""
    deadline = time.monotonic() + within
    while store.revocation_signal.version() == version:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def until(condition: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@pytest.mark.anyio
async def test_every_kind_of_revocation_reaches_a_store_on_the_same_schema(
    stores: Callable[..., PostgresStorage],
) -> None:
    a, b = stores(), stores()
    await a.migrate()
    await b.migrate()
    assert a.revocation_signal.live and b.revocation_signal.live
    await a.save_tokens([make_token("single")])
    await a.save_tokens(make_pair("grant"))

    revocations: list[Callable[[], Awaitable[object]]] = [
        lambda: a.revoke_token("single", now=NOW),
        lambda: a.revoke_family("family-1", now=NOW),
    ]
    for revoke in revocations:
        before_a, before_b = a.revocation_signal.version(), b.revocation_signal.version()
        await revoke()
        assert a.revocation_signal.version() != before_a, "this process forgets at once"
        assert await moved_from(b, before_b), "the other store never heard it"

    # The signing key a rotation retires.
    assert await a.add_signing_key(make_key("k1"), retire_active_until=None, now=NOW)
    before = b.revocation_signal.version()
    assert await a.add_signing_key(make_key("k2"), retire_active_until=NOW + 60, now=NOW)
    assert await moved_from(b, before)


@pytest.mark.anyio
async def test_a_revocation_that_changes_nothing_and_issuance_notify_no_one(
    stores: Callable[..., PostgresStorage],
) -> None:
    a, b = stores(), stores()
    await a.migrate()
    await b.migrate()
    before = b.revocation_signal.version()

    await a.save_tokens(make_pair("grant"))
    await a.save_tokens([make_token("single")])
    assert not await a.revoke_token("unknown", now=NOW)
    assert await a.revoke_family("no-such-family", now=NOW) == 0
    assert await a.add_signing_key(make_key("k1"), retire_active_until=NOW + 60, now=NOW)

    assert not await moved_from(b, before, within=0.5)


@pytest.mark.anyio
async def test_deleting_a_client_or_a_user_reaches_the_other_store(
    stores: Callable[..., PostgresStorage],
) -> None:
    a, b = stores(), stores()
    await a.migrate()
    await b.migrate()
    await a.add_client(make_client())
    before = b.revocation_signal.version()
    assert await a.delete_client("client-1")
    assert await moved_from(b, before)

    await a.add_user(make_user())
    before = b.revocation_signal.version()
    assert await a.delete_user("alice")
    assert await moved_from(b, before)


@pytest.mark.anyio
async def test_revoked_outside_a_transaction_reaches_the_other_store(
    stores: Callable[..., PostgresStorage],
) -> None:
    a, b = stores(), stores()
    await a.migrate()
    await b.migrate()
    before_a, before_b = a.revocation_signal.version(), b.revocation_signal.version()
    a.revocation_signal.revoked()
    assert a.revocation_signal.version() != before_a
    assert await moved_from(b, before_b)


@pytest.mark.anyio
async def test_a_store_on_another_schema_hears_nothing(
    stores: Callable[..., PostgresStorage],
) -> None:
    other_schema = new_schema_name()
    try:
        a, elsewhere = stores(), stores(schema=other_schema)
        await a.migrate()
        await elsewhere.migrate()
        assert a.revocation_signal.channel != elsewhere.revocation_signal.channel
        before = elsewhere.revocation_signal.version()
        await a.save_tokens([make_token("single")])
        assert await a.revoke_token("single", now=NOW)
        assert not await moved_from(elsewhere, before, within=0.5)
    finally:
        drop_schema(other_schema)


def test_channel_names_fit_postgresql_identifiers() -> None:
    from asgi_oauth.storage.postgres.signal import BACKOFF_MAX, channel_for

    assert BACKOFF_MAX < RECONNECT
    assert channel_for(None) == "asgi_oauth_revoked"
    assert channel_for("tenant_a") == "asgi_oauth_revoked_tenant_a"
    assert len(channel_for("s" * 63)) == 63


@pytest.mark.anyio
async def test_a_cut_listener_falls_back_then_reconnects_and_resynchronises(
    stores: Callable[..., PostgresStorage], caplog: pytest.LogCaptureFixture
) -> None:
    target = urlsplit(POSTGRES_URL)
    proxy = TCPProxy(target.hostname or "127.0.0.1", target.port or 5432)
    proxy.start()
    a, b = stores(), stores(through_port(POSTGRES_URL, proxy.port))
    try:
        await a.migrate()
        await b.migrate()
        signal = b.revocation_signal
        assert signal.live

        with caplog.at_level(logging.WARNING, logger="asgi_oauth"):
            proxy.cut()
            assert await until(lambda: not signal.live, within=ARRIVAL)
            await a.save_tokens([make_token("single")])
            before = signal.version()
            assert await a.revoke_token("single", now=NOW)  # unheard by B: it is cut off
            await asyncio.sleep(0.5)
            assert signal.version() == before
            assert not signal.live
            proxy.restore()
            assert await until(lambda: signal.live, within=RECONNECT)
        assert signal.version() != before, "back up, the caches were not told to forget"
        fell_back = [r for r in caplog.records if "revocation notifications lost" in r.message]
        assert len(fell_back) == 1, caplog.text  # once per outage, however many retries
    finally:
        await b.close()  # before the proxy goes: no connection left half-way through it
        proxy.close()


@pytest.mark.anyio
async def test_a_listener_that_cannot_connect_does_not_hold_up_the_store(
    stores: Callable[..., PostgresStorage],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import asyncpg

    async def unanswered(*_args: object, **_kwargs: object) -> object:
        await asyncio.Event().wait()  # a database that never answers the listener
        raise AssertionError("unreachable")

    monkeypatch.setattr(asyncpg, "connect", unanswered)  # the pool connects its own way
    store = stores(connect_timeout=0.3)
    with caplog.at_level(logging.WARNING, logger="asgi_oauth"):
        started = time.monotonic()
        assert await store.list_clients() == []
        assert time.monotonic() - started < 0.3 + ARRIVAL
    assert not store.revocation_signal.live
    assert "revocation notifications lost (not listening yet)" in caplog.text


# -- real processes: two uvicorn instances on one schema -------------------------------------


def call_api(http: httpx.Client, token: str) -> int:
    return http.get(API_ME, headers={"Authorization": f"Bearer {token}"}).status_code


def issue_token(http: httpx.Client, deployment: Deployment) -> str:
    response = http.post(TOKEN, data={"grant_type": "client_credentials"}, auth=deployment.client)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def refused_after(http: httpx.Client, token: str, since: float, within: float) -> float:
    """Seconds from ``since`` to the first refusal of ``token`` (asked without pause)."""
    while (status := call_api(http, token)) != 401:
        assert status in (200, 503), status  # 503: a store connection not back yet
        assert time.monotonic() - since <= within, f"still answered {status}"
    return time.monotonic() - since


@pytest.fixture(params=["opaque", "jwt"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path, pg_schema: str) -> Deployment:
    deployed = deploy(tmp_path, with_schema(POSTGRES_URL, pg_schema))
    if request.param == "jwt":
        deployed = replace(
            deployed, key_encryption_key=KEK, settings_json='{"access_token_format": "jwt"}'
        )
    return replace(deployed, cache_ttl=CACHE_TTL)


@pytest.fixture
def pair(deployment: Deployment) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with serve_all("uvicorn", [deployment, deployment.instance()]) as (a, b):
        yield a, b


@pytest.mark.slow
def test_a_revocation_through_one_instance_is_refused_by_the_other_at_once(
    pair: tuple[ServerProcess, ServerProcess], deployment: Deployment
) -> None:
    a, b = pair
    with (
        httpx.Client(base_url=a.url, timeout=10) as on_a,
        httpx.Client(base_url=b.url, timeout=10) as on_b,
    ):
        for _ in range(3):  # a few rounds: each must hold, not the luckiest
            token = issue_token(on_a, deployment)
            assert call_api(on_a, token) == 200
            assert call_api(on_b, token) == 200  # now in B's cache, for CACHE_TTL s
            assert call_api(on_b, token) == 200

            revoked = on_a.post(REVOKE, data={"token": token}, auth=deployment.client)
            assert revoked.status_code == 200, revoked.text
            revoked_at = time.monotonic()

            took = refused_after(on_b, token, revoked_at, within=BOUND)
            assert took <= BOUND
            assert call_api(on_a, token) == 401


@pytest.mark.slow
def test_a_revocation_made_while_the_listener_is_cut_is_refused_once_it_is_back(
    deployment: Deployment,
) -> None:
    target = urlsplit(POSTGRES_URL)
    with tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        # B reaches the database, its listener included, only through the proxy.
        b_side = replace(deployment.instance(), db=through_port(str(deployment.db), proxy.port))
        with (
            serve_all("uvicorn", [deployment, b_side]) as (a, b),
            httpx.Client(base_url=a.url, timeout=10) as on_a,
            httpx.Client(base_url=b.url, timeout=10) as on_b,
        ):
            token = issue_token(on_a, deployment)
            assert call_api(on_b, token) == 200  # in B's cache, for CACHE_TTL s

            proxy.cut()
            deadline = time.monotonic() + ARRIVAL
            while "revocation notifications lost" not in b.stderr():
                assert time.monotonic() < deadline, b.stderr()
                time.sleep(0.05)
            revoked = on_a.post(REVOKE, data={"token": token}, auth=deployment.client)
            assert revoked.status_code == 200, revoked.text
            time.sleep(1.0)  # B is deaf meanwhile: its notification is lost for good
            proxy.restore()
            restored_at = time.monotonic()

            took = refused_after(on_b, token, restored_at, within=RECONNECT)
            assert took < CACHE_TTL
        assert "fall back to their lifetimes" in b.stderr()
