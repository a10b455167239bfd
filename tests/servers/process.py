"""Real ASGI server processes for tests: a prepared store and uvicorn or hypercorn.

``deploy`` prepares a store with the library itself (clients, a user): a SQLite
file, or a database URL such as a fresh PostgreSQL schema; ``serve`` runs
``tests.servers.app:app`` on it in a subprocess on 127.0.0.1 and stops it
afterwards, so tests talk to the whole stack over TCP. ``Deployment.instance``
describes one more server on the same store, as behind a load balancer.
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
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, NamedTuple, TypeVar

import pytest

from asgi_oauth import AuthorizationServer, RegisteredClient, Settings
from asgi_oauth.pkce import s256_challenge
from asgi_oauth.storage import open_storage

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
APP = "tests.servers.app:app"
REDIRECT_URI = "http://127.0.0.1/cb"
STARTUP_TIMEOUT = 20.0
SHUTDOWN_TIMEOUT = 10.0
TOKEN = "/oauth2/token"
INTROSPECT = "/oauth2/introspect"
REVOKE = "/oauth2/revoke"
#: The app's protected route: answers the caller's ``sub``, ``client_id`` and ``scope``.
API_ME = "/api/me"

ServerKind = Literal["uvicorn", "hypercorn"]
T = TypeVar("T")

_log_numbers = itertools.count()
#: What ``tests/servers/app.py`` reads only when set.
_OPTIONAL_ENV = (
    "ASGI_OAUTH_TEST_SECRET_KEY",
    "ASGI_OAUTH_TEST_CACHE_TTL",
    "ASGI_OAUTH_TEST_KEY_ENCRYPTION_KEY",
    "ASGI_OAUTH_TEST_SETTINGS",
    "ASGI_OAUTH_TEST_UPSTREAM_PROVIDERS",
)

USERNAME = "alice"
PASSWORD = "correct horse battery staple"


class Credentials(NamedTuple):
    """A client's id and secret; usable as httpx ``auth`` (HTTP Basic)."""

    client_id: str
    secret: str


@dataclass(frozen=True)
class Deployment:
    """A prepared store, the port one server instance listens on, and the clients.

    ``db`` is a SQLite file or a database URL (``postgresql://...?schema=name``).
    The instances of a deployment (``instance()``) share its store, issuer and
    session key, as servers behind one load balancer do; each has its own port.
    """

    db: Path | str
    port: int
    issuer: str
    #: Where the server processes write their stderr.
    log_dir: Path
    client: Credentials
    resource_server: Credentials
    #: A public (native) client: PKCE, any loopback port, and the device grant.
    public_client_id: str
    username: str = USERNAME
    password: str = PASSWORD
    #: Signs the sign-in cookies (``Settings.secret_key``); None: random per process.
    secret_key: str | None = None
    #: Seconds the ``/api`` middleware caches an answer; None: the library's default.
    cache_ttl: float | None = None
    #: ``Settings.key_encryption_key``: set, the server is an OpenID provider too.
    key_encryption_key: str | None = None
    #: Worker processes of one server (uvicorn ``--workers``), all on the same store.
    workers: int = 1
    #: More ``Settings`` for the server processes, as JSON (``{"refresh_token_grace_period": 5}``).
    settings_json: str | None = None
    #: A providers file (``asgi_oauth.federation.load_providers``) people sign in through.
    upstream_providers: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def instance(self) -> Deployment:
        """One more server on this deployment's store, issuer and key, on a port of its own."""
        return replace(self, port=_free_port())

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


def deploy(directory: Path, database_url: str | None = None) -> Deployment:
    """A store with clients, a resource server and a user: a SQLite file in ``directory``,
    or the database ``database_url`` names (for PostgreSQL, a fresh ``?schema=``).

    A database deployment is meant for several instances, so it gets a session key
    they share. The server processes' logs go to ``directory`` either way.
    """
    db: Path | str = directory / "oauth.db" if database_url is None else database_url
    port = _free_port()
    issuer = f"http://127.0.0.1:{port}/oauth2"

    client, resource_server, native = run_on_store(db, issuer, provision)
    return Deployment(
        db=db,
        port=port,
        issuer=issuer,
        log_dir=directory,
        client=client,
        resource_server=resource_server,
        public_client_id=native,
        secret_key=None if database_url is None else secrets.token_urlsafe(32),
    )


