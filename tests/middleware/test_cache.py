"""IntrospectionCache on a fake clock, and LocalIntrospector seeing revocations at once."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from asgi_oauth import (
    AuthorizationServer,
    IntrospectionResult,
    InvalidGrantError,
    Settings,
    StorageError,
)
from asgi_oauth.middleware import IntrospectionCache, IntrospectionUnavailable, LocalIntrospector
from asgi_oauth.storage import MemoryStorage

from ..conftest import ISSUER, Credentials, FakeClock
from ..helpers import request
from .conftest import register_caller
from .test_bearer import access_token, user_tokens

pytestmark = pytest.mark.anyio

START = 1_000_000.0
ACTIVE = IntrospectionResult(active=True, scope=frozenset({"read"}))
INACTIVE = IntrospectionResult(active=False)


class Lookups:
    """An introspect function that counts its calls and answers ``result``."""

    def __init__(self, result: IntrospectionResult = ACTIVE) -> None:
        self.result = result
        self.calls: list[str] = []

    async def __call__(self, token: str) -> IntrospectionResult:
        self.calls.append(token)
        return self.result


class Gate:
    """An introspect function that waits until released, then answers or raises."""

    def __init__(self, result: IntrospectionResult | Exception = ACTIVE) -> None:
        self.result = result
        self.calls = 0
        self.started = anyio.Event()
        self.release = anyio.Event()

    async def __call__(self, token: str) -> IntrospectionResult:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


async def not_asked(token: str) -> IntrospectionResult:
    raise LookupError(token)


async def cached(cache: IntrospectionCache, token: str) -> bool:
    """Whether ``cache`` holds ``token`` (a miss raises before anything is remembered)."""
    try:
        await cache.get(token, not_asked)
    except LookupError:
        return False
    return True


@pytest.fixture
def fake() -> FakeClock:
    return FakeClock(START)


# -- lifetimes -------------------------------------------------------------------


async def test_positive_answer_lives_ttl(fake: FakeClock) -> None:
    cache = IntrospectionCache(ttl=10, clock=fake)
    lookups = Lookups()
    assert await cache.get("t", lookups) == ACTIVE
    fake.advance(9.9)
    assert await cache.get("t", lookups) == ACTIVE
    assert lookups.calls == ["t"]
    fake.advance(0.1)
    assert await cache.get("t", lookups) == ACTIVE
    assert lookups.calls == ["t", "t"]


async def test_positive_answer_never_outlives_exp(fake: FakeClock) -> None:
    cache = IntrospectionCache(ttl=10, clock=fake)
    expiring = IntrospectionResult(active=True, exp=int(START) + 3)
    await cache.get("t", Lookups(expiring))
    fake.advance(2.9)
    assert await cached(cache, "t")
    fake.advance(0.1)  # exactly exp: the token is no longer active
    assert not await cached(cache, "t")


async def test_answer_already_past_exp_is_not_remembered(fake: FakeClock) -> None:
    cache = IntrospectionCache(clock=fake)
    await cache.get("t", Lookups(IntrospectionResult(active=True, exp=int(START))))
    assert not await cached(cache, "t")


async def test_negative_answer_lives_negative_ttl(fake: FakeClock) -> None:
    cache = IntrospectionCache(ttl=10, negative_ttl=2, clock=fake)
    lookups = Lookups(INACTIVE)
    assert await cache.get("junk", lookups) == INACTIVE
    fake.advance(1.9)
    assert await cached(cache, "junk")
    fake.advance(0.1)
    assert not await cached(cache, "junk")


async def test_zero_negative_ttl_remembers_no_negative_answer(fake: FakeClock) -> None:
    cache = IntrospectionCache(negative_ttl=0, clock=fake)
    await cache.get("junk", Lookups(INACTIVE))
    assert not await cached(cache, "junk")


@pytest.mark.parametrize("options", [{"ttl": -1}, {"negative_ttl": -0.5}, {"max_size": 0}], ids=str)
async def test_negative_lifetimes_or_no_room_are_a_value_error(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        IntrospectionCache(**options)


# -- size ------------------------------------------------------------------------


async def test_size_stays_within_max_size(fake: FakeClock) -> None:
    cache = IntrospectionCache(max_size=10, clock=fake)
    tokens = [f"t{i}" for i in range(100)]
    for token in tokens:
        await cache.get(token, Lookups())
    held = [token for token in tokens if await cached(cache, token)]
    assert 0 < len(held) <= 10
    assert held == tokens[-len(held) :]  # the oldest went first
    assert "t99" in held


async def test_full_cache_evicts_the_oldest_entry(fake: FakeClock) -> None:
    cache = IntrospectionCache(max_size=3, clock=fake)
    for token in ("a", "b", "c", "d"):
        await cache.get(token, Lookups())
    assert [await cached(cache, t) for t in ("a", "b", "c", "d")] == [False, True, True, True]


async def test_full_cache_drops_expired_entries_before_live_ones(fake: FakeClock) -> None:
    cache = IntrospectionCache(ttl=10, negative_ttl=1, max_size=2, clock=fake)
    await cache.get("live", Lookups())
    await cache.get("junk", Lookups(INACTIVE))
    fake.advance(1)  # junk has expired but is still stored
    await cache.get("new", Lookups())
    assert await cached(cache, "live")
    assert await cached(cache, "new")


# -- concurrency -------------------------------------------------------------------


async def test_concurrent_gets_of_one_token_introspect_once(fake: FakeClock) -> None:
    cache = IntrospectionCache(clock=fake)
    gate = Gate()
    waiters = asyncio.gather(*(cache.get("t", gate) for _ in range(10)))
    await gate.started.wait()
    gate.release.set()
    assert await waiters == [ACTIVE] * 10
    assert gate.calls == 1


async def test_concurrent_gets_of_different_tokens_introspect_each(fake: FakeClock) -> None:
    cache = IntrospectionCache(clock=fake)
    lookups = Lookups()
    await asyncio.gather(*(cache.get(f"t{i % 3}", lookups) for i in range(9)))
    assert sorted(set(lookups.calls)) == ["t0", "t1", "t2"]


async def test_exception_reaches_every_concurrent_waiter_and_nothing_is_cached(
    fake: FakeClock,
) -> None:
    cache = IntrospectionCache(clock=fake)
    failure = IntrospectionUnavailable("down")
    gate = Gate(failure)
    waiters = asyncio.gather(*(cache.get("t", gate) for _ in range(5)), return_exceptions=True)
    await gate.started.wait()
    gate.release.set()
    assert await waiters == [failure] * 5
    assert gate.calls == 1
    assert not await cached(cache, "t")
    assert await cache.get("t", Lookups()) == ACTIVE  # the next request asks again


async def test_clear_during_a_lookup_keeps_its_answer_out_of_the_cache(fake: FakeClock) -> None:
    cache = IntrospectionCache(clock=fake)
    gate = Gate()
    pending = asyncio.ensure_future(cache.get("t", gate))
    await gate.started.wait()
    cache.clear()  # a revocation while the answer was on its way
    gate.release.set()
    assert await pending == ACTIVE
    assert not await cached(cache, "t")


async def test_clear_forgets_every_answer(fake: FakeClock) -> None:
    cache = IntrospectionCache(clock=fake)
    await cache.get("a", Lookups())
    await cache.get("b", Lookups(INACTIVE))
    cache.clear()
    assert not await cached(cache, "a")
    assert not await cached(cache, "b")


async def test_cancelling_one_caller_does_not_cancel_others_waiting_on_the_token(
    fake: FakeClock,
) -> None:
    cache = IntrospectionCache(clock=fake)
    gate = Gate()
    first = asyncio.ensure_future(cache.get("t", gate))
    await gate.started.wait()
    second = asyncio.ensure_future(cache.get("t", gate))
    await asyncio.sleep(0)  # second now waits for first's lookup
    first.cancel()  # e.g. first's client went away
    gate.release.set()
    outcomes = await asyncio.gather(first, second, return_exceptions=True)
    assert isinstance(outcomes[0], asyncio.CancelledError)
    assert outcomes[1] == ACTIVE


async def test_get_after_clear_does_not_join_a_lookup_started_before_it(
    fake: FakeClock,
) -> None:
    cache = IntrospectionCache(clock=fake)
    before = Gate(ACTIVE)  # read before the revocation, still on its way
    first = asyncio.ensure_future(cache.get("t", before))
    await before.started.wait()
    cache.clear()  # the token is revoked
    after = Lookups(INACTIVE)
    second = asyncio.ensure_future(cache.get("t", after))
    await asyncio.sleep(0)
    before.release.set()
    assert await first == ACTIVE
    assert await second == INACTIVE


# -- LocalIntrospector -------------------------------------------------------------


@pytest.fixture
def lookups(server: AuthorizationServer, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token lookup in the server's store."""
    seen: list[str] = []
    get_token = server.storage.get_token

    async def counted(token_hash: str) -> Any:
        seen.append(token_hash)
        return await get_token(token_hash)

    monkeypatch.setattr(server.storage, "get_token", counted)
    return seen


