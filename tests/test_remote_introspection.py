"""A resource server asking a real authorization-server process about tokens (RFC 7662).

The authorization server is ``tests.servers.app`` under uvicorn on 127.0.0.1, on a
SQLite file prepared by the test (the helpers of ``tests/test_real_servers.py``).
The resource server runs in this process: a Starlette app behind
``BearerTokenMiddleware`` with a ``RemoteIntrospector`` pointed at the
authorization server over TCP, driven through ``httpx.ASGITransport``. The
misbehaving authorization servers are ``tests.servers.remote_garbage`` under
uvicorn. Every subprocess is stopped at teardown.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_oauth.middleware import BearerTokenMiddleware, BearerUser, RemoteIntrospector
from tests.servers.process import (
    INTROSPECT,
    REPO_ROOT,
    REVOKE,
    STARTUP_TIMEOUT,
    TOKEN,
    Credentials,
    Deployment,
    ServerProcess,
    deploy,
    serve,
    stop_process,
)

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

#: The resource server's introspector settings; the time bounds below follow from them.
CACHE_TTL = 0.5
TIMEOUT = 0.5
RETRIES = 1
#: RemoteIntrospector sleeps 0.05 * 2 ** (attempt - 1) s before each retry.
BACKOFF = sum(0.05 * 2 ** (attempt - 1) for attempt in range(1, RETRIES + 1))
#: The longest a refusal may take: every try times out, with the pauses between.
WORST_CASE = TIMEOUT * (RETRIES + 1) + BACKOFF
#: Scheduling noise allowed on top of a computed bound (a busy 2-core machine).
SLACK = 0.75
STAND_IN_APP = "tests.servers.remote_garbage:app"


# -- the resource server (in-process) ------------------------------------------------------


@dataclass
class ResourceServer:
    """The API behind the middleware; ``calls`` records who reached a route."""

    http: httpx.AsyncClient
    introspector: RemoteIntrospector
    calls: list[tuple[str | None, list[str]]] = field(default_factory=list)

    async def get(self, token: str, path: str = "/api/hello") -> httpx.Response:
        return await self.http.get(path, headers={"Authorization": f"Bearer {token}"})


@asynccontextmanager
async def resource_server(
    introspection_url: str, credentials: Credentials, *, cache_ttl: float = CACHE_TTL
) -> AsyncIterator[ResourceServer]:
    """``/api`` needs scope ``read``, ``/api/admin`` scope ``admin``; routes echo the caller."""
    introspector = RemoteIntrospector(
        introspection_url,
        client_id=credentials.client_id,
        client_secret=credentials.secret,
        cache_ttl=cache_ttl,
        timeout=TIMEOUT,
        retries=RETRIES,
    )
    calls: list[tuple[str | None, list[str]]] = []

    async def endpoint(request: Request) -> JSONResponse:
        user = request.user
        assert isinstance(user, BearerUser)
        scopes: list[str] = request.auth.scopes
        calls.append((user.client_id, scopes))
        return JSONResponse({"client_id": user.client_id, "scopes": scopes})

    app = Starlette(routes=[Route("/api/hello", endpoint), Route("/api/admin", endpoint)])
    app.add_middleware(
        BearerTokenMiddleware,
        introspector=introspector,
        protect={"/api": "read", "/api/admin": "admin"},
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
            yield ResourceServer(http, introspector, calls)
    finally:
        await introspector.aclose()


def assert_unavailable(response: httpx.Response) -> None:
    """503 with Retry-After and a Bearer challenge: the middleware failed closed."""
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert response.json()["error"] == "temporarily_unavailable"


# -- the authorization server (subprocess) -------------------------------------------------


async def issue_token(server: ServerProcess) -> str:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        response = await http.post(
            TOKEN, data={"grant_type": "client_credentials"}, auth=server.deployment.client
        )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def revoke_token(server: ServerProcess, token: str) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        response = await http.post(REVOKE, data={"token": token}, auth=server.deployment.client)
    assert response.status_code == 200, response.text


def introspection_url(server: ServerProcess) -> str:
    return server.url + INTROSPECT


@pytest.fixture(scope="module")
def shared_as(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One authorization server for the tests that neither stop it nor lock a client out."""
    with serve("uvicorn", deploy(tmp_path_factory.mktemp("shared-as"))) as server:
        yield server


class Launcher:
    """Starts authorization servers on one deployment (same port, same file)."""

    def __init__(self, stack: ExitStack, deployment: Deployment) -> None:
        self._stack = stack
        self.deployment = deployment

    async def start(self) -> ServerProcess:
        def start() -> ServerProcess:
            return self._stack.enter_context(serve("uvicorn", self.deployment))

        return await anyio.to_thread.run_sync(start)


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    """Every server started through it is stopped at teardown (killed ones are reaped)."""
    with ExitStack() as stack:
        yield Launcher(stack, deploy(tmp_path))


