"""A revocation is refused by every worker process on one SQLite file at once.

uvicorn runs four workers of ``tests.servers.workers:app`` (the test host app,
whose answers name their worker) on one SQLite file, each ``/api`` behind a
``LocalIntrospector`` caching answers for the library's default 10 s. The test
holds one kept-alive connection to each worker (a connection stays with the
worker that accepted it), warms every worker's cache with a token, revokes it
one of the ways a store revokes, then asks every worker at once: each must
refuse, the last within ``BOUND`` of the revocation's answer. Without the store's
revocation signal the other workers answer from their cache for 10 s more.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, TypeVar

import httpx
import pytest

from asgi_oauth import AuthorizationServer, RevocationList, Settings
from asgi_oauth.keys import KeyEncryption, generate_signing_key
from asgi_oauth.models import Token
from asgi_oauth.storage import MemoryStorage, SQLiteStorage, open_storage
from asgi_oauth.storage.sqlite.signal import FileSignal
from tests.servers import process
from tests.servers.process import (
    API_ME,
    REDIRECT_URI,
    REPO_ROOT,
    REVOKE,
    TOKEN,
    Credentials,
    Deployment,
    deploy,
    serve,
)

pytestmark = pytest.mark.slow

WORKERS = 4
#: The issue's bound: from the revocation's answer to the last worker's refusal.
BOUND = 0.1
#: How long to look for a connection to every worker.
CONNECT_TIMEOUT = 15.0
#: The metadata document: a request any worker answers without a token.
METADATA = "/oauth2/.well-known/oauth-authorization-server"
KEK = "k" * 32 + secrets.token_urlsafe(8)

TokenKind = Literal["opaque", "jwt"]
T = TypeVar("T")


@dataclass(frozen=True)
class Setup:
    """The running workers, and the clients whose tokens the tests revoke."""

    deployment: Deployment
    jwt_client: Credentials

    def client(self, kind: TokenKind) -> Credentials:
        return self.deployment.client if kind == "opaque" else self.jwt_client


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    deployment = replace(deploy(tmp_path), workers=WORKERS, key_encryption_key=KEK)
    jwt_client = on_store(deployment, _prepare_jwt)
    monkeypatch.setattr(process, "APP", "tests.servers.workers:app")
    with serve("uvicorn", deployment):
        yield Setup(deployment, jwt_client)


async def _prepare_jwt(server: AuthorizationServer) -> Credentials:
    """A client whose access tokens are JWTs (RFC 9068), and the signing keys, made
    now rather than by the workers racing on first use."""
    assert server.keys is not None
    await server.keys.ready()
    registered = await server.register_client(
        name="jwt app",
        redirect_uris=[REDIRECT_URI],
        grant_types=["client_credentials"],
        scope=["read", "write"],
        access_token_format="jwt",
    )
    assert registered.client_secret is not None
    return Credentials(registered.client.client_id, registered.client_secret)


def on_store(deployment: Deployment, fn: Callable[[AuthorizationServer], Awaitable[T]]) -> T:
    """Run ``fn`` in this process on an ``AuthorizationServer`` over the workers' store."""

    async def main() -> T:
        settings = Settings(
            issuer=deployment.issuer, insecure_transport=True, key_encryption_key=KEK
        )
        server = AuthorizationServer(open_storage(str(deployment.db)), settings)
        try:
            return await fn(server)
        finally:
            await server.close()

    return asyncio.run(main())


# -- talking to each worker ------------------------------------------------------------------


@asynccontextmanager
async def workers(deployment: Deployment) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """One client per worker, by pid, each holding one kept-alive connection to it
    (whichever worker wakes first accepts one: a few are opened at once, again and
    again, until every worker has accepted one)."""
    pinned: dict[str, httpx.AsyncClient] = {}
    deadline = time.monotonic() + CONNECT_TIMEOUT
    try:
        while len(pinned) < WORKERS:
            assert time.monotonic() < deadline, f"reached only the workers {sorted(pinned)}"
            batch = [_one_connection(deployment) for _ in range(WORKERS)]
            answers = await asyncio.gather(*(client.get(METADATA) for client in batch))
            for client, answer in zip(batch, answers, strict=True):
                assert answer.status_code == 200, answer.text
                pid = answer.headers["x-worker-pid"]
                if pid in pinned:
                    await client.aclose()
                else:
                    pinned[pid] = client
            await asyncio.sleep(0.005)
        yield pinned
    finally:
        for client in pinned.values():
            await client.aclose()


def _one_connection(deployment: Deployment) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=60)
    return httpx.AsyncClient(base_url=deployment.base_url, timeout=10, limits=limits)