async def active(introspector: LocalIntrospector, token: str | None) -> bool:
    assert token is not None
    return (await introspector.introspect_token(token)).active


async def test_local_introspector_answers_like_the_server(
    server: AuthorizationServer, caller: Credentials
) -> None:
    introspector = LocalIntrospector(server)
    pair = await user_tokens(server, caller, "read")
    assert await introspector.introspect_token(pair.access_token) == (
        await server.introspect_token(pair.access_token)
    )
    assert introspector.issuer == ISSUER


async def test_local_introspector_caches_answers(
    server: AuthorizationServer, caller: Credentials, lookups: list[str]
) -> None:
    introspector = LocalIntrospector(server)
    token = await access_token(server, caller, "read")
    assert await active(introspector, token)
    assert await active(introspector, token)
    assert not await active(introspector, "junk")
    assert not await active(introspector, "junk")
    assert len(lookups) == 2


async def test_local_introspector_sees_a_revocation_at_once(
    server: AuthorizationServer, caller: Credentials, lookups: list[str]
) -> None:
    introspector = LocalIntrospector(server)
    token = await access_token(server, caller, "read")
    assert await active(introspector, token)
    assert await active(introspector, token)
    assert len(lookups) == 1  # the second answer came from the cache
    await server.revoke(request(caller, token=token))
    assert not await active(introspector, token)


