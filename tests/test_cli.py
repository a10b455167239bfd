"""The ``asgi-oauth`` command, run as the README's first command runs it: ``serve``,
its help, where its settings come from, and the story of a client from creation to a
revoked token that stays revoked across a restart.

The other commands are tested in ``test_cli_commands.py``, with the helpers here.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from asgi_oauth.cli import main
from asgi_oauth.pkce import s256_challenge
from asgi_oauth.storage import MemoryStorage, SQLiteStorage, open_storage

from .browser_helpers import parse_page, query_of

REPO_ROOT = Path(__file__).resolve().parent.parent


# -- running the command ------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ASGI_OAUTH_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASGI_OAUTH_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass(frozen=True)
class Run:
    """What one run of the command did."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self
        return json.loads(self.out)


def run(*args: str, cwd: Path, stdin: str = "", env: Mapping[str, str] | None = None) -> Run:
    """``python -m asgi_oauth ARGS`` in ``cwd``, ``stdin`` piped in (so not a terminal)."""
    done = subprocess.run(
        [sys.executable, "-m", "asgi_oauth", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=clean_env() if env is None else dict(env),
        timeout=60,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def assert_one_line_error(result: Run, code: int, message: str) -> None:
    """A mistake: nothing on stdout, one ``asgi-oauth: ...`` line on stderr, ``code``."""
    assert result.code == code, result
    assert result.out == "", result
    assert result.err.startswith("asgi-oauth: "), result
    assert result.err.endswith("\n") and result.err.count("\n") == 1, result
    assert message in result.err, result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(
    args: Sequence[str], *, port: int, cwd: Path, out: Path, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``asgi-oauth serve ARGS --port PORT`` until the block ends; its output goes to ``out``."""
    command = [sys.executable, "-m", "asgi_oauth", "serve", *args, "--port", str(port)]
    with out.open("wb") as stdout:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            env=clean_env() if env is None else dict(env),
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, out.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, out.read_text()
                time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def serve(db: Path, port: int, out: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``serve --demo`` on ``db``, run from the repository as the README runs it."""
    args = ["--demo", "--insecure-transport", "--db", f"sqlite:///{db}"]
    with serving(
        args,
        port=port,
        cwd=REPO_ROOT,
        out=out,
        env={"PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin"},
    ) as process:
        yield process


# -- in-process: database URLs, bad options --------------------------------------------


def test_database_urls_name_their_store() -> None:
    for url, path in (
        ("sqlite:///var/lib/oauth.db", "var/lib/oauth.db"),
        ("sqlite:////abs/oauth.db", "/abs/oauth.db"),
        ("oauth.db", "oauth.db"),
    ):
        store = open_storage(url)
        assert isinstance(store, SQLiteStorage) and store._path == path
    assert isinstance(open_storage("memory:"), MemoryStorage)
    for bad in ("mysql://x", "sqlite://relative.db"):
        with pytest.raises(ValueError, match="unsupported database URL"):
            open_storage(bad)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--db", "mysql://db"], "unsupported database URL"),
        (["serve", "--issuer", "http://as.example"], "insecure_transport"),
    ],
)
def test_bad_options_give_one_clear_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("asgi-oauth: ") and message in err
    assert err.count("\n") == 1


def test_a_file_that_is_not_a_database_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    port = str(free_port())
    assert main(["serve", "--db", str(junk), "--insecure-transport", "--port", port]) == 2
    assert "asgi-oauth: " in capsys.readouterr().err
    assert junk.read_bytes() == b"this is not a database" * 100


# -- help ----------------------------------------------------------------------------

_METADATA = [
    "--redirect-uri",
    "--grant-type",
    "--scope",
    "--origin",
    "--resource-server",
    "--no-resource-server",
    "--require-pkce",
    "--insecure-transport",
]
_STORE = ["--db", "--json", "ASGI_OAUTH_DATABASE_URL"]
HELP: dict[tuple[str, ...], list[str]] = {
    (): ["--version", "serve", "clients", "users", "tokens", "migrate", "purge", "ASGI_OAUTH_"],
    ("serve",): [
        "--db",
        "--host",
        "--port",
        "--issuer",
        "ASGI_OAUTH_ISSUER",
        "--insecure-transport",
        "--ssl-certfile",
        "--ssl-keyfile",
        "--behind-tls-proxy",
        "--forwarded-allow-ips",
        "--root-path",
        "--demo",
    ],
    ("clients",): ["create", "list", "show", "update", "delete", "rotate-secret"],
    ("clients", "create"): ["--name", "--client-id", "--public", *_METADATA, *_STORE],
    ("clients", "list"): _STORE,
    ("clients", "show"): ["client_id", *_STORE],
    ("clients", "update"): ["client_id", "--name", *_METADATA, *_STORE],
    ("clients", "delete"): ["client_id", *_STORE],
    ("clients", "rotate-secret"): ["client_id", *_STORE],
    ("users",): ["create", "set-password", "delete", "list"],
    ("users", "create"): ["username", "--password-stdin", *_STORE],
    ("users", "set-password"): ["username", "--password-stdin", *_STORE],
    ("users", "delete"): ["username", *_STORE],
    ("users", "list"): _STORE,
    ("tokens",): ["revoke"],
    ("tokens", "revoke"): _STORE,
    ("migrate",): _STORE,
    ("purge",): _STORE,
}


@pytest.mark.parametrize(("command", "options"), HELP.items(), ids=lambda v: " ".join(v) or "-")
def test_every_command_has_help_naming_its_options(
    command: tuple[str, ...], options: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(" ".join(["usage: asgi-oauth", *command])), out
    text = " ".join(out.split())  # argparse wraps lines where it likes
    for option in options:
        assert option in text, (option, out)


@pytest.mark.parametrize(
    ("command", "says"), [(("tokens", "revoke"), "stdin"), (("users", "create"), "password")]
)
def test_a_commands_own_help_says_where_its_secret_input_comes_from(
    command: tuple[str, ...], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    usage = capsys.readouterr().out.partition("options:")[0]
    # Above the options: the description; "--password-stdin" alone does not count.
    assert says in usage.split("\n", 1)[1].lower().replace("--password-stdin", "")


@pytest.mark.parametrize("command", [["clients"], ["users"], ["tokens"]])
def test_a_group_without_an_action_is_a_usage_error(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(command)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: asgi-oauth {command[0]}") and "required" in err


@pytest.mark.slow
def test_the_command_without_a_command_prints_usage_and_exits_2(tmp_path: Path) -> None:
    bare = run(cwd=tmp_path)
    assert bare.code == 2 and bare.out == ""
    assert bare.err.startswith("usage: asgi-oauth") and "COMMAND" in bare.err
    # The installed script is the same command.
    script = Path(sys.executable).parent / "asgi-oauth"
    if script.exists():
        helped = subprocess.run(
            [str(script), "--help"], capture_output=True, text=True, env=clean_env(), check=False
        )
        assert helped.returncode == 0 and "serve" in helped.stdout
    assert list(tmp_path.iterdir()) == []  # neither prints nor opens a database


# -- serve ---------------------------------------------------------------------------


@pytest.mark.slow
def test_serve_demo_runs_a_working_server_on_sqlite(tmp_path: Path) -> None:
    db, port = tmp_path / "asgi_oauth.db", free_port()
    with serve(db, port, tmp_path / "first.out"):
        printed = (tmp_path / "first.out").read_text()
        secret = re.search(r"demo client_secret: (\S+)", printed)
        assert secret is not None, printed
        assert f"http://127.0.0.1:{port}/.well-known/oauth-authorization-server" in printed
        base = f"http://127.0.0.1:{port}"
        response = httpx.post(
            base + "/token",
            data={"grant_type": "client_credentials"},
            auth=("demo-client", secret.group(1)),
        )
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
    # A second start keeps the client (its secret is never shown again) and the token.
    with serve(db, port, tmp_path / "second.out"):
        printed = (tmp_path / "second.out").read_text()
        assert "exists" in printed and secret.group(1) not in printed
        info = httpx.post(
            base + "/introspect", data={"token": token}, auth=("demo-client", secret.group(1))
        )
        assert info.json()["active"] is True


def demo_credentials(printed: str) -> tuple[str, str]:
    """The demo client's secret and the demo user's password, as ``serve --demo`` printed them."""
    secret = re.search(r"^demo client_secret: (\S+)  \(shown once\)$", printed, re.M)
    password = re.search(r"^demo user: +demo / (\S+)  \(shown once\)$", printed, re.M)
    assert secret is not None and password is not None, printed
    return secret.group(1), password.group(1)


def follow(response: httpx.Response) -> str:
    assert response.status_code == 303, (response.status_code, response.text)
    location: str = response.headers["location"]
    return location


def code_flow(base: str, password: str, redirect_uri: str, verifier: str) -> dict[str, Any]:
    """A person signs in as ``demo`` and approves ``demo-app``; the app redeems the code."""
    state = secrets.token_urlsafe(8)
    params = {
        "response_type": "code",
        "client_id": "demo-app",
        "redirect_uri": redirect_uri,
        "scope": "read",
        "state": state,
        "code_challenge": s256_challenge(verifier),
        "code_challenge_method": "S256",
    }
    with httpx.Client(base_url=base) as browser:
        to_login = follow(browser.get("/authorize", params=params))
        assert urlsplit(to_login).path == "/login", to_login
        login = parse_page(browser.get(to_login).text).form
        wrong = browser.post(
            login.action, data={**login.fields, "username": "demo", "password": "x"}
        )
        assert wrong.status_code == 400 and "invalid username or password" in wrong.text
        login = parse_page(wrong.text).form
        signed_in = browser.post(
            login.action, data={**login.fields, "username": "demo", "password": password}
        )
        consent = browser.get(follow(signed_in))
        assert consent.status_code == 200, consent.text
        page = parse_page(consent.text)
        assert page.title == "Authorize access" and "Demo app" in page.text
        approved = browser.post(page.form.action, data={**page.form.fields, "decision": "approve"})
        back = follow(approved)
    assert back.startswith(redirect_uri + "?"), back
    answer = query_of(back)
    assert answer["state"] == state and answer["iss"] == base
    token = httpx.post(
        base + "/token",
        data={
            "grant_type": "authorization_code",
            "client_id": "demo-app",
            "code": answer["code"],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )
    assert token.status_code == 200, token.text
    body: dict[str, Any] = token.json()
    body["code"] = answer["code"]
    return body


@pytest.mark.slow
def test_serve_demo_user_and_public_client_complete_a_pkce_flow(tmp_path: Path) -> None:
    port = free_port()
    base, db = f"http://127.0.0.1:{port}", f"sqlite:///{tmp_path / 'demo.db'}"
    args = ["--demo", "--insecure-transport", "--db", db]
    with serving(args, port=port, cwd=tmp_path, out=tmp_path / "first.out"):
        printed = (tmp_path / "first.out").read_text()
        secret, password = demo_credentials(printed)
        assert "demo public client: demo-app" in printed
        assert f"demo API: {base}/api/demo" in printed
        # Any port on the loopback redirect URI (RFC 8252 §7.3).
        verifier = secrets.token_urlsafe(48)
        tokens = code_flow(base, password, f"http://127.0.0.1:{free_port()}/callback", verifier)
        assert tokens["scope"] == "read" and tokens["token_type"] == "Bearer"

        api = httpx.get(
            base + "/api/demo", headers={"Authorization": "Bearer " + tokens["access_token"]}
        )
        assert api.status_code == 200, api.text
        (demo_user,) = run("users", "list", "--json", "--db", db, cwd=tmp_path).json()
        assert api.json()["sub"] == demo_user["user_id"] and api.json()["scope"] == ["read"]

        anonymous = httpx.get(base + "/api/demo")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        forged = httpx.get(base + "/api/demo", headers={"Authorization": "Bearer not-a-token"})
        assert (
            forged.status_code == 401
            and 'error="invalid_token"' in forged.headers["www-authenticate"]
        )
    printed = (tmp_path / "first.out").read_text()
    # The credentials were printed once; nothing the flow sent or received was.
    assert printed.count(secret) == 1 and printed.count(password) == 1
    for value in (verifier, tokens["code"], tokens["access_token"], tokens["refresh_token"]):
        assert value not in printed

    with serving(args, port=port, cwd=tmp_path, out=tmp_path / "second.out"):
        again = (tmp_path / "second.out").read_text()
        assert "demo client 'demo-client' exists" in again
        assert secret not in again and password not in again and "shown once" not in again
        # The same people and tokens, still working.
        api = httpx.get(
            base + "/api/demo", headers={"Authorization": "Bearer " + tokens["access_token"]}
        )
        assert api.status_code == 200
    listed = run("clients", "list", "--json", "--db", db, cwd=tmp_path).json()
    assert sorted(c["client_id"] for c in listed) == ["demo-app", "demo-client"]


def introspect(base: str, token: str, auth: tuple[str, str]) -> dict[str, Any]:
    response = httpx.post(base + "/introspect", data={"token": token}, auth=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.slow
def test_a_client_from_creation_to_a_revoked_token_that_stays_revoked(tmp_path: Path) -> None:
    """The issue's story, as a person types it."""
    db = f"sqlite:///{tmp_path / 'oauth.db'}"
    created = run(
        "clients", "create", "--name", "Billing", "--grant-type", "client_credentials",
        "--scope", "read", "--json", "--db", db, cwd=tmp_path,
    ).json()  # fmt: skip
    billing = (created["client_id"], created["client_secret"])
    api = run(
        "clients", "create", "--name", "Orders API", "--grant-type", "client_credentials",
        "--resource-server", "--json", "--db", db, cwd=tmp_path,
    ).json()  # fmt: skip
    assert api["is_resource_server"] is True
    resource_server = (api["client_id"], api["client_secret"])

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serving(
        ["--insecure-transport", "--db", db], port=port, cwd=tmp_path, out=tmp_path / "1.out"
    ):
        issued = httpx.post(
            base + "/token", data={"grant_type": "client_credentials"}, auth=billing
        )
        assert issued.status_code == 200, issued.text
        assert issued.json()["scope"] == "read"
        token = issued.json()["access_token"]

        listed = run("clients", "list", "--db", db, cwd=tmp_path)
        assert listed.code == 0
        header, *rows = listed.out.splitlines()
        assert header.split() == ["CLIENT_ID", "NAME", "TYPE", "GRANTS", "SCOPE"]
        assert any(row.startswith(billing[0] + " ") and "Billing" in row for row in rows), rows

        info = introspect(base, token, resource_server)
        assert info["active"] is True and info["client_id"] == billing[0]
        assert info["scope"] == "read"

        revoked = run("tokens", "revoke", "--db", db, cwd=tmp_path, stdin=token + "\n")
        assert revoked.code == 0, revoked
        assert revoked.out == f"revoked 1 token(s) of client {billing[0]}\n"
        assert token not in revoked.out + revoked.err
        assert introspect(base, token, resource_server) == {"active": False}
        assert introspect(base, token, billing) == {"active": False}

    with serving(
        ["--insecure-transport", "--db", db], port=port, cwd=tmp_path, out=tmp_path / "2.out"
    ):
        assert introspect(base, token, resource_server) == {"active": False}
        # The server works: the client still gets new tokens.
        fresh = httpx.post(base + "/token", data={"grant_type": "client_credentials"}, auth=billing)
        assert introspect(base, fresh.json()["access_token"], resource_server)["active"] is True
    for out in ("1.out", "2.out"):
        printed = (tmp_path / out).read_text()
        assert billing[1] not in printed and token not in printed


# -- settings: flags, then the environment, then defaults ------------------------------


@pytest.mark.slow
def test_serve_takes_issuer_and_database_from_the_environment_unless_flags_say(
    tmp_path: Path,
) -> None:
    port = free_port()
    at = f"http://127.0.0.1:{port}"
    env = clean_env(
        ASGI_OAUTH_ISSUER=f"http://localhost:{port}/auth",
        ASGI_OAUTH_INSECURE_TRANSPORT="1",
        ASGI_OAUTH_DATABASE_URL=f"sqlite:///{tmp_path / 'env.db'}",
    )
    with serving([], port=port, cwd=tmp_path, out=tmp_path / "env.out", env=env):
        metadata = httpx.get(at + "/.well-known/oauth-authorization-server/auth").json()
        assert metadata["issuer"] == f"http://localhost:{port}/auth"
        assert metadata["token_endpoint"] == f"http://localhost:{port}/auth/token"
        inside = httpx.get(at + "/auth/.well-known/oauth-authorization-server")
        assert inside.json() == metadata
    printed = (tmp_path / "env.out").read_text()
    assert (
        f"metadata: http://localhost:{port}/auth/.well-known/oauth-authorization-server" in printed
    )
    assert (tmp_path / "env.db").exists() and not (tmp_path / "asgi_oauth.db").exists()

    other = tmp_path / "flag.db"
    flags = ["--issuer", at, "--db", f"sqlite:///{other}"]
    with serving(flags, port=port, cwd=tmp_path, out=tmp_path / "flags.out", env=env):
        metadata = httpx.get(at + "/.well-known/oauth-authorization-server").json()
        assert metadata["issuer"] == at and metadata["token_endpoint"] == at + "/token"
    assert other.exists() and not (tmp_path / "asgi_oauth.db").exists()


def test_serve_refuses_an_http_issuer_without_insecure_transport(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ASGI_OAUTH_ISSUER", "http://localhost:8000")
    monkeypatch.delenv("ASGI_OAUTH_INSECURE_TRANSPORT", raising=False)
    assert main(["serve", "--db", str(tmp_path / "x.db")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("asgi-oauth: ") and "insecure_transport" in err
    assert list(tmp_path.iterdir()) == []


def test_readme_example_runs_as_written() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    example = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "Mount" in b)
    namespace: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), namespace)
    app = namespace["app"]
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]

    async def fetch() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="https://api.example.com") as c:
            return await c.get("/.well-known/oauth-authorization-server/oauth2")

    response = asyncio.run(fetch())
    assert response.json()["token_endpoint"] == "https://api.example.com/oauth2/token"


def test_serve_signs_people_in_through_the_providers_a_file_names(tmp_path: Path) -> None:
    providers = tmp_path / "providers.toml"
    providers.write_text(
        '[[provider]]\npreset = "github"\nclient_id = "abc"\nclient_secret_env = "GH_SECRET"\n'
    )
    port, out = free_port(), tmp_path / "out"
    args = ["--insecure-transport", "--db", str(tmp_path / "o.db")]
    env = {**clean_env(), "GH_SECRET": "from-the-environment", "PYTHONUNBUFFERED": "1"}
    with serving(
        [*args, "--upstream-providers", str(providers)], port=port, cwd=tmp_path, out=out, env=env
    ):
        page = httpx.get(f"http://127.0.0.1:{port}/login", timeout=10)
    assert "Sign in with GitHub" in page.text
    callback = f"http://127.0.0.1:{port}/upstream/github/callback"
    assert f"sign in with GitHub: its redirect URI is {callback}" in out.read_text()
    # A secret the file names but the environment lacks: one line, nothing written.
    missing = run("serve", *args, "--upstream-providers", str(providers), cwd=tmp_path)
    assert_one_line_error(missing, 2, "GH_SECRET is not set")


def test_serve_metrics_counts_what_it_served(tmp_path: Path) -> None:
    port, out = free_port(), tmp_path / "out"
    args = ["--insecure-transport", "--metrics", "--db", str(tmp_path / "o.db")]
    with serving(args, port=port, cwd=tmp_path, out=out):
        base = f"http://127.0.0.1:{port}"
        for _ in range(2):
            assert httpx.get(f"{base}/.well-known/oauth-authorization-server").status_code == 200
        refused = httpx.post(f"{base}/token", data={"grant_type": "client_credentials"})
        assert refused.status_code == 401
        scraped = httpx.get(f"{base}/metrics", timeout=10)
    assert scraped.status_code == 200
    lines = scraped.text.splitlines()
    ok = 'endpoint="/.well-known/oauth-authorization-server",grant_type="",outcome="ok"'
    assert f"asgi_oauth_requests_total{{{ok}}} 2.0" in lines
    bad = 'endpoint="/token",grant_type="client_credentials",outcome="invalid_client"'
    assert f"asgi_oauth_requests_total{{{bad}}} 1.0" in lines