async def kill(server: ServerProcess) -> None:
    await anyio.to_thread.run_sync(server.kill)


# -- the misbehaving stand-in (subprocess) -------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def run_stand_in(directory: Path) -> Iterator[str]:
    """``tests.servers.remote_garbage`` under uvicorn; yields its base URL."""
    port = _free_port()
    stderr_path = directory / "stand-in.stderr"
    command = [sys.executable, "-m", "uvicorn", STAND_IN_APP, "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning"]
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"the stand-in exited early:\n{stderr_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the stand-in is not listening:\n{stderr_path.read_text()}")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with run_stand_in(tmp_path_factory.mktemp("stand-in")) as url:
        yield url


def any_credentials() -> Credentials:
    """What the resource server presents to a stand-in (which checks nothing)."""
    return Credentials("api", "secret")


# -- a working authorization server --------------------------------------------------------


async def test_token_from_the_as_is_accepted_and_the_route_sees_its_client_and_scopes(
    shared_as: ServerProcess,
) -> None:
    deployment = shared_as.deployment
    token = await issue_token(shared_as)
    async with resource_server(introspection_url(shared_as), deployment.resource_server) as rs:
        response = await rs.get(token)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "client_id": deployment.client.client_id,
        "scopes": ["read", "write"],
    }
    assert rs.calls == [(deployment.client.client_id, ["read", "write"])]


async def test_garbage_token_gets_401_invalid_token(shared_as: ServerProcess) -> None:
    async with resource_server(
        introspection_url(shared_as), shared_as.deployment.resource_server
    ) as rs:
        response = await rs.get("not-a-token-the-as-issued")

    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert rs.calls == []


async def test_token_without_the_needed_scope_gets_403_insufficient_scope(
    shared_as: ServerProcess,
) -> None:
    token = await issue_token(shared_as)  # read write, and /api/admin needs admin
    async with resource_server(
        introspection_url(shared_as), shared_as.deployment.resource_server
    ) as rs:
        response = await rs.get(token, "/api/admin")

    assert response.status_code == 403, response.text
    assert response.json()["error"] == "insufficient_scope"
    assert 'scope="admin read write"' in response.headers["www-authenticate"]
    assert rs.calls == []


async def test_revoked_token_is_accepted_within_the_cache_ttl_and_refused_after(
    shared_as: ServerProcess,
) -> None:
    token = await issue_token(shared_as)
    async with resource_server(
        introspection_url(shared_as), shared_as.deployment.resource_server
    ) as rs:
        assert (await rs.get(token)).status_code == 200
        cached_at = time.monotonic()  # the cache entry was made just before this
        await revoke_token(shared_as, token)

        # The cache window: the resource server has not asked again, so it still accepts.
        during = await rs.get(token)
        elapsed = time.monotonic() - cached_at
        assert during.status_code == 200, f"{during.text} ({elapsed:.3f} s after caching)"

        await anyio.sleep(max(0.0, cached_at + CACHE_TTL + 0.1 - time.monotonic()))
        after = await rs.get(token)

    assert after.status_code == 401, after.text
    assert after.json()["error"] == "invalid_token"
    assert len(rs.calls) == 2


# -- the authorization server goes away, and comes back ------------------------------------


async def test_as_killed_new_token_gets_503_and_cached_token_works_until_its_entry_ends(
    launcher: Launcher, caplog: pytest.LogCaptureFixture
) -> None:
    server = await launcher.start()
    cached, fresh = await issue_token(server), await issue_token(server)
    async with resource_server(
        introspection_url(server), launcher.deployment.resource_server
    ) as rs:
        assert (await rs.get(cached)).status_code == 200
        cached_at = time.monotonic()
        await kill(server)

        # Documented behaviour: a token cached as active is served from the cache...
        still = await rs.get(cached)
        assert still.status_code == 200, f"{still.text} ({time.monotonic() - cached_at:.3f} s)"
        # ...a token never seen must be introspected, and nobody answers: fail closed.
        with caplog.at_level(logging.ERROR, logger="asgi_oauth"):
            refused = await rs.get(fresh)
        assert_unavailable(refused)
        assert len(rs.calls) == 2  # the route never ran for the refused request

        # ...and once the cached entry ends, the cached token is refused too.
        await anyio.sleep(max(0.0, cached_at + CACHE_TTL + 0.1 - time.monotonic()))
        expired = await rs.get(cached)

    assert_unavailable(expired)
    assert len(rs.calls) == 2
    assert any("token introspection failed" in r.getMessage() for r in caplog.records)


