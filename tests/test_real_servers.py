"""The endpoints through real HTTP servers (uvicorn, hypercorn) on 127.0.0.1.

Each server runs ``tests.servers.app:app`` in a subprocess on a SQLite file
that the test prepared beforehand with the library itself; the tests talk to
it over TCP with httpx, so the whole stack (ASGI server, Starlette mount,
SQLite writer thread, separate processes) is exercised.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple, TypeVar

import httpx
import pytest

from asgi_oauth import AuthorizationServer, RegisteredClient, Settings
from asgi_oauth.pkce import s256_challenge
from asgi_oauth.storage import SQLiteStorage

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
APP = "tests.servers.app:app"
REDIRECT_URI = "http://127.0.0.1/cb"
STARTUP_TIMEOUT = 20.0
SHUTDOWN_TIMEOUT = 10.0
TOKEN = "/oauth2/token"
INTROSPECT = "/oauth2/introspect"
REVOKE = "/oauth2/revoke"
METADATA_PATHS = (
    "/oauth2/.well-known/oauth-authorization-server",
    "/.well-known/oauth-authorization-server/oauth2",
)

ServerKind = Literal["uvicorn", "hypercorn"]
T = TypeVar("T")

_log_numbers = itertools.count()


class Credentials(NamedTuple):
    """A client's id and secret; usable as httpx ``auth`` (HTTP Basic)."""

    client_id: str
    secret: str


@dataclass(frozen=True)
class Deployment:
    """A prepared SQLite file, the port its server listens on, and its clients."""

    db: Path
    port: int
    client: Credentials
    resource_server: Credentials

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/oauth2"

    def create_code(self, verifier: str) -> str:
        """An authorization code for the client, bound to ``verifier`` by PKCE S256."""
        return run_on_store(
            self.db,
            self.issuer,
            lambda server: server.create_authorization_code(
                client_id=self.client.client_id,
                subject="alice",
                redirect_uri=REDIRECT_URI,
                scope="read write",
                code_challenge=s256_challenge(verifier),
                code_challenge_method="S256",
            ),
        )


def deploy(directory: Path) -> Deployment:
    """A SQLite file in ``directory`` with a confidential client and a resource server."""
    db = directory / "oauth.db"
    port = _free_port()
    issuer = f"http://127.0.0.1:{port}/oauth2"

    async def register(server: AuthorizationServer) -> tuple[Credentials, Credentials]:
        client = await server.register_client(
            name="app",
            redirect_uris=[REDIRECT_URI],
            grant_types=["client_credentials", "authorization_code", "refresh_token"],
            scope=["read", "write"],
        )
        resource_server = await server.register_client(
            name="api", grant_types=[], is_resource_server=True
        )
        return _credentials(client), _credentials(resource_server)

    client, resource_server = run_on_store(db, issuer, register)
    return Deployment(db=db, port=port, client=client, resource_server=resource_server)


def run_on_store(db: Path, issuer: str, fn: Callable[[AuthorizationServer], Awaitable[T]]) -> T:
    """Run ``fn`` on an ``AuthorizationServer`` over the SQLite file, then close the store."""

    async def main() -> T:
        server = AuthorizationServer(
            SQLiteStorage(db), Settings(issuer=issuer, insecure_transport=True)
        )
        try:
            return await fn(server)
        finally:
            await server.close()

    return asyncio.run(main())


