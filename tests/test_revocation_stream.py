"""The revocation event stream, end to end: resource servers in other processes refuse a
revoked token within 100 ms.

The authorization server is ``tests.servers.app`` under uvicorn (or hypercorn) on a
SQLite file, an OpenID provider issuing JWT access tokens to the ``app`` client and
opaque ones to an ``opaque`` client. Two resource-server processes reach it through
a TCP proxy each, which the tests cut and restore and which counts the requests
passing through: ``examples/remote_resource_server.py`` (``RemoteIntrospector``,
opaque tokens) and ``tests.servers.jwt_resource`` (``JWTIntrospector``, JWTs), both
subscribed to ``/oauth2/revocations``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.types import Message

from asgi_oauth import AuthorizationServer, IntrospectionResult, Settings
from asgi_oauth.app.revocations import RevocationEvents
from asgi_oauth.crypto import hash_token
from asgi_oauth.jwt_access_tokens import unverified_jti_key
from asgi_oauth.middleware import IntrospectionCache, RevocationStream
from asgi_oauth.requests import OAuthRequest
from asgi_oauth.storage import MemoryStorage
from tests.conftest import ISSUER
from tests.openid_helpers import KEK
from tests.servers.process import (
    REPO_ROOT,
    REVOKE,
    STARTUP_TIMEOUT,
    TOKEN,
    Credentials,
    Deployment,
    deploy,
    run_on_store,
    serve,
    stop_process,
)
from tests.tcp_proxy import TCPProxy

slow = pytest.mark.slow

STREAM = "/oauth2/revocations"
#: The guarantee: a revocation is refused everywhere within this many seconds.
AT_ONCE = 0.1
#: The resource servers' cache lifetime: long, so a refusal cannot be its expiry.
CACHE_TTL = 30.0


class CountingProxy(TCPProxy):
    """A ``TCPProxy`` that counts the requests passing through it, by request line."""

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self.seen: list[bytes] = []

    def count(self, request_line: bytes) -> int:
        return sum(chunk.count(request_line) for chunk in self.seen)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await super()._pipe(_Recorder(reader, self.seen), writer)  # type: ignore[arg-type]


class _Recorder:
    def __init__(self, reader: asyncio.StreamReader, seen: list[bytes]) -> None:
        self._reader, self._seen = reader, seen

    async def read(self, n: int) -> bytes:
        data = await self._reader.read(n)
        self._seen.append(data[:200])  # the request line is all that is counted
        return data


@dataclass
class ResourceServer:
    url: str
    proxy: CountingProxy
    process: subprocess.Popen[bytes]
    log: Path
    #: One client, its connections kept: a new one per request would cost more than the event.
    http: httpx.Client

    def get(self, token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        return self.http.get(self.url + "/api/me", headers=headers).status_code

    @property
    def introspections(self) -> int:
        return self.proxy.count(b"POST /oauth2/introspect ")

    def wait_subscribed(self) -> None:
        """Until the stream (started by a first use) connected and its first event came."""
        deadline = time.monotonic() + 5
        while not self.proxy.count(b"GET /oauth2/revocations "):
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.01)
        time.sleep(0.2)


@dataclass
class Setup:
    deployment: Deployment
    opaque: Credentials
    remote: ResourceServer
    jwt: ResourceServer
    http: httpx.Client

    def token(self, client: Credentials) -> str:
        response = self.http.post(
            self.deployment.base_url + TOKEN,
            data={"grant_type": "client_credentials", "scope": "read"},
            auth=client,
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def revoke(self, client: Credentials, token: str) -> float:
        """Revoke at the authorization server; when its answer came."""
        url = self.deployment.base_url + REVOKE
        response = self.http.post(url, data={"token": token}, auth=client)
        assert response.status_code == 200, response.text
        return time.monotonic()


def refused_after(rs: ResourceServer, token: str, since: float, limit: float) -> float:
    """Seconds from ``since`` until ``rs`` refuses ``token``; fails past ``limit``."""
    while True:
        status = rs.get(token)
        elapsed = time.monotonic() - since
        if status == 401:
            return elapsed
        assert status == 200, status
        assert elapsed < limit, f"still accepted after {elapsed:.3f} s:\n{rs.log.read_text()}"
        time.sleep(0.002)


def _at(port: int) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(port)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def resource_server(
    command: list[str],
    env: dict[str, str],
    port: int,
    proxy: CountingProxy,
    log: Path,
    http: httpx.Client,
) -> Iterator[ResourceServer]:
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert process.poll() is None, log.read_text()
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        yield ResourceServer(f"http://127.0.0.1:{port}", proxy, process, log, http)
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    directory = tmp_path_factory.mktemp("revocation-stream")
    deployment = replace(
        deploy(directory),
        key_encryption_key=KEK,
        settings_json=json.dumps({"access_token_format": "jwt"}),
    )
    opaque = run_on_store(
        deployment.db,
        deployment.issuer,
        lambda server: server.register_client(
            name="opaque",
            grant_types=["client_credentials"],
            scope=["read"],
            access_token_format="opaque",
        ),
    )
    assert opaque.client_secret is not None
    rs = deployment.resource_server
    with ExitStack() as stack:
        http = stack.enter_context(httpx.Client(timeout=5))
        stack.enter_context(serve("uvicorn", deployment))
        proxies = []
        for _ in range(2):
            proxy = CountingProxy("127.0.0.1", deployment.port)
            proxy.start()
            stack.callback(proxy.close)
            proxies.append(proxy)
        remote_port, jwt_port = free_port(), free_port()
        remote_as = f"http://127.0.0.1:{proxies[0].port}/oauth2"
        remote = stack.enter_context(
            resource_server(
                [sys.executable, "examples/remote_resource_server.py"],
                {
                    "EXAMPLE_AS_URL": remote_as,
                    "EXAMPLE_CLIENT_ID": rs.client_id,
                    "EXAMPLE_CLIENT_SECRET": rs.secret,
                    "EXAMPLE_PORT": str(remote_port),
                    "EXAMPLE_REVOCATIONS_URL": remote_as + "/revocations",
                },
                remote_port,
                proxies[0],
                directory / "remote-rs.stderr",
                http,
            )
        )
        jwt = stack.enter_context(
            resource_server(
                [sys.executable, "-m", "uvicorn", "tests.servers.jwt_resource:app", *_at(jwt_port)],
                {
                    "RS_ISSUER": deployment.issuer,
                    "RS_AS_URL": f"http://127.0.0.1:{proxies[1].port}/oauth2",
                    "RS_CLIENT_ID": rs.client_id,
                    "RS_CLIENT_SECRET": rs.secret,
                },
                jwt_port,
                proxies[1],
                directory / "jwt-rs.stderr",
                http,
            )
        )
        yield Setup(
            deployment,
            Credentials(opaque.client.client_id, opaque.client_secret),
            remote,
            jwt,
            http,
        )


@slow
def test_a_remote_introspector_refuses_a_revoked_token_at_once(setup: Setup) -> None:
    token = setup.token(setup.opaque)
    assert setup.remote.get(token) == 200
    setup.remote.wait_subscribed()  # the first use started the subscription
    assert setup.remote.get(token) == 200  # from the cache
    revoked_at = setup.revoke(setup.opaque, token)
    assert refused_after(setup.remote, token, revoked_at, AT_ONCE) < AT_ONCE


@slow
def test_a_jwt_introspector_refuses_a_revoked_token_at_once(setup: Setup) -> None:
    client = setup.deployment.client
    token = setup.token(client)
    assert token.count(".") == 2  # a JWT
    assert setup.jwt.get(token) == 200
    setup.jwt.wait_subscribed()
    assert setup.jwt.get(token) == 200
    revoked_at = setup.revoke(client, token)
    assert refused_after(setup.jwt, token, revoked_at, AT_ONCE) < AT_ONCE


@slow
@pytest.mark.parametrize("kind", ["remote", "jwt"])
def test_a_revocation_while_the_stream_is_cut_is_refused_once_it_is_back(
    setup: Setup, kind: str
) -> None:
    rs, client = (
        (setup.remote, setup.opaque) if kind == "remote" else (setup.jwt, setup.deployment.client)
    )
    token = setup.token(client)
    assert rs.get(token) == 200
    warmed_at = time.monotonic()
    downs, backs = rs.log.read_text().count("is down ("), rs.log.read_text().count("is back:")
    rs.proxy.cut()
    try:
        setup.revoke(client, token)
        time.sleep(0.3)
        # The fallback while the stream is down: the cached answer (or the JWT) holds.
        assert rs.get(token) == 200
    finally:
        rs.proxy.restore()
    restored_at = time.monotonic()
    # Reconnected after a backoff of at most a second here, long before the cache expired.
    refused_after(rs, token, restored_at, 3.0)
    assert time.monotonic() - warmed_at < CACHE_TTL / 3
    # One warning for the outage, however many reconnections failed; one when back.
    log = rs.log.read_text()
    assert (log.count("is down (") - downs, log.count("is back:") - backs) == (1, 1), log


@slow
def test_a_revocation_of_a_token_never_seen_costs_the_cache_nothing(setup: Setup) -> None:
    seen, unseen = setup.token(setup.opaque), setup.token(setup.opaque)
    assert setup.remote.get(seen) == 200
    setup.remote.wait_subscribed()
    introspections = setup.remote.introspections
    setup.revoke(setup.opaque, unseen)
    time.sleep(0.3)  # the event has arrived
    assert setup.remote.get(seen) == 200
    assert setup.remote.introspections == introspections


@slow
def test_the_stream_names_every_revoked_token_then_each_new_one(setup: Setup) -> None:
    before = setup.token(setup.opaque)
    setup.revoke(setup.opaque, before)
    jwt = setup.token(setup.deployment.client)
    rs = setup.deployment.resource_server
    with httpx.stream("GET", setup.deployment.base_url + STREAM, auth=rs, timeout=5) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        first = _next_event(lines)
        assert hash_token(before) in first
        setup.revoke(setup.deployment.client, jwt)
        assert _next_event(lines) == [unverified_jti_key(jwt)]


def _next_event(lines: Iterator[str]) -> list[str]:
    data: list[str] = []
    for line in lines:
        if line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())
        elif line.startswith("event:"):
            assert line == "event: revoked"
        elif not line and data:
            keys: list[str] = json.loads("\n".join(data))
            return keys
    raise AssertionError("the stream ended")


@slow
@pytest.mark.parametrize(
    "auth",
    [None, "wrong secret", "not a resource server"],
)
def test_only_a_resource_server_may_subscribe(setup: Setup, auth: str | None) -> None:
    rs = setup.deployment.resource_server
    credentials = {
        None: None,
        "wrong secret": Credentials(rs.client_id, rs.secret + "x"),
        "not a resource server": setup.deployment.client,
    }[auth]
    response = httpx.get(setup.deployment.base_url + STREAM, auth=credentials, timeout=5)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert response.json()["error"] == "invalid_client"


@slow
def test_the_stream_is_only_read(setup: Setup) -> None:
    rs = setup.deployment.resource_server
    response = httpx.post(setup.deployment.base_url + STREAM, auth=rs, timeout=5)
    assert response.status_code == 405


@slow
def test_the_stream_works_under_hypercorn(setup: Setup) -> None:
    instance = setup.deployment.instance()
    rs = setup.deployment.resource_server
    with serve("hypercorn", instance) as server:
        token = setup.token(setup.opaque)
        with httpx.stream("GET", server.url + STREAM, auth=rs, timeout=5) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            assert hash_token(token) not in _next_event(lines)
            revoked = httpx.post(server.url + REVOKE, data={"token": token}, auth=setup.opaque)
            assert revoked.status_code == 200
            assert _next_event(lines) == [hash_token(token)]


@slow
def test_a_revocation_through_another_instance_reaches_the_stream(setup: Setup) -> None:
    """The store's revocation signal carries it from the instance that revoked (the same
    SQLite file, another process) to the one serving the stream."""
    rs = setup.deployment.resource_server
    with serve("uvicorn", setup.deployment.instance()) as other:
        token = setup.token(setup.opaque)
        stream = setup.deployment.base_url + STREAM
        with httpx.stream("GET", stream, auth=rs, timeout=5) as response:
            lines = response.iter_lines()
            assert hash_token(token) not in _next_event(lines)
            revoked = setup.http.post(other.url + REVOKE, data={"token": token}, auth=setup.opaque)
            assert revoked.status_code == 200
            revoked_at = time.monotonic()
            assert _next_event(lines) == [hash_token(token)]
            assert time.monotonic() - revoked_at < AT_ONCE


# -- in-process: the cache and the endpoint's bounds ---------------------------------------


ACTIVE = IntrospectionResult(active=True, scope=frozenset({"read"}))


@pytest.mark.anyio
async def test_the_cache_forgets_exactly_the_revoked_tokens() -> None:
    cache = IntrospectionCache()
    calls: list[str] = []

    async def introspect(token: str) -> IntrospectionResult:
        calls.append(token)
        return ACTIVE

    for token in ("one", "two"):
        await cache.get(token, introspect)
    assert cache.forget([hash_token("never seen"), hash_token("elsewhere")]) == 0
    assert cache.forget([hash_token("one")]) == 1
    assert cache.peek("one") is None
    assert cache.peek("two") is ACTIVE


@pytest.mark.anyio
async def test_a_lookup_under_way_when_its_token_is_revoked_is_not_kept() -> None:
    cache = IntrospectionCache()
    answered = asyncio.Event()

    async def introspect(token: str) -> IntrospectionResult:
        await answered.wait()  # the server said active, then the token was revoked
        return ACTIVE

    lookup = asyncio.ensure_future(cache.get("token", introspect))
    await asyncio.sleep(0)
    assert cache.forget([hash_token("token")]) == 1
    answered.set()
    assert await lookup is ACTIVE
    assert cache.peek("token") is None


@pytest.mark.anyio
async def test_streams_are_bounded_and_end_when_the_client_goes_away() -> None:
    server = AuthorizationServer(MemoryStorage(), Settings(issuer=ISSUER))
    rs = await server.register_client(name="api", grant_types=[], is_resource_server=True)
    assert rs.client_secret is not None
    basic = base64.b64encode(f"{rs.client.client_id}:{rs.client_secret}".encode())
    scope = {
        "type": "http",
        "method": "GET",
        "path": STREAM,
        "headers": [(b"authorization", b"Basic " + basic)],
        "client": ("127.0.0.1", 1),
    }
    events = RevocationEvents(server, max_streams=1, heartbeat=0.02)
    gone = asyncio.Event()
    sent: list[Message] = []

    async def receive() -> Message:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    stream = asyncio.ensure_future(events(scope, receive, send))
    await asyncio.sleep(0.1)
    assert sent[0]["status"] == 200
    assert b"event: revoked\ndata: []" in sent[1]["body"]
    assert b": keep-alive" in b"".join(m.get("body", b"") for m in sent)
    refused: list[Message] = []

    async def collect(message: Message) -> None:
        refused.append(message)

    await events(scope, receive, collect)
    assert refused[0]["status"] == 503
    gone.set()
    await asyncio.wait_for(stream, 1)
    refused.clear()
    gone.clear()
    second = asyncio.ensure_future(events(scope, receive, collect))
    await asyncio.sleep(0.05)
    assert refused[0]["status"] == 200  # the first stream's place is free again
    gone.set()
    await asyncio.wait_for(second, 1)


@pytest.mark.anyio
async def test_a_subscriber_follows_the_stream_across_the_servers_rotation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server ends each stream after ``max_age``: the subscriber reconnects at once,
    resynchronised, with no warning, and the next revocation still arrives."""
    server = AuthorizationServer(MemoryStorage(), Settings(issuer=ISSUER))
    rs = await server.register_client(name="api", grant_types=[], is_resource_server=True)
    client = await server.register_client(
        name="app", grant_types=["client_credentials"], scope=["read"]
    )
    assert rs.client_secret is not None
    port = free_port()
    config = uvicorn.Config(
        RevocationEvents(server, max_age=0.2), host="127.0.0.1", port=port, lifespan="off"
    )
    http = uvicorn.Server(config)
    serving = asyncio.ensure_future(http.serve())
    stream = RevocationStream(
        f"http://127.0.0.1:{port}/", client_id=rs.client.client_id, client_secret=rs.client_secret
    )
    resyncs: list[frozenset[str]] = []
    revoked: list[frozenset[str]] = []

    class Subscriber:
        def resync(self, token_keys: frozenset[str]) -> None:
            resyncs.append(token_keys)

        def revoked(self, token_keys: frozenset[str]) -> None:
            revoked.append(token_keys)

    stream.subscribe(Subscriber())
    try:
        for _ in range(500):  # uvicorn offers no event for it
            if http.started:
                break
            await asyncio.sleep(0.01)
        with caplog.at_level(logging.WARNING, logger="asgi_oauth"):
            stream.start()
            await asyncio.sleep(0.7)
            assert len(resyncs) >= 3  # rotated, and followed each time
            assert client.client_secret is not None
            basic = (
                "Basic "
                + base64.b64encode(
                    f"{client.client.client_id}:{client.client_secret}".encode()
                ).decode()
            )
            form = {"grant_type": "client_credentials", "scope": "read"}
            issued = await server.token(OAuthRequest(form=form, authorization=basic))
            token = issued.access_token
            await server.revoke(OAuthRequest(form={"token": token}, authorization=basic))
            await asyncio.sleep(0.1)
        assert stream.live
        assert hash_token(token) in stream
        assert hash_token(token) in set().union(*revoked, *resyncs[3:])
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    finally:
        await stream.aclose()
        http.should_exit = True
        await asyncio.wait_for(serving, 5)
