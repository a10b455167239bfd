"""OpenID Connect Back-Channel Logout 1.0: clients told over real HTTP when someone signs out.

A small HTTP server in a thread plays the client's ``backchannel_logout_uri``: it
records each POST and answers as a test scripts it (200, 500, or never). The logout
token it receives is checked with PyJWT against the server's published JWKS (§2.4:
``typ``, ``iss``, ``aud``, ``events``, ``jti``, and no ``nonce``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import httpx
import jwt
import pytest

from asgi_oauth import AuthorizationServer, Settings, User
from asgi_oauth.endpoints.backchannel import (
    LOGOUT_EVENT,
    BackchannelLogout,
    DeliveryPolicy,
)
from asgi_oauth.models import Client
from asgi_oauth.storage import MemoryStorage

from .browser_helpers import PASSWORD, parse_page, sign_in, submit
from .conftest import ISSUER, FakeClock
from .openid_helpers import decode, fetch_jwks, openid_settings

pytestmark = pytest.mark.anyio

LOGOUT = ISSUER + "/logout"


@dataclass
class Receiver:
    """A client's back-channel logout endpoint: what it got, and what it answers."""

    url: str
    #: Statuses to answer in turn; the last one repeats. 0: never answer.
    statuses: list[int] = field(default_factory=lambda: [200])
    posts: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    arrived: threading.Event = field(default_factory=threading.Event)

    async def first_post(self, timeout: float = 10.0) -> None:
        assert await asyncio.to_thread(self.arrived.wait, timeout)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            state.posts.append((self.headers.get("Content-Type", ""), parse_qs(body)))
            state.arrived.set()
            status = state.statuses[min(len(state.posts), len(state.statuses)) - 1]
            if status == 0:
                state.release.wait(30)
                return
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/backchannel"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def clock() -> FakeClock:
    """Now: the receiver's checks of ``exp`` run on the real clock."""
    return FakeClock(time.time())


@pytest.fixture
def settings() -> Settings:
    # insecure_transport: the receiver is plain http on loopback, as in local development.
    return openid_settings(insecure_transport=True)


@pytest.fixture
async def alice(server: AuthorizationServer) -> User:
    return await server.create_user("alice", PASSWORD)


async def told_client(
    server: AuthorizationServer, receiver: Receiver, subject: str, *, consented: bool = True
) -> Client:
    registered = await server.register_client(
        name="Told",
        redirect_uris=["https://app.example/cb"],
        backchannel_logout_uri=receiver.url,
        id_token_signed_response_alg="ES256",
    )
    if consented:
        await server.storage.save_consent(
            subject, registered.client.client_id, frozenset({"openid"})
        )
    return registered.client


def backchannel(server: AuthorizationServer) -> BackchannelLogout:
    assert server.end_session.backchannel is not None
    return server.end_session.backchannel


async def sign_out(http: httpx.AsyncClient, username: str) -> httpx.Response:
    await sign_in(http, username)
    page = await http.get(LOGOUT)
    return await submit(http, parse_page(page.text).form)


def events(caplog: pytest.LogCaptureFixture) -> list[tuple[str, dict[str, str]]]:
    return [
        (getattr(r, "event", ""), getattr(r, "fields", {}))
        for r in caplog.records
        if getattr(r, "event", "").startswith("backchannel_logout")
    ]