async def provision(server: AuthorizationServer) -> tuple[Credentials, Credentials, str]:
    """Register the test clients and user: a confidential client, a resource server and a
    public client; returns their credentials (the public client's id alone)."""
    client = await server.register_client(
        name="app",
        redirect_uris=[REDIRECT_URI],
        grant_types=[
            "client_credentials",
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
        ],
        scope=["read", "write"],
    )
    resource_server = await server.register_client(
        name="api", grant_types=[], is_resource_server=True
    )
    native = await server.register_client(
        name="Native app",
        redirect_uris=[REDIRECT_URI],
        grant_types=[
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
        ],
        scope=["read", "write"],
        public=True,
    )
    await server.create_user(USERNAME, PASSWORD)
    return _credentials(client), _credentials(resource_server), native.client.client_id


def run_on_store(
    db: Path | str, issuer: str, fn: Callable[[AuthorizationServer], Awaitable[T]]
) -> T:
    """Run ``fn`` on an ``AuthorizationServer`` over the store, then close the store."""

    async def main() -> T:
        server = AuthorizationServer(
            open_storage(str(db)), Settings(issuer=issuer, insecure_transport=True)
        )
        try:
            return await fn(server)
        finally:
            await server.close()

    return asyncio.run(main())


def _credentials(registered: RegisteredClient) -> Credentials:
    assert registered.client_secret is not None
    return Credentials(registered.client.client_id, registered.client_secret)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, so a server's lifespan closes its store; SIGKILL if it is stuck."""
    process.terminate()
    try:
        process.wait(timeout=SHUTDOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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
        self.stderr_path = deployment.log_dir / f"{kind}-{next(_log_numbers)}.stderr"
        # Only what this deployment says: nothing optional inherited from the test's shell.
        env = {k: v for k, v in os.environ.items() if k not in _OPTIONAL_ENV}
        env |= {
            "ASGI_OAUTH_TEST_DB": str(deployment.db),
            "ASGI_OAUTH_TEST_ISSUER": deployment.issuer,
            "PYTHONUNBUFFERED": "1",
        }
        if deployment.secret_key is not None:
            env["ASGI_OAUTH_TEST_SECRET_KEY"] = deployment.secret_key
        if deployment.cache_ttl is not None:
            env["ASGI_OAUTH_TEST_CACHE_TTL"] = str(deployment.cache_ttl)
        if deployment.key_encryption_key is not None:
            env["ASGI_OAUTH_TEST_KEY_ENCRYPTION_KEY"] = deployment.key_encryption_key
        if deployment.settings_json is not None:
            env["ASGI_OAUTH_TEST_SETTINGS"] = deployment.settings_json
        if deployment.upstream_providers is not None:
            env["ASGI_OAUTH_TEST_UPSTREAM_PROVIDERS"] = str(deployment.upstream_providers)
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", *_server_args(kind, deployment.port, deployment.workers)],
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
                    pass
                if self._workers_ready():
                    return
                raise OSError("not every worker is ready")
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(
                        f"{self.kind} not listening after {STARTUP_TIMEOUT} s:\n{self.stderr()}"
                    )
                time.sleep(0.05)

    def _workers_ready(self) -> bool:
        """Whether every worker process has started the application (uvicorn says so
        once per worker), so requests fired next can reach each of them."""
        if self.kind != "uvicorn" or self.deployment.workers == 1:
            return True
        return self.stderr().count("Application startup complete") >= self.deployment.workers

    def stop(self) -> None:
        """Stop gracefully (SIGTERM, so the lifespan closes the store); kill if stuck."""
        if self.process.poll() is None:
            stop_process(self.process)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs at all."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()


def _server_args(kind: ServerKind, port: int, workers: int) -> list[str]:
    if kind == "uvicorn":
        args = ["uvicorn", APP, "--host", "127.0.0.1", "--port", str(port)]
        return args if workers == 1 else [*args, "--workers", str(workers)]
    return ["hypercorn", APP, "--bind", f"127.0.0.1:{port}", "--workers", str(workers)]


@contextmanager
def serve(kind: ServerKind, deployment: Deployment) -> Iterator[ServerProcess]:
    """A listening server, always stopped on exit."""
    server = ServerProcess(kind, deployment)
    try:
        server.wait_until_listening()
        yield server
    finally:
        server.stop()


@contextmanager
def serve_all(kind: ServerKind, deployments: Sequence[Deployment]) -> Iterator[list[ServerProcess]]:
    """Listening servers, one per deployment, started together; all stopped on exit."""
    with ExitStack() as stack:
        servers: list[ServerProcess] = []
        for deployment in deployments:
            server = ServerProcess(kind, deployment)
            stack.callback(server.stop)
            servers.append(server)
        for server in servers:
            server.wait_until_listening()
        yield servers
