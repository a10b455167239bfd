"""The programs in ``examples/``, run as their docstrings say: real processes, real HTTP.

Each example starts as ``python examples/<name>.py`` from the repository root
(``starlette_api`` also under hypercorn), on a free port and a SQLite file in
the test's directory; the tests take the credentials it printed, get tokens
from its ``/oauth2/token`` and call its API the way the docstring's curl
commands do. ``device_client.py`` runs against ``asgi-oauth serve --demo`` and
``starlette_api.py`` while the test, as the person, signs in and decides on
the verification page with httpx; so does ``pkce_client.py``, whose browser
(``BROWSER``) is a script that hands the URL it opens to the test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from examples import device_client, pkce_client

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 15.0
SHUTDOWN_TIMEOUT = 10.0
#: How long a device client may take once the person decided: its poll interval and more.
DEVICE_CLIENT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Example:
    """An example's process, the port it listens on and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    stdout_path: Path
    stderr_path: Path
    #: Where the authorization server is, below the URL: the issuer's path.
    mount: str = "/oauth2"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return self.url + self.mount

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def secret(self, label: str) -> str:
        """The secret printed on the ``<label> client_secret: ...`` line."""
        found = re.search(rf"^{label} client_secret: (\S+)", self.stdout(), re.MULTILINE)
        assert found is not None, f"no {label} secret printed:\n{self.stdout()}"
        return found.group(1)

    def password(self) -> str:
        """The demo user's password, from the ``demo user: demo / ...`` line."""
        found = re.search(r"^demo user:\s+demo / (\S+)", self.stdout(), re.MULTILINE)
        assert found is not None, f"no demo user printed:\n{self.stdout()}"
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
def run_example(
    name: str,
    directory: Path,
    port: int,
    command: Sequence[str] = (),
    mount: str = "/oauth2",
    **env: str,
) -> Iterator[Example]:
    """``python examples/<name>.py`` (or ``command``) listening on ``port``; always
    stopped on exit."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", "EXAMPLE_PORT": str(port), **env}
    directory.mkdir(parents=True, exist_ok=True)
    stdout_path = directory / f"{name}.stdout"
    stderr_path = directory / f"{name}.stderr"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            list(command) or [sys.executable, f"examples/{name}.py"],
            cwd=REPO_ROOT,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    example = Example(name, process, port, stdout_path, stderr_path, mount)
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


@dataclass
class Form:
    """A page's form as a browser would send it: its action, fields and submit buttons."""

    action: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        name, value = attributes.get("name"), attributes.get("value") or ""
        if tag == "form":
            self.forms.append(Form(attributes.get("action") or ""))
        elif not self.forms or name is None:
            return
        elif tag == "button":
            self.forms[-1].buttons.append((name, value))
        elif tag == "input" and (attributes.get("type") != "checkbox" or "checked" in attributes):
            self.forms[-1].fields[name] = value


def only_form(page: httpx.Response) -> Form:
    parser = _FormParser()
    parser.feed(page.text)
    assert len(parser.forms) == 1, f"{page.url} ({page.status_code}):\n{page.text}"
    return parser.forms[0]


class Person:
    """Someone at a browser, as httpx: keeps cookies, follows redirects, fills in forms."""

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.http = httpx.Client(follow_redirects=True, timeout=10)

    def close(self) -> None:
        self.http.close()

    def open(self, url: str, **params: str) -> httpx.Response:
        page = self.http.get(httpx.URL(url).copy_merge_params(params))  # keeps url's query
        assert page.status_code == 200, page.text
        return page

    def submit(
        self,
        page: httpx.Response,
        values: dict[str, str] | None = None,
        *,
        button: tuple[str, str] | None = None,
    ) -> httpx.Response:
        """Send the page's form with ``values`` typed in, by pressing ``button``."""
        form = only_form(page)
        data = {**form.fields, **(values or {})}
        if button is not None:
            assert button in form.buttons, f"no {button} button: {form.buttons}"
            data[button[0]] = button[1]
        return self.http.post(urljoin(str(page.url), form.action), data=data)

    def sign_in(self, page: httpx.Response) -> httpx.Response:
        """Fill in the sign-in page the server sent them to, and go back where they were."""
        assert set(only_form(page).fields) == {"username", "password", "csrf_token", "next"}
        signed_in = self.submit(page, {"username": self.username, "password": self.password})
        assert signed_in.status_code == 200, signed_in.text
        return signed_in

    def decide_device(
        self, url: str, decision: str, *, user_code: str | None = None
    ) -> httpx.Response:
        """Open a verification URI, sign in, type ``user_code`` if given, then decide."""
        entry = self.sign_in(self.open(url))
        assert set(only_form(entry).fields) == {"user_code", "csrf_token"}
        consent = self.submit(entry, None if user_code is None else {"user_code": user_code})
        assert consent.status_code == 200, consent.text
        assert "Authorize a device" in consent.text
        return self.submit(consent, button=("decision", decision))


