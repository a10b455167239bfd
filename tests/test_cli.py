"""The ``asgi-oauth`` command, run as the README's first command runs it."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from asgi_oauth.cli import main
from asgi_oauth.storage import MemoryStorage, SQLiteStorage, open_storage

REPO_ROOT = Path(__file__).resolve().parent.parent


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
    assert main(["serve", "--db", str(junk), "--insecure-transport"]) == 2
    assert "asgi-oauth: " in capsys.readouterr().err
    assert junk.read_bytes() == b"this is not a database" * 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(db: Path, port: int, out: Path) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "asgi_oauth", "serve", "--demo", "--insecure-transport"]
    with out.open("wb") as stdout:
        process = subprocess.Popen(
            [*command, "--port", str(port), "--db", f"sqlite:///{db}"],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            env={"PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin"},
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