async def test_signing_out_posts_a_logout_token_to_each_consented_client(
    http: httpx.AsyncClient,
    server: AuthorizationServer,
    alice: User,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await told_client(server, receiver, alice.user_id)
    await told_client(server, receiver, "someone-else")  # not alice's: not told
    await server.register_client(name="Untold", redirect_uris=["https://b.example/cb"])
    with caplog.at_level(logging.INFO):
        done = await sign_out(http, "alice")
        assert parse_page(done.text).title == "Signed out"
        await backchannel(server).drain()
    assert len(receiver.posts) == 1
    content_type, form = receiver.posts[0]
    assert content_type == "application/x-www-form-urlencoded"
    assert list(form) == ["logout_token"] and len(form["logout_token"]) == 1
    token = form["logout_token"][0]

    header = jwt.get_unverified_header(token)
    assert header["typ"] == "logout+jwt" and header["alg"] == "ES256"
    claims = decode(token, await fetch_jwks(http), audience=client.client_id)
    assert claims["iss"] == ISSUER and claims["aud"] == client.client_id
    assert claims["sub"] == alice.user_id
    assert claims["events"] == {LOGOUT_EVENT: {}}
    assert "nonce" not in claims and "sid" not in claims
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert claims["exp"] - claims["iat"] == 120
    assert events(caplog) == [
        ("backchannel_logout_delivered", {"client_id": client.client_id, "status": "200"})
    ]


async def test_a_failing_receiver_is_retried_with_backoff_until_it_answers(
    server: AuthorizationServer,
    alice: User,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.statuses = [500, 500, 200]
    client = await told_client(server, receiver, alice.user_id)
    started = time.monotonic()
    with caplog.at_level(logging.INFO):
        backchannel(server).start(alice.user_id)
        await backchannel(server).drain()
    took = time.monotonic() - started
    assert len(receiver.posts) == 3
    assert 2.5 <= took < 10  # waits of 0.5 s, then 2 s
    jtis = {
        jwt.decode(p[1]["logout_token"][0], options={"verify_signature": False})["jti"]
        for p in receiver.posts
    }
    assert len(jtis) == 3  # each attempt a token of its own
    assert events(caplog) == [
        ("backchannel_logout_delivered", {"client_id": client.client_id, "status": "200"})
    ]


async def test_three_failures_are_the_end_of_it(
    server: AuthorizationServer,
    alice: User,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.statuses = [503]
    client = await told_client(server, receiver, alice.user_id)
    with caplog.at_level(logging.INFO):
        backchannel(server).start(alice.user_id)
        await backchannel(server).drain()
    assert len(receiver.posts) == 3
    assert events(caplog) == [
        ("backchannel_logout_failed", {"client_id": client.client_id, "status": "503"})
    ]


def test_the_default_bounds() -> None:
    policy = DeliveryPolicy()
    assert policy.attempt_timeout == 5.0 and policy.backoff == (0.5, 2.0)
    assert policy.give_up_after == 15.0 and policy.max_concurrent >= 1
    assert not policy.private_addresses


async def test_a_receiver_that_never_answers_is_given_up_within_the_bound(
    server: AuthorizationServer,
    settings: Settings,
    alice: User,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.statuses = [0]
    client = await told_client(server, receiver, alice.user_id)
    policy = DeliveryPolicy(
        private_addresses=True, attempt_timeout=0.3, backoff=(0.1, 0.1), give_up_after=1.0
    )
    assert server.keys is not None
    quick = BackchannelLogout(server.storage, settings, server.keys, server.clock, policy=policy)
    started = time.monotonic()
    with caplog.at_level(logging.INFO):
        quick.start(alice.user_id)
        await quick.drain()
    took = time.monotonic() - started
    await quick.aclose()
    assert took < 1.5
    assert len(receiver.posts) >= 2  # each attempt timed out, and was tried again
    assert events(caplog) == [
        ("backchannel_logout_failed", {"client_id": client.client_id, "status": "timeout"})
    ]


async def test_the_person_never_waits_for_the_clients(
    http: httpx.AsyncClient, server: AuthorizationServer, alice: User, receiver: Receiver
) -> None:
    receiver.statuses = [0]
    await told_client(server, receiver, alice.user_id)
    await sign_in(http, "alice")
    form = parse_page((await http.get(LOGOUT)).text).form
    started = time.monotonic()
    done = await submit(http, form)
    assert time.monotonic() - started < 1.0
    assert parse_page(done.text).title == "Signed out"
    await receiver.first_post()
    assert len(receiver.posts) == 1  # on its way meanwhile
    await backchannel(server).aclose()


async def test_private_addresses_are_refused_unless_the_deployment_allows_them(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A dynamically registered URI must not make the server POST inside its network."""
    settings = openid_settings(insecure_transport=True)
    server = AuthorizationServer(MemoryStorage(), settings)
    try:
        client = await told_client(server, receiver, "alice-id")
        assert server.keys is not None
        strict = BackchannelLogout(
            server.storage, settings, server.keys, server.clock, policy=DeliveryPolicy()
        )
        with caplog.at_level(logging.INFO):
            strict.start("alice-id")
            await strict.drain()
        await strict.aclose()
    finally:
        await server.close()
    assert receiver.posts == []
    assert events(caplog) == [
        ("backchannel_logout_failed", {"client_id": client.client_id, "status": "private_address"})
    ]


async def test_without_openid_connect_there_is_no_back_channel() -> None:
    server = AuthorizationServer(MemoryStorage(), Settings(issuer=ISSUER))
    try:
        assert server.end_session.backchannel is None
        server.end_session.signed_out("alice-id")  # nothing to tell, nothing fails
    finally:
        await server.close()