def _credentials(registered: RegisteredClient) -> Credentials:
    assert registered.client_secret is not None
    return Credentials(registered.client.client_id, registered.client_secret)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """An ASGI server subprocess serving ``APP`` for one deployment."""

    def __init__(self, kind: ServerKind, deployment: Deployment) -> None:
        self.kind = kind
        self.deployment = deployment
        self.url = deployment.base_url
        self.stderr_path = deployment.db.parent / f"{kind}-{next(_log_numbers)}.stderr"
        env = {
            **os.environ,
            "ASGI_OAUTH_TEST_DB": str(deployment.db),
            "ASGI_OAUTH_TEST_ISSUER": deployment.issuer,
            "PYTHONUNBUFFERED": "1",
        }
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", *_server_args(kind, deployment.port)],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_until_listening(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            returncode = self.process.poll()
            if returncode is not None:
                pytest.fail(
                    f"{self.kind} exited with {returncode} before listening:\n{self.stderr()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.deployment.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(
                        f"{self.kind} not listening after {STARTUP_TIMEOUT} s:\n{self.stderr()}"
                    )
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop gracefully (SIGTERM, so the lifespan closes the store); kill if stuck."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs at all."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()


def _server_args(kind: ServerKind, port: int) -> list[str]:
    if kind == "uvicorn":
        return ["uvicorn", APP, "--host", "127.0.0.1", "--port", str(port)]
    return ["hypercorn", APP, "--bind", f"127.0.0.1:{port}"]


@contextmanager
def serve(kind: ServerKind, deployment: Deployment) -> Iterator[ServerProcess]:
    """A listening server, always stopped on exit."""
    server = ServerProcess(kind, deployment)
    try:
        server.wait_until_listening()
        yield server
    finally:
        server.stop()


Launch = Callable[[ServerKind, Deployment], ServerProcess]


@pytest.fixture
def launch() -> Iterator[Launch]:
    """Start servers during a test; every one is stopped at teardown."""
    with ExitStack() as stack:
        yield lambda kind, deployment: stack.enter_context(serve(kind, deployment))


@pytest.fixture
def deployment(tmp_path: Path) -> Deployment:
    return deploy(tmp_path)


