"""``examples/federation_mcp.py``: an MCP client gets a token through GitHub sign-in.

The example runs as its docstring says (``python -m examples.federation_mcp``), with
``EXAMPLE_GITHUB_URL`` pointing GitHub's endpoints at ``GitHubLike`` served on
loopback; the MCP client is the ``mcp`` package's, driven as in ``tests/test_mcp.py``,
and the person at its browser follows the redirects to the fake GitHub and back.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

pytest.importorskip("mcp")
pytest.importorskip("authlib")

import httpx

from .servers.upstreams import GitHubLike
from .test_examples import REPO_ROOT, Example, free_port, run_example
from .test_mcp import TIMEOUT, McpUser, whoami
from .upstream_helpers import serve_upstream
from .user_agent import Person

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

CLIENT_ID, CLIENT_SECRET = "gh-client", "gh-secret"


@pytest.fixture
def github_fake() -> Iterator[GitHubLike]:
    with serve_upstream(GitHubLike()) as fake:
        yield fake


@pytest.fixture
def example(tmp_path: Path, github_fake: GitHubLike) -> Iterator[Example]:
    """The example on a fresh database, its GitHub the fake, which knows its callback."""
    port = free_port()
    callback = f"http://127.0.0.1:{port}/oauth2/upstream/github/callback"
    github_fake.add_client(CLIENT_ID, CLIENT_SECRET, callback)
    with run_example(
        "federation_mcp",
        tmp_path,
        port,
        [sys.executable, "-m", "examples.federation_mcp"],
        EXAMPLE_DB=str(tmp_path / "example.db"),
        EXAMPLE_GITHUB_URL=github_fake.base_url,
        GITHUB_CLIENT_ID=CLIENT_ID,
        GITHUB_CLIENT_SECRET=CLIENT_SECRET,
    ) as running:
        yield running


async def test_mcp_client_gets_a_token_through_github_and_calls_whoami(
    example: Example, github_fake: GitHubLike
) -> None:
    async with httpx.AsyncClient(timeout=TIMEOUT) as browser:
        # No password: a password form would make this person fail.
        someone = Person(browser, "-", "-", provider="GitHub", elsewhere=(github_fake.base_url,))
        user = McpUser(example, someone)
        async with user.connect() as client:
            me = await whoami(client)

    # Straight to GitHub (no sign-in page), and back to this server's consent page.
    assert someone.pages == ["Authorize access"], someone.pages
    [sent] = github_fake.authorize_requests
    assert sent["client_id"] == CLIENT_ID
    assert sent["redirect_uri"] == f"{example.issuer}/upstream/github/callback"
    assert sent["code_challenge_method"] == "S256"
    # The MCP client's token is this server's, for the person GitHub said signed in.
    [authorization_url] = user.authorization_urls
    assert parse_qs(urlsplit(authorization_url).query)["resource"] == [example.url + "/mcp"]
    assert user.storage.client_info is not None
    assert me["client_id"] == user.storage.client_info.client_id
    assert me["username"] == "github:octocat"
    assert me["github_login"] == "octocat"
    assert me["scopes"] == ["mcp"]
    assert me["subject"]
    assert f"GitHub callback URL: {sent['redirect_uri']}" in example.stdout()


def test_example_refuses_to_start_without_github_credentials(tmp_path: Path) -> None:
    environment = {"PATH": "", "EXAMPLE_DB": str(tmp_path / "example.db")}
    done = subprocess.run(
        [sys.executable, "-m", "examples.federation_mcp"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert b"set GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET" in done.stderr
    assert b"Traceback" not in done.stderr
