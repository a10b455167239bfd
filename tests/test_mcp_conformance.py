"""The official MCP conformance suite's authorization-server scenarios against
``examples/mcp_server.py`` under uvicorn.

``@modelcontextprotocol/conformance`` (``tests/node/``, ``scripts/node-setup``) reads
the server's metadata (RFC 8414) and runs an authorization code grant with PKCE and
``resource`` (RFC 8707): it prints the authorization URL and waits for its own
loopback callback, so the test plays the person (``Person``: sign in, approve) and
takes the browser to that callback. The suite runs twice: with a client registered
dynamically (RFC 7591), and with the URL of a client ID metadata document as the
``client_id``. Every check must pass, and none may warn.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from .https_helpers import DocumentHost
from .node_helpers import NodeTools, node_tools
from .test_examples import Example, free_port
from .test_mcp import example_store, run_mcp_example
from .user_agent import Person

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

#: Each step of the suite (metadata, the person's round trip, the token request).
TIMEOUT = 30.0
#: The scenarios the suite's ``authorization`` command runs, in its order.
SCENARIOS = ("authorization-server-metadata-endpoint", "authorization-code-grant")


@pytest.fixture(scope="module")
def tools() -> NodeTools:
    return node_tools()


@pytest.fixture(scope="module")
def example(
    tools: NodeTools, tmp_path_factory: pytest.TempPathFactory, documents: DocumentHost
) -> Iterator[Example]:
    with run_mcp_example(tmp_path_factory.mktemp("conformance"), documents) as running:
        yield running


@dataclass(frozen=True)
class SuiteRun:
    """What the suite printed, its exit status, and its checks per scenario."""

    returncode: int
    output: str
    checks: dict[str, list[dict[str, Any]]]
    #: Where the person's browser was sent back to: the suite's callback.
    callbacks: list[str]

    def statuses(self) -> dict[str, str]:
        return {check["id"]: check["status"] for checks in self.checks.values() for check in checks}

    def not_passed(self) -> list[dict[str, Any]]:
        """Every check that did not pass: failures, warnings, skips, with their messages."""
        return [
            check
            for checks in self.checks.values()
            for check in checks
            if check["status"] != "SUCCESS"
        ]


def redirect_uri(port: int) -> str:
    """The suite's callback, which the client must have among its redirect URIs."""
    return f"http://127.0.0.1:{port}/callback"


async def run_suite(
    tools: NodeTools, example: Example, client_id: str, port: int, output_dir: Path
) -> SuiteRun:
    """``conformance authorization`` for ``client_id``, with a person who approves."""
    command = [*tools.conformance, "authorization", "--url", example.issuer]
    command += ["--client-id", client_id, "--resource", example.url + "/mcp"]
    command += ["--port", str(port), "--output-dir", str(output_dir)]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert process.stdout is not None
    lines: list[str] = []
    callbacks: list[str] = []
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as browser:
            person = Person(browser, "demo", example.password())
            while line := await asyncio.wait_for(process.stdout.readline(), TIMEOUT):
                text = line.decode(errors="replace").rstrip()
                lines.append(text)
                if text.startswith(f"{example.issuer}/authorize?"):
                    callback = await person.authorize(text)
                    callbacks.append(callback)
                    # The browser follows the redirect to the suite's loopback server.
                    arrived = await browser.get(callback)
                    assert arrived.status_code == 200, arrived.text
        returncode = await asyncio.wait_for(process.wait(), TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return SuiteRun(returncode, "\n".join(lines), read_checks(output_dir), callbacks)


def read_checks(output_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """The checks the suite saved, by scenario (``--output-dir``: one folder per scenario)."""
    checks: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(output_dir.glob("authorization-server-*/checks.json")):
        [scenario] = [
            name
            for name in SCENARIOS
            if path.parent.name.startswith(f"authorization-server-{name}-")
        ]
        checks[scenario] = json.loads(path.read_text())
    return checks


async def register(example: Example, redirect_uri: str) -> str:
    """A public client registered as MCP clients do (RFC 7591), for the suite to use."""
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        response = await http.post(
            example.issuer + "/register",
            json={
                "client_name": "MCP conformance suite",
                "redirect_uris": [redirect_uri],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            },
        )
    assert response.status_code == 201, response.text
    client_id: str = response.json()["client_id"]
    return client_id


def assert_passed(run: SuiteRun, example: Example) -> None:
    """Every scenario ran, every check passed and none warned; one callback, with ``iss``."""
    assert set(run.checks) == set(SCENARIOS), run.output
    assert run.not_passed() == [], run.output
    assert run.returncode == 0, run.output
    [callback] = run.callbacks
    query = dict(parse_qsl(urlsplit(callback).query))
    assert set(query) == {"code", "state", "iss"}, callback
    assert query["iss"] == example.issuer  # RFC 9207


async def test_suite_passes_with_a_dynamically_registered_client(
    tools: NodeTools, example: Example, tmp_path: Path
) -> None:
    port = free_port()
    client_id = await register(example, redirect_uri(port))

    run = await run_suite(tools, example, client_id, port, tmp_path)

    assert_passed(run, example)
    statuses = run.statuses()
    assert statuses["authorization-server-metadata"] == "SUCCESS"
    # The metadata names client ID metadata document support: no warning about it.
    assert statuses["authorization-server-metadata-cimd"] == "SUCCESS"
    assert statuses["authorization-code-grant"] == "SUCCESS"


async def test_suite_passes_with_a_client_id_metadata_document(
    tools: NodeTools, example: Example, documents: DocumentHost, tmp_path: Path
) -> None:
    """The suite's ``client_id`` is the URL of a document the server fetches: a public
    client that nobody registered (draft-ietf-oauth-client-id-metadata-document)."""
    port = free_port()
    document_url = documents.publish(
        "conformance-suite",
        client_name="MCP conformance suite",
        redirect_uris=[redirect_uri(port)],
        grant_types=["authorization_code"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    async with example_store(example) as server:
        clients_before = await server.storage.list_clients()

    run = await run_suite(tools, example, document_url, port, tmp_path)

    assert_passed(run, example)
    assert documents.fetches(document_url) >= 1
    async with example_store(example) as server:
        demo = await server.storage.get_user("demo")
        assert demo is not None
        assert await server.storage.get_client(document_url) is None
        assert await server.storage.list_clients() == clients_before
        # The person approved the document's client, known by its URL: a native app (its
        # redirect URI is on loopback) is asked each time, so no consent is kept
        # (RFC 8252 §8.6), and its tokens are what the connected applications page lists.
        assert await server.storage.get_consent(demo.user_id, document_url) is None
        grants = await server.storage.list_grants(demo.user_id, now=int(time.time()))
        ours = [g.scope for g in grants if g.client_id == document_url]
        assert ours == [frozenset({"mcp"})]