async def test_restarted_as_on_the_same_port_and_file_serves_the_same_resource_server_again(
    launcher: Launcher,
) -> None:
    first = await launcher.start()
    token = await issue_token(first)
    async with resource_server(introspection_url(first), launcher.deployment.resource_server) as rs:
        await kill(first)
        assert_unavailable(await rs.get(token))

        second = await launcher.start()
        assert second.url == first.url
        recovered = await rs.get(token)  # the token survived in the SQLite file
        fresh = await rs.get(await issue_token(second))

    assert recovered.status_code == 200, recovered.text
    assert fresh.status_code == 200, fresh.text
    assert len(rs.calls) == 2


# -- an authorization server that answers badly --------------------------------------------


@pytest.mark.parametrize("path", ["/not-json", "/active-yes"])
async def test_garbage_answer_from_the_as_gives_503_never_200(stand_in: str, path: str) -> None:
    async with resource_server(stand_in + path, any_credentials()) as rs:
        responses = [await rs.get("some-token") for _ in range(3)]

    for response in responses:
        assert_unavailable(response)
    assert rs.calls == []


async def test_wrong_resource_server_credentials_give_503_and_are_logged_not_401(
    shared_as: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    deployment = shared_as.deployment
    token = await issue_token(shared_as)
    wrong = Credentials(deployment.resource_server.client_id, "not-the-secret")
    with caplog.at_level(logging.ERROR, logger="asgi_oauth"):
        async with resource_server(introspection_url(shared_as), wrong) as rs:
            response = await rs.get(token)

    assert_unavailable(response)  # the user's token is not called invalid
    assert rs.calls == []
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("failed: HTTP 401" in m for m in messages), messages
    # The token itself is fine: the same resource server with its real secret accepts it.
    async with resource_server(introspection_url(shared_as), deployment.resource_server) as rs:
        assert (await rs.get(token)).status_code == 200
    assert "event=client_authentication_failed" in shared_as.stderr()


# -- fixed since 11b227a, kept as regression tests ------------------------------------------


async def test_cancelling_one_lookup_does_not_cancel_another_lookup_of_the_same_token(
    stand_in: str,
) -> None:
    # At 11b227a the shared lookup took the first caller's CancelledError and
    # cancelled every waiter with it; IntrospectionCache now shields the lookup.
    introspector = RemoteIntrospector(
        stand_in + "/slow?seconds=0.3",
        client_id="api",
        client_secret="secret",
        timeout=TIMEOUT,
        retries=RETRIES,
    )
    try:
        first = asyncio.create_task(introspector.introspect_token("shared-token"))
        await asyncio.sleep(0.05)  # first is now asking the AS
        second = asyncio.create_task(introspector.introspect_token("shared-token"))
        await asyncio.sleep(0.05)  # second now waits for first's answer
        first.cancel()  # e.g. its client went away, or a timeout around that request fired
        await asyncio.wait({first, second})
    finally:
        await introspector.aclose()

    assert first.cancelled()
    assert not second.cancelled(), "an innocent request was cancelled"
    assert second.result().active


@pytest.mark.parametrize("path", ["/slow?seconds=3", "/trickle?seconds=2.5"])
async def test_as_too_slow_in_any_way_gives_503_within_timeout_times_tries_plus_backoff(
    stand_in: str, path: str
) -> None:
    # /trickle sends a byte at a time, each read well within the timeout: at 11b227a
    # only httpx's per-read timeout applied and the request waited 2.5 s for a 200.
    async with resource_server(stand_in + path, any_credentials()) as rs:
        started = time.monotonic()
        response = await rs.get("some-token")
        elapsed = time.monotonic() - started

    assert_unavailable(response)
    assert rs.calls == []
    # Each of the RETRIES + 1 tries waited its whole timeout, then the request was refused.
    assert elapsed >= TIMEOUT * (RETRIES + 1) * 0.95, elapsed
    assert elapsed < WORST_CASE + SLACK, f"{elapsed:.3f} s, bound {WORST_CASE + SLACK:.3f} s"


async def test_guessing_the_resource_servers_secret_from_elsewhere_does_not_lock_it_out(
    launcher: Launcher,
) -> None:
    # At 11b227a failures were counted per client_id alone: ten wrong guesses from
    # anywhere made the AS answer 429 to the resource server, and every API behind
    # RemoteIntrospector refused every new token with 503 for the throttle window.
    server = await launcher.start()
    token = await issue_token(server)
    guess = (launcher.deployment.resource_server.client_id, "a-guess")
    elsewhere = httpx.AsyncHTTPTransport(local_address="127.0.0.2")  # still loopback
    async with httpx.AsyncClient(base_url=server.url, transport=elsewhere, timeout=10) as attacker:
        guesses = [
            (await attacker.post(INTROSPECT, data={"token": "x"}, auth=guess)).status_code
            for _ in range(11)  # Settings.max_failed_attempts, and one more
        ]
    assert guesses == [401] * 10 + [429]  # the guesser is throttled...

    async with resource_server(
        introspection_url(server), launcher.deployment.resource_server
    ) as rs:
        response = await rs.get(token)

    assert response.status_code == 200, response.text  # ...the resource server is not