@pytest.fixture(scope="module", params=["uvicorn", "hypercorn"])
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server of each kind, shared by the tests that only read or add tokens."""
    kind: ServerKind = request.param
    with serve(kind, deploy(tmp_path_factory.mktemp(kind))) as server:
        yield server


def client_credentials_token(http: httpx.Client, deployment: Deployment) -> str:
    response = http.post(TOKEN, data={"grant_type": "client_credentials"}, auth=deployment.client)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def introspect(http: httpx.Client, deployment: Deployment, token: str) -> dict[str, object]:
    response = http.post(INTROSPECT, data={"token": token}, auth=deployment.resource_server)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def post_concurrently(
    url: str, data: dict[str, str], auth: Credentials, count: int
) -> list[httpx.Response]:
    """``count`` identical POSTs in flight at once, each on its own connection."""

    async def main() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
        async with httpx.AsyncClient(limits=limits, timeout=30) as http:
            return await asyncio.gather(
                *(http.post(url, data=data, auth=auth) for _ in range(count))
            )

    return asyncio.run(main())


def errors_of(responses: list[httpx.Response]) -> list[tuple[int, object]]:
    return [(response.status_code, response.json().get("error")) for response in responses]


def test_token_is_issued_introspected_and_revoked(running: ServerProcess) -> None:
    deployment = running.deployment
    with httpx.Client(base_url=running.url, timeout=10) as http:
        issued = http.post(TOKEN, data={"grant_type": "client_credentials"}, auth=deployment.client)
        assert issued.status_code == 200, issued.text
        assert issued.headers["cache-control"] == "no-store"
        assert issued.headers["pragma"] == "no-cache"
        token = issued.json()["access_token"]

        described = introspect(http, deployment, token)
        assert described["active"] is True
        assert described["client_id"] == deployment.client.client_id
        assert described["scope"] == "read write"
        assert described["iss"] == deployment.issuer

        revoked = http.post(REVOKE, data={"token": token}, auth=deployment.client)
        assert revoked.status_code == 200, revoked.text

        assert introspect(http, deployment, token) == {"active": False}


@pytest.mark.parametrize("path", METADATA_PATHS)
@pytest.mark.parametrize("host", [None, "evil.example"], ids=["host", "forged-host"])
def test_metadata_has_the_configured_issuer(
    running: ServerProcess, path: str, host: str | None
) -> None:
    issuer = running.deployment.issuer
    headers = {} if host is None else {"Host": host}
    with httpx.Client(base_url=running.url, timeout=10) as http:
        response = http.get(path, headers=headers)
    assert response.status_code == 200, response.text
    metadata = response.json()
    assert metadata["issuer"] == issuer
    assert metadata["token_endpoint"] == f"{issuer}/token"


def test_token_survives_sigkill_and_restart(deployment: Deployment, launch: Launch) -> None:
    first = launch("uvicorn", deployment)
    with httpx.Client(base_url=first.url, timeout=10) as http:
        token = client_credentials_token(http, deployment)
    first.kill()

    second = launch("uvicorn", deployment)
    with httpx.Client(base_url=second.url, timeout=10) as http:
        described = introspect(http, deployment, token)
    assert described["active"] is True
    assert described["client_id"] == deployment.client.client_id


def test_concurrent_code_redemption_has_one_winner_whose_token_is_revoked(
    deployment: Deployment, launch: Launch
) -> None:
    verifier = secrets.token_urlsafe(48)
    code = deployment.create_code(verifier)
    server = launch("uvicorn", deployment)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }

    responses = post_concurrently(server.url + TOKEN, form, deployment.client, 50)

    winners = [r for r in responses if r.status_code == 200]
    losers = [r for r in responses if r.status_code != 200]
    assert len(winners) == 1, errors_of(responses)
    assert errors_of(losers) == [(400, "invalid_grant")] * 49
    # RFC 6749 §4.1.2: the replays revoked what the code had issued.
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert introspect(http, deployment, winners[0].json()["access_token"]) == {"active": False}


def test_concurrent_refresh_has_one_winner_whose_tokens_are_revoked(
    deployment: Deployment, launch: Launch
) -> None:
    verifier = secrets.token_urlsafe(48)
    code = deployment.create_code(verifier)
    server = launch("uvicorn", deployment)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        exchanged = http.post(
            TOKEN,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            },
            auth=deployment.client,
        )
    assert exchanged.status_code == 200, exchanged.text
    form = {"grant_type": "refresh_token", "refresh_token": exchanged.json()["refresh_token"]}

    responses = post_concurrently(server.url + TOKEN, form, deployment.client, 20)

    winners = [r for r in responses if r.status_code == 200]
    losers = [r for r in responses if r.status_code != 200]
    assert len(winners) == 1, errors_of(responses)
    assert errors_of(losers) == [(400, "invalid_grant")] * 19
    # The losers presented a rotated-out refresh token: reuse (RFC 9700 §4.14.2).
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for name in ("access_token", "refresh_token"):
            assert introspect(http, deployment, winners[0].json()[name]) == {"active": False}


def test_bad_requests_get_json_errors_and_no_traceback(
    deployment: Deployment, launch: Launch
) -> None:
    server = launch("uvicorn", deployment)
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        wrong_method = http.get(TOKEN)
        too_large = http.post(TOKEN, content=b"a" * (100 * 1024), headers=form_type)
        not_utf8 = http.post(TOKEN, content=b"\xff\xfe", headers=form_type)
        wrong_type = http.post(TOKEN, json={"grant_type": "client_credentials"})
        bad_basic = http.post(
            TOKEN,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": "Basic %%%not-base64"},
        )
    server.stop()

    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    assert too_large.status_code == 413
    assert not_utf8.status_code == 400
    assert wrong_type.status_code == 415
    assert bad_basic.status_code == 401
    assert bad_basic.headers["www-authenticate"].startswith("Basic ")
    for response in (wrong_method, too_large, not_utf8, wrong_type, bad_basic):
        assert response.headers["content-type"] == "application/json"
        assert isinstance(response.json()["error"], str), response.text
    assert "Traceback" not in server.stderr()