async def test_local_introspector_sees_a_refresh_token_revocation_revoke_its_family(
    server: AuthorizationServer, caller: Credentials
) -> None:
    introspector = LocalIntrospector(server)
    pair = await user_tokens(server, caller, "read")
    assert await active(introspector, pair.access_token)
    await server.revoke(request(caller, token=pair.refresh_token or ""))
    assert not await active(introspector, pair.access_token)


async def test_local_introspector_sees_a_family_revoked_by_refresh_token_reuse(
    server: AuthorizationServer, caller: Credentials
) -> None:
    introspector = LocalIntrospector(server)
    pair = await user_tokens(server, caller, "read")
    form = {"grant_type": "refresh_token", "refresh_token": pair.refresh_token or ""}
    second = await server.token(request(caller, **form))
    assert await active(introspector, pair.access_token)
    assert await active(introspector, second.access_token)
    with pytest.raises(InvalidGrantError, match="already used"):
        await server.token(request(caller, **form))  # reuse: the family is revoked
    assert not await active(introspector, pair.access_token)
    assert not await active(introspector, second.access_token)


async def test_every_local_introspector_of_a_server_is_told(
    server: AuthorizationServer, caller: Credentials
) -> None:
    introspectors = [LocalIntrospector(server), LocalIntrospector(server)]
    token = await access_token(server, caller, "read")
    for introspector in introspectors:
        assert await active(introspector, token)
    await server.revoke(request(caller, token=token))
    for introspector in introspectors:
        assert not await active(introspector, token)


async def test_local_introspector_over_a_failing_store_is_unavailable() -> None:
    class Broken(MemoryStorage):
        async def get_token(self, token_hash: str) -> Any:
            raise StorageError("disk full")

    introspector = LocalIntrospector(AuthorizationServer(Broken(), Settings(issuer=ISSUER)))
    with pytest.raises(IntrospectionUnavailable, match="store failed"):
        await introspector.introspect_token("t")


class SlowStore(MemoryStorage):
    """A store whose next token lookup reads the row, then waits before answering."""

    def __init__(self) -> None:
        super().__init__()
        self.reading: anyio.Event | None = None
        self.release = anyio.Event()

    async def get_token(self, token_hash: str) -> Any:
        token = await super().get_token(token_hash)
        if self.reading is not None:
            self.reading.set()
            self.reading = None
            await self.release.wait()
        return token


async def test_request_after_a_revocation_is_refused_while_an_older_lookup_is_in_flight() -> None:
    store = SlowStore()
    server = AuthorizationServer(store, Settings(issuer=ISSUER))
    caller = await register_caller(server)
    token = await access_token(server, caller, "read")
    introspector = LocalIntrospector(server)
    store.reading = reading = anyio.Event()
    early = asyncio.ensure_future(introspector.introspect_token(token))
    await reading.wait()  # the early request's lookup has read the row: active
    await server.revoke(request(caller, token=token))
    assert not (await server.introspect_token(token)).active
    late = asyncio.ensure_future(introspector.introspect_token(token))
    await asyncio.sleep(0)
    store.release.set()
    assert (await early).active  # begun before the revocation: may be allowed
    assert not (await late).active  # begun after it returned: must be refused