async def ask_all(pinned: dict[str, httpx.AsyncClient], token: str) -> dict[str, tuple[int, float]]:
    """``/api/me`` with ``token`` from every worker at once: its status and when it came."""

    async def ask(client: httpx.AsyncClient) -> tuple[str, int, float]:
        response = await client.get(API_ME, headers={"Authorization": f"Bearer {token}"})
        return response.headers["x-worker-pid"], response.status_code, time.monotonic()

    answers = await asyncio.gather(*(ask(client) for client in pinned.values()))
    return {pid: (status, at) for pid, status, at in answers}


async def warm(pinned: dict[str, httpx.AsyncClient], token: str) -> None:
    """Every worker has the token's answer cached (and each connection is still its own)."""
    for _ in range(3):
        answers = await ask_all(pinned, token)
        assert sorted(answers) == sorted(pinned), "a connection moved to another worker"
        assert {status for status, _ in answers.values()} == {200}, answers


async def assert_refused_by_all(
    pinned: dict[str, httpx.AsyncClient], token: str, revoked_at: float
) -> None:
    """Every worker refuses ``token`` now; the last refusal within ``BOUND`` of ``revoked_at``.

    Asked over and over until each worker has answered, should a connection have moved.
    """
    first: dict[str, tuple[int, float]] = {}
    while len(first) < len(pinned) and time.monotonic() - revoked_at < 5:
        for pid, answer in (await ask_all(pinned, token)).items():
            first.setdefault(pid, answer)
    statuses = {pid: status for pid, (status, _) in first.items()}
    assert statuses == dict.fromkeys(pinned, 401), f"answers after the revocation: {statuses}"
    last = max(at for _, at in first.values()) - revoked_at
    assert last <= BOUND, f"the last worker refused {last * 1000:.0f} ms after the revocation"


# -- getting tokens and revoking them ----------------------------------------------------------


async def client_credentials(http: httpx.AsyncClient, client: Credentials) -> str:
    issued = await http.post(TOKEN, data={"grant_type": "client_credentials"}, auth=client)
    assert issued.status_code == 200, issued.text
    token: str = issued.json()["access_token"]
    return token