@contextmanager
def person(example: Example) -> Iterator[Person]:
    """The demo user the example printed, at a browser."""
    someone = Person("demo", example.password())
    try:
        yield someone
    finally:
        someone.close()


@dataclass(frozen=True)
class DeviceClient:
    """``python examples/device_client.py`` running, and where its output goes."""

    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def instructions(self) -> dict[str, str]:
        """What it told the person (RFC 8628 §3.3), once it has."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while "Waiting for approval" not in self.stderr():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the device client gave no code:\n{self.stderr()}")
            time.sleep(0.05)
        said = {
            "verification_uri": r"open:\s+(\S+)",
            "user_code": r"enter the code:\s+(\S+)",
            "verification_uri_complete": r"this link instead:\s+(\S+)",
        }
        found = {key: re.search(pattern, self.stderr()) for key, pattern in said.items()}
        shown = {key: match.group(1) for key, match in found.items() if match is not None}
        assert shown.keys() == said.keys(), self.stderr()
        return shown

    def wait(self) -> int:
        return self.process.wait(timeout=DEVICE_CLIENT_TIMEOUT)


@contextmanager
def run_device_client(directory: Path, *args: str) -> Iterator[DeviceClient]:
    """``python examples/device_client.py ARGS``; killed on exit if still running."""
    directory.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = directory / "device.stdout", directory / "device.stderr"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "examples/device_client.py", *args],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        yield DeviceClient(process, stdout_path, stderr_path)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def starlette_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    with run_example_with_own_server(
        "starlette_api", tmp_path_factory.mktemp("starlette")
    ) as example:
        yield example


@pytest.fixture(scope="module")
def fastapi_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    with run_example_with_own_server("fastapi_api", tmp_path_factory.mktemp("fastapi")) as example:
        yield example


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    """``asgi-oauth serve --demo``, whose issuer has no path, polled every second."""
    directory, port = tmp_path_factory.mktemp("serve"), free_port()
    command = [sys.executable, "-m", "asgi_oauth", "serve", "--demo", "--insecure-transport"]
    command += ["--port", str(port), "--db", str(directory / "demo.db")]
    with run_example(
        "asgi_oauth_serve",
        directory,
        port,
        command=command,
        mount="",
        ASGI_OAUTH_DEVICE_POLL_INTERVAL="1",
    ) as server:
        yield server


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
    # POST /api/notes needs "write" (require_scopes); every /api path needs "read". The
    # challenge names what is needed with what the token has (MCP SEP-835).
    for refused in (cannot_write, cannot_read):
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "insufficient_scope"
        assert refused.headers["www-authenticate"].startswith("Bearer ")
        assert 'scope="read write"' in refused.headers["www-authenticate"]


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


def test_fastapi_api_checks_scopes_per_route_and_documents_them(fastapi_api: Example) -> None:
    example = fastapi_api
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
    assert 'scope="read write"' in cannot_write.headers["www-authenticate"]

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
    # The "Authorize" button: the public client, with PKCE.
    assert '"clientId": "demo-app"' in docs.text
    assert '"usePkceWithAuthorizationCodeGrant": true' in docs.text


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
    assert 'scope="read write"' in cannot_read.headers["www-authenticate"]


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
        assert "demo user" not in second.stdout()
        response = httpx.post(
            second.issuer + "/token",
            data={"grant_type": "client_credentials"},
            auth=("demo-client", secret),
            timeout=10,
        )
    assert response.status_code == 200, response.text


def test_starlette_api_runs_under_hypercorn(tmp_path: Path) -> None:
    """As its docstring says: ``hypercorn examples.starlette_api:app --bind 127.0.0.1:PORT``,
    with ``EXAMPLE_PORT`` naming the same port."""
    port = free_port()
    command = [sys.executable, "-m", "hypercorn", "examples.starlette_api:app"]
    command += ["--bind", f"127.0.0.1:{port}"]
    with run_example(
        "starlette_api", tmp_path, port, command=command, EXAMPLE_DB=str(tmp_path / "example.db")
    ) as example:
        token = get_token(example)
        with httpx.Client(base_url=example.url, timeout=10) as http:
            me = http.get("/api/me", headers=bearer(token))
            anonymous = http.get("/api/me")
            metadata = http.get("/.well-known/oauth-authorization-server/oauth2")
    assert me.headers["server"].startswith("hypercorn"), me.headers
    assert me.status_code == 200, me.text
    assert me.json() == {"client_id": "demo-client", "subject": None, "scopes": ["read", "write"]}
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer ")
    assert metadata.json()["issuer"] == example.issuer


def test_device_client_gets_the_token_the_person_approves(
    demo_server: Example, tmp_path: Path
) -> None:
    issuer = ["--issuer", demo_server.issuer, "--client-id", "demo-app", "--scope", "read"]
    with run_device_client(tmp_path, *issuer) as device, person(demo_server) as someone:
        shown = device.instructions()
        assert shown["verification_uri"] == f"{demo_server.issuer}/device"
        done = someone.decide_device(shown["verification_uri_complete"], "approve")
        returncode = device.wait()

    assert done.status_code == 200, done.text
    assert "Device connected" in done.text
    assert returncode == 0, device.stderr()
    token = json.loads(device.stdout())
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "read"
    api = httpx.get(f"{demo_server.url}/api/demo", headers=bearer(token["access_token"]))
    assert api.status_code == 200, api.text
    assert api.json()["scope"] == ["read"]


def test_device_client_stops_when_the_person_denies(demo_server: Example, tmp_path: Path) -> None:
    issuer = ["--issuer", demo_server.issuer, "--client-id", "demo-app"]
    with run_device_client(tmp_path, *issuer) as device, person(demo_server) as someone:
        shown = device.instructions()
        # This time the person opens the short URI and types the code.
        done = someone.decide_device(
            shown["verification_uri"], "deny", user_code=shown["user_code"].lower()
        )
        returncode = device.wait()

    assert "Request denied" in done.text
    assert returncode == 1
    assert device.stdout() == ""
    assert "error: the request was denied; no token was issued" in device.stderr()


def test_device_client_against_the_starlette_api_prints_the_token_only(
    starlette_api: Example, tmp_path: Path
) -> None:
    """The docstrings' command, against an issuer with a path (RFC 8414 §3.1 metadata)."""
    args = ["--issuer", starlette_api.issuer, "--client-id", "demo-app", "--token-only"]
    with run_device_client(tmp_path, *args) as device, person(starlette_api) as someone:
        shown = device.instructions()
        assert shown["verification_uri"] == f"{starlette_api.issuer}/device"
        someone.decide_device(shown["verification_uri_complete"], "approve")
        returncode = device.wait()

    assert returncode == 0, device.stderr()
    me = httpx.get(f"{starlette_api.url}/api/me", headers=bearer(device.stdout().strip()))
    assert me.status_code == 200, me.text
    assert me.json()["client_id"] == "demo-app"
    assert me.json()["subject"] is not None
    assert me.json()["scopes"] == ["read", "write"]


