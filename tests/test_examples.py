"""The programs in ``examples/``, run as their docstrings say: real processes, real HTTP.

Each example starts as ``python examples/<name>.py`` from the repository root,
on a free port and a SQLite file in the test's directory; the tests take the
credentials it printed, get tokens from its ``/oauth2/token`` and call its API
the way the docstring's curl commands do.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 15.0
SHUTDOWN_TIMEOUT = 10.0


@dataclass(frozen=True)
class Example:
    """An example's process, the port it listens on and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    stdout_path: Path
    stderr_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/oauth2"

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def secret(self, label: str) -> str:
        """The secret printed on the ``<label> client_secret: ...`` line."""
        found = re.search(rf"^{label} client_secret: (\S+)", self.stdout(), re.MULTILINE)
        assert found is not None, f"no {label} secret printed:\n{self.stdout()}"
        return found.group(1)

    def wait_until_listening(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            returncode = self.process.poll()
            if returncode is not None:
                pytest.fail(f"{self.name} exited with {returncode}:\n{self.stderr()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"{self.name} not listening after {STARTUP_TIMEOUT} s:\n" + self.stderr()
                    )
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def run_example(name: str, directory: Path, port: int, **env: str) -> Iterator[Example]:
    """``python examples/<name>.py`` listening on ``port``; always stopped on exit."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", "EXAMPLE_PORT": str(port), **env}
    directory.mkdir(parents=True, exist_ok=True)
    stdout_path = directory / f"{name}.stdout"
    stderr_path = directory / f"{name}.stderr"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, f"examples/{name}.py"],
            cwd=REPO_ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    example = Example(name, process, port, stdout_path, stderr_path)
    try:
        example.wait_until_listening()
        yield example
    finally:
        example.stop()
    assert "Traceback" not in example.stderr(), example.stderr()


@contextmanager
def run_example_with_own_server(name: str, directory: Path) -> Iterator[Example]:
    """An example that is also the authorization server, on a fresh database."""
    port = free_port()
    with run_example(
        name,
        directory,
        port,
        EXAMPLE_DB=str(directory / "example.db"),
        EXAMPLE_ISSUER=f"http://127.0.0.1:{port}/oauth2",
    ) as example:
        yield example


def get_token(example: Example, scope: str | None = None) -> str:
    """A client-credentials token for ``demo-client`` from the example's own server."""
    form = {"grant_type": "client_credentials"}
    if scope is not None:
        form["scope"] = scope
    response = httpx.post(
        example.issuer + "/token",
        data=form,
        auth=("demo-client", example.secret("demo")),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def starlette_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    with run_example_with_own_server(
        "starlette_api", tmp_path_factory.mktemp("starlette")
    ) as example:
        yield example


def test_starlette_api_serves_a_token_from_its_own_server(starlette_api: Example) -> None:
    token = get_token(starlette_api)
    with httpx.Client(base_url=starlette_api.url, headers=bearer(token), timeout=10) as http:
        me = http.get("/api/me")
        added = http.post("/api/notes", json={"text": "hello"})
        listed = http.get("/api/notes")
    assert me.status_code == 200, me.text
    assert me.json() == {"client_id": "demo-client", "subject": None, "scopes": ["read", "write"]}
    assert added.status_code == 201, added.text
    assert added.json() == {"text": "hello", "by": "demo-client"}
    assert listed.json() == [{"text": "hello", "by": "demo-client"}]


def test_starlette_api_refuses_a_missing_token_and_a_missing_scope(
    starlette_api: Example,
) -> None:
    read_only, write_only = get_token(starlette_api, "read"), get_token(starlette_api, "write")
    with httpx.Client(base_url=starlette_api.url, timeout=10) as http:
        anonymous = http.get("/api/me")
        cannot_write = http.post("/api/notes", json={"text": "no"}, headers=bearer(read_only))
        cannot_read = http.get("/api/me", headers=bearer(write_only))
    assert anonymous.status_code == 401
    challenge = anonymous.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and "error=" not in challenge
    metadata = f"{starlette_api.url}/.well-known/oauth-protected-resource"
    assert f'resource_metadata="{metadata}"' in challenge
    # POST /api/notes needs "write" (require_scopes); every /api path needs "read".
    for refused, needed in ((cannot_write, "write"), (cannot_read, "read")):
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "insufficient_scope"
        assert refused.headers["www-authenticate"].startswith("Bearer ")
        assert f'scope="{needed}"' in refused.headers["www-authenticate"]


def test_starlette_api_publishes_both_metadata_documents(starlette_api: Example) -> None:
    with httpx.Client(base_url=starlette_api.url, timeout=10) as http:
        server = http.get("/.well-known/oauth-authorization-server/oauth2")
        resource = http.get("/.well-known/oauth-protected-resource")
    assert server.status_code == 200, server.text
    assert server.json()["token_endpoint"] == f"{starlette_api.issuer}/token"
    assert server.json()["scopes_supported"] == ["read", "write"]
    assert resource.status_code == 200, resource.text
    assert resource.json()["resource"] == starlette_api.url
    assert resource.json()["authorization_servers"] == [starlette_api.issuer]
    assert resource.json()["scopes_supported"] == ["read", "write"]


def test_fastapi_api_checks_scopes_per_route_and_documents_them(tmp_path: Path) -> None:
    with run_example_with_own_server("fastapi_api", tmp_path) as example:
        token, read_only = get_token(example), get_token(example, "read")
        with httpx.Client(base_url=example.url, timeout=10) as http:
            me = http.get("/api/me", headers=bearer(token))
            added = http.post("/api/notes", json={"text": "hello"}, headers=bearer(token))
            anonymous = http.get("/api/me")
            cannot_write = http.post("/api/notes", json={"text": "no"}, headers=bearer(read_only))
            openapi = http.get("/openapi.json")
            docs = http.get("/docs")

    assert me.status_code == 200, me.text
    assert me.json() == {"client_id": "demo-client", "subject": None, "scopes": ["read", "write"]}
    assert added.status_code == 201, added.text
    assert added.json() == {"text": "hello", "by": "demo-client"}
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer ")
    assert cannot_write.status_code == 403, cannot_write.text
    assert cannot_write.json()["detail"]["error"] == "insufficient_scope"
    assert 'scope="write"' in cannot_write.headers["www-authenticate"]

    assert openapi.status_code == 200, openapi.text
    schemes = openapi.json()["components"]["securitySchemes"]
    [scheme] = schemes.values()
    assert scheme["type"] == "oauth2"
    flow = scheme["flows"]["authorizationCode"]
    assert flow["tokenUrl"] == f"{example.issuer}/token"
    assert set(flow["scopes"]) == {"read", "write"}
    paths = openapi.json()["paths"]
    assert list(paths["/api/notes"]["post"]["security"][0].values()) == [["write"]]
    assert docs.status_code == 200


def test_remote_resource_server_accepts_tokens_of_the_starlette_api(
    starlette_api: Example, tmp_path: Path
) -> None:
    with run_example(
        "remote_resource_server",
        tmp_path,
        free_port(),
        EXAMPLE_AS_URL=starlette_api.issuer,
        EXAMPLE_CLIENT_ID="demo-resource-server",
        EXAMPLE_CLIENT_SECRET=starlette_api.secret("resource server"),
    ) as remote:
        token, write_only = get_token(starlette_api), get_token(starlette_api, "write")
        with httpx.Client(base_url=remote.url, timeout=10) as http:
            me = http.get("/api/me", headers=bearer(token))
            anonymous = http.get("/api/me")
            cannot_read = http.get("/api/me", headers=bearer(write_only))

    assert me.status_code == 200, me.text
    assert me.json() == {
        "client_id": "demo-client",
        "subject": None,
        "scopes": ["read", "write"],
        "issuer": starlette_api.issuer,
    }
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer ")
    assert cannot_read.status_code == 403, cannot_read.text
    assert 'scope="read"' in cannot_read.headers["www-authenticate"]


def test_starlette_api_registers_its_clients_once(tmp_path: Path) -> None:
    port = free_port()
    env = {
        "EXAMPLE_DB": str(tmp_path / "example.db"),
        "EXAMPLE_ISSUER": f"http://127.0.0.1:{port}/oauth2",
    }
    with run_example("starlette_api", tmp_path / "first", port, **env) as first:
        secret = first.secret("demo")
    with run_example("starlette_api", tmp_path / "second", port, **env) as second:
        assert "client_secret" not in second.stdout()
        response = httpx.post(
            second.issuer + "/token",
            data={"grant_type": "client_credentials"},
            auth=("demo-client", secret),
            timeout=10,
        )
    assert response.status_code == 200, response.text