def cli(*args: str, stdin: str = "") -> None:
    """``asgi-oauth ARGS``, in a process of its own, as an operator runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "asgi_oauth", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def any_worker(pinned: dict[str, httpx.AsyncClient]) -> httpx.AsyncClient:
    return next(iter(pinned.values()))


# -- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["opaque", "jwt"])
def test_revoke_through_one_worker_is_refused_by_every_worker(
    setup: Setup, kind: TokenKind
) -> None:
    client = setup.client(kind)

    async def scenario() -> None:
        async with workers(setup.deployment) as pinned:
            http = any_worker(pinned)
            token = await client_credentials(http, client)
            await warm(pinned, token)
            revoked = await http.post(REVOKE, data={"token": token}, auth=client)
            revoked_at = time.monotonic()
            assert revoked.status_code == 200, revoked.text
            await assert_refused_by_all(pinned, token, revoked_at)

    asyncio.run(scenario())


def test_refresh_token_reuse_is_refused_by_every_worker(setup: Setup) -> None:
    """A rotated refresh token presented again revokes its grant (RFC 9700 §4.14.2),
    the access token issued by the rotation included."""
    deployment = setup.deployment
    verifier = secrets.token_urlsafe(32)
    code = deployment.create_code(verifier)

    async def scenario() -> None:
        async with workers(deployment) as pinned:
            http = any_worker(pinned)
            first = await http.post(
                TOKEN,
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT_URI,
                    "code_verifier": verifier,
                },
                auth=deployment.client,
            )
            assert first.status_code == 200, first.text
            old_refresh = first.json()["refresh_token"]
            refresh = {"grant_type": "refresh_token", "refresh_token": old_refresh}
            rotated = await http.post(TOKEN, data=refresh, auth=deployment.client)
            assert rotated.status_code == 200, rotated.text
            token = rotated.json()["access_token"]
            await warm(pinned, token)
            reused = await http.post(TOKEN, data=refresh, auth=deployment.client)
            revoked_at = time.monotonic()
            assert reused.status_code == 400, reused.text
            assert reused.json()["error"] == "invalid_grant"
            await assert_refused_by_all(pinned, token, revoked_at)

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", ["opaque", "jwt"])
def test_revoke_from_the_command_line_is_refused_by_every_worker(
    setup: Setup, kind: TokenKind
) -> None:
    client = setup.client(kind)

    async def scenario() -> None:
        async with workers(setup.deployment) as pinned:
            token = await client_credentials(any_worker(pinned), client)
            await warm(pinned, token)
            cli("tokens", "revoke", "--db", str(setup.deployment.db), stdin=token + "\n")
            revoked_at = time.monotonic()
            await assert_refused_by_all(pinned, token, revoked_at)

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", ["opaque", "jwt"])
def test_deleting_the_client_is_refused_by_every_worker(setup: Setup, kind: TokenKind) -> None:
    client = setup.client(kind)

    async def scenario() -> None:
        async with workers(setup.deployment) as pinned:
            token = await client_credentials(any_worker(pinned), client)
            await warm(pinned, token)
            cli("clients", "delete", client.client_id, "--db", str(setup.deployment.db))
            revoked_at = time.monotonic()
            await assert_refused_by_all(pinned, token, revoked_at)

    asyncio.run(scenario())


def test_a_signing_key_retired_at_once_verifies_nothing_on_any_worker(setup: Setup) -> None:
    """A key retired at once (it leaked) stops verifying in every worker, not only at
    their next periodic reread of the keys; a JWT by the new key is accepted."""
    deployment = setup.deployment

    async def retire_at_once() -> None:
        store = SQLiteStorage(deployment.db)
        try:
            now = int(time.time())
            new = generate_signing_key("RS256", KeyEncryption(KEK), now=now)
            assert await store.add_signing_key(new, retire_active_until=now, now=now)
        finally:
            await store.close()

    async def scenario() -> None:
        async with workers(deployment) as pinned:
            http = any_worker(pinned)
            token = await client_credentials(http, setup.jwt_client)
            await warm(pinned, token)
            await retire_at_once()
            revoked_at = time.monotonic()
            await assert_refused_by_all(pinned, token, revoked_at)
            await warm(pinned, await client_credentials(http, setup.jwt_client))

    asyncio.run(scenario())


# -- the signal itself -------------------------------------------------------------------------


def make_token(token_hash: str, kind: str = "access_token") -> Token:
    now = int(time.time())
    return Token(
        token_hash=token_hash,
        kind=kind,  # type: ignore[arg-type]
        client_id="client-1",
        scope=frozenset({"read"}),
        family_id="family-1",
        issued_at=now,
        expires_at=now + 3600,
    )


def test_a_revocation_moves_the_signal_of_every_store_on_the_file(tmp_path: Path) -> None:
    """Two stores on one file, as two processes: a revocation committed by one moves the
    other's ``version``; what revokes nothing moves nothing. The signal's file has
    the database's mode."""
    db = tmp_path / "oauth.db"

    async def scenario() -> None:
        one, other = SQLiteStorage(db), SQLiteStorage(db)
        try:
            await one.migrate()
            os.chmod(db, 0o600)
            await one.save_tokens([make_token("at-1"), make_token("rt-1", "refresh_token")])
            seen = other.revocation_signal.version()
            assert await one.revoke_token("unknown", now=int(time.time())) is False
            assert not await one.delete_client("unknown")
            assert other.revocation_signal.version() == seen
            assert await one.revoke_token("at-1", now=int(time.time()))
            assert other.revocation_signal.version() != seen
            seen = other.revocation_signal.version()
            assert await one.revoke_family("family-1", now=int(time.time())) == 1
            assert other.revocation_signal.version() != seen
        finally:
            await one.close()
            await other.close()

    asyncio.run(scenario())
    signal_file = Path(f"{db}-revocations")
    assert signal_file.stat().st_size == 8
    assert signal_file.stat().st_mode & 0o777 == (db.stat().st_mode & 0o777)


def test_a_signal_file_that_cannot_be_made_falls_back_to_cache_lifetimes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The signal then tells this process alone, and says it is not live."""
    signal = FileSignal(str(tmp_path / "missing" / "oauth.db"))
    with caplog.at_level(logging.WARNING, logger="asgi_oauth"):
        first = signal.version()
        signal.revoked()
    assert signal.version() != first
    assert signal.live is False
    assert "seen only when cached answers expire" in caplog.text


def test_the_memory_store_signals_in_process() -> None:
    async def scenario() -> None:
        store = MemoryStorage()
        await store.save_tokens([make_token("at-1")])
        seen = store.revocation_signal.version()
        assert not await store.revoke_token("unknown", now=0)
        assert store.revocation_signal.version() == seen
        assert await store.revoke_token("at-1", now=0)
        assert store.revocation_signal.version() != seen

    asyncio.run(scenario())


def test_a_revocation_list_rereads_when_another_process_revoked(tmp_path: Path) -> None:
    """A resource server's ``RevocationList`` on the shared file (``JWTIntrospector``
    without the server in its process) rereads as soon as the signal moves, not
    when its lifetime ends."""
    db = tmp_path / "oauth.db"

    async def scenario() -> None:
        server_store, resource_store = SQLiteStorage(db), SQLiteStorage(db)
        try:
            await server_store.migrate()
            await server_store.save_tokens([make_token("at-1")])
            revocations = RevocationList(resource_store, ttl=3600)
            await revocations.refresh()
            assert revocations.is_fresh and "at-1" not in revocations
            assert await server_store.revoke_token("at-1", now=int(time.time()))
            assert not revocations.is_fresh
            await revocations.refresh()
            assert "at-1" in revocations and revocations.is_fresh
        finally:
            await server_store.close()
            await resource_store.close()

    asyncio.run(scenario())