def test_fastapi_docs_authorize_button_flow_gives_a_person_token(fastapi_api: Example) -> None:
    """What Swagger UI's "Authorize" does as ``demo-app``: code flow with PKCE (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    redirect_uri = f"{fastapi_api.url}/docs/oauth2-redirect"
    with person(fastapi_api) as someone:
        sign_in = someone.open(
            f"{fastapi_api.issuer}/authorize",
            response_type="code",
            client_id="demo-app",
            redirect_uri=redirect_uri,
            scope="read write",
            state="swagger-state",
            code_challenge=challenge,
            code_challenge_method="S256",
        )
        consent = someone.sign_in(sign_in)
        assert "Authorize access" in consent.text
        back = someone.submit(consent, button=("decision", "approve"))
    assert back.status_code == 200, back.text  # the docs' own redirect page
    assert str(back.url).startswith(redirect_uri + "?")
    assert back.url.params["state"] == "swagger-state"
    tokens = httpx.post(
        f"{fastapi_api.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": back.url.params["code"],
            "client_id": "demo-app",
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        timeout=10,
    )
    assert tokens.status_code == 200, tokens.text
    me = httpx.get(f"{fastapi_api.url}/api/me", headers=bearer(tokens.json()["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["client_id"] == "demo-app"
    assert me.json()["subject"] is not None


@dataclass(frozen=True)
class PkceClientRun:
    """What ``examples/pkce_client.py`` printed and returned, and the person's last page."""

    last_page: httpx.Response
    returncode: int
    stdout: str
    stderr: str


def run_pkce_client(server: Example, directory: Path, decision: str) -> PkceClientRun:
    """``python examples/pkce_client.py`` against ``server``, its browser (``BROWSER``) a
    script that hands the URL to the test, where the demo user signs in and decides."""
    opened = directory / "opened-url"
    browser = directory / "browser"
    target = shlex.quote(str(opened))
    browser.write_text(f'#!/bin/sh\nprintf %s "$1" > {target}.part && mv {target}.part {target}\n')
    browser.chmod(0o755)
    command = [sys.executable, "examples/pkce_client.py", "--issuer", server.issuer]
    command += ["--client-id", "demo-app", "--scope", "read", "--timeout", "30"]
    with (
        subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, "BROWSER": str(browser), "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as client,
        person(server) as someone,
    ):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not opened.exists():
            assert client.poll() is None, client.communicate()[1].decode()
            assert time.monotonic() < deadline, "the example opened no browser"
            time.sleep(0.05)
        consent = someone.sign_in(someone.open(opened.read_text()))
        assert "Authorize access" in consent.text
        last_page = someone.submit(consent, button=("decision", decision))
        out, err = client.communicate(timeout=DEVICE_CLIENT_TIMEOUT)
    return PkceClientRun(last_page, client.returncode, out.decode(), err.decode())


def test_pkce_client_gets_the_token_the_person_approves(
    demo_server: Example, tmp_path: Path
) -> None:
    run = run_pkce_client(demo_server, tmp_path, "approve")

    assert run.last_page.status_code == 200, run.last_page.text
    assert str(run.last_page.url).startswith("http://127.0.0.1:")
    assert run.last_page.url.path == "/callback"
    assert "You can close this window" in run.last_page.text
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    token = json.loads(run.stdout)
    assert token["token_type"] == "Bearer" and token["scope"] == "read"
    api = httpx.get(f"{demo_server.url}/api/demo", headers=bearer(token["access_token"]))
    assert api.status_code == 200, api.text
    assert api.json()["sub"] is not None


def test_pkce_client_stops_when_the_person_denies(demo_server: Example, tmp_path: Path) -> None:
    run = run_pkce_client(demo_server, tmp_path, "deny")

    assert run.last_page.url.path == "/callback"
    assert run.returncode == 1
    assert run.stdout == ""
    assert "error: access_denied" in run.stderr


ISSUER = "https://as.example"


@pytest.mark.parametrize(
    ("params", "refused"),
    [
        ({"code": "C", "state": "S", "iss": ISSUER}, None),
        ({"code": "C", "state": "other", "iss": ISSUER}, "state is not this request's"),
        ({"code": "C", "iss": ISSUER}, "state is not this request's"),
        # RFC 9207: another issuer's answer, or none where iss was promised (mix-up).
        ({"code": "C", "state": "S", "iss": "https://evil.example"}, "comes from"),
        ({"code": "C", "state": "S"}, "comes from None"),
        ({"error": "access_denied", "state": "S", "iss": ISSUER}, "access_denied"),
        ({"state": "S", "iss": ISSUER}, "no code"),
    ],
)
def test_pkce_client_checks_the_answer_before_it_uses_the_code(
    params: dict[str, str], refused: str | None
) -> None:
    metadata = {"issuer": ISSUER, "authorization_response_iss_parameter_supported": True}
    if refused is None:
        assert pkce_client.check_response(params, "S", metadata) == "C"
    else:
        with pytest.raises(pkce_client.SignInError, match=refused):
            pkce_client.check_response(params, "S", metadata)


TOKEN_RESPONSE = {"access_token": "T", "token_type": "Bearer", "expires_in": 3600}


@pytest.mark.parametrize(
    ("errors", "waits", "outcome"),
    [
        ([], [2], "token"),
        (["authorization_pending", "authorization_pending"], [2, 2, 2], "token"),
        # RFC 8628 §3.5: slow_down adds 5 seconds to this and every later wait.
        (["slow_down", "authorization_pending", "slow_down"], [2, 7, 7, 12], "token"),
        (["authorization_pending", "access_denied"], [2, 2], "the request was denied"),
        (["expired_token"], [2], "the code expired"),
        (["invalid_grant"], [2], "invalid_grant: no"),
    ],
)
def test_device_client_polls_at_the_interval_it_is_told(
    errors: list[str], waits: list[int], outcome: str
) -> None:
    """The device client's polling alone, against canned token endpoint answers."""
    answers = iter(errors)
    polls: list[dict[str, str]] = []

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        polls.append(dict(httpx.QueryParams(request.content.decode())))
        error = next(answers, None)
        if error is None:
            return httpx.Response(200, json=TOKEN_RESPONSE)
        return httpx.Response(400, json={"error": error, "error_description": "no"})

    slept: list[float] = []
    codes: dict[str, Any] = {"device_code": "D", "interval": 2}
    with httpx.Client(transport=httpx.MockTransport(token_endpoint)) as http:
        try:
            result: object = device_client.poll(
                http, "https://as/token", "app", codes, slept.append
            )
        except device_client.DeviceFlowError as exc:
            result = str(exc)
    assert slept == waits
    if outcome == "token":
        assert result == TOKEN_RESPONSE
    else:
        assert outcome in str(result)
    assert polls[0] == {
        "grant_type": device_client.DEVICE_GRANT,
        "device_code": "D",
        "client_id": "app",
    }
