"""The TypeScript MCP SDK's own OAuth client against ``examples/mcp_server.py`` under uvicorn.

``tests/node/mcp_client.mjs`` gives the SDK's ``Client`` and
``StreamableHTTPClientTransport`` an ``OAuthClientProvider`` and nothing but the MCP
URL; when the SDK sends the person to the authorization URL the test plays the person
(``Person``: sign in, approve) and hands the callback back. The script then finishes
the token request, calls ``whoami`` and prints what it got. Once the SDK registers
dynamically (RFC 7591); once it names the URL of a client ID metadata document,
served over https by the test, and registers nothing. The example's store tells
what happened.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from .https_helpers import DocumentHost
from .node_helpers import NodeTools, node_tools
from .test_examples import Example
from .test_mcp import (
    REDIRECT_URI,
    example_store,
    mcp_url,
    run_mcp_example,
)
from .user_agent import Person

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def tools() -> NodeTools:
    return node_tools()


@pytest.fixture(scope="module")
def example(
    tools: NodeTools, tmp_path_factory: pytest.TempPathFactory, documents: DocumentHost
) -> Iterator[Example]:
    with run_mcp_example(tmp_path_factory.mktemp("typescript"), documents) as running:
        yield running


@dataclass(frozen=True)
class SdkRun:
    """What the script printed at the end, and the authorization URLs it opened."""

    result: dict[str, Any]
    authorization_urls: list[str]

    @property
    def client_id(self) -> str:
        client_id: str = self.result["client"]["client_id"]
        return client_id

    @property
    def access_token(self) -> str:
        token: str = self.result["tokens"]["access_token"]
        return token

    def sent(self, method: str, url: str) -> int:
        """How many requests the SDK made to ``url`` with ``method``."""
        return sum((r["method"], r["url"]) == (method, url) for r in self.result["requests"])


async def run_sdk(
    tools: NodeTools, example: Example, client_metadata_url: str | None = None
) -> SdkRun:
    """``mcp_client.mjs`` against the example, with a person who approves."""
    command = [*tools.script("mcp_client.mjs"), mcp_url(example), REDIRECT_URI]
    command += [client_metadata_url] if client_metadata_url else []
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert process.stdin is not None and process.stdout is not None
    assert process.stderr is not None
    stderr = asyncio.ensure_future(process.stderr.read())  # drained as it comes
    authorization_urls: list[str] = []
    result: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as browser:
            person = Person(browser, "demo", example.password())
            while line := await asyncio.wait_for(process.stdout.readline(), TIMEOUT):
                message = json.loads(line)
                if "authorize" in message:
                    authorization_urls.append(message["authorize"])
                    callback = await person.authorize(message["authorize"])
                    process.stdin.write(callback.encode() + b"\n")
                    await process.stdin.drain()
                else:
                    result = message
        returncode = await asyncio.wait_for(process.wait(), TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    said = (await stderr).decode(errors="replace")
    assert returncode == 0, f"{result.get('error')}\n{said}"
    assert "whoami" in result, result
    return SdkRun(result, authorization_urls)


async def test_typescript_sdk_registers_authorizes_and_calls_a_tool(
    tools: NodeTools, example: Example
) -> None:
    url = mcp_url(example)

    run = await run_sdk(tools, example)

    # Registration (RFC 7591), once, then authorization with PKCE and the resource.
    assert run.sent("POST", f"{example.issuer}/register") == 1
    [authorization_url] = run.authorization_urls
    assert authorization_url.startswith(f"{example.issuer}/authorize?")
    query = parse_qs(urlsplit(authorization_url).query)
    assert query["client_id"] == [run.client_id]
    assert query["code_challenge_method"] == ["S256"]
    assert query["resource"] == [url]
    assert query["scope"] == ["mcp"]
    assert run.sent("POST", f"{example.issuer}/token") == 1

    async with example_store(example) as server:
        demo = await server.storage.get_user("demo")
        registered = await server.storage.get_client(run.client_id)
        token = await server.introspect_token(run.access_token)
    assert demo is not None
    assert registered is not None
    assert registered.registration_access_token_hash is not None  # registered dynamically
    assert registered.redirect_uris == (REDIRECT_URI,)
    assert token.active
    assert token.aud == (url,)
    assert token.client_id == run.client_id
    assert token.sub == demo.user_id
    assert run.result["whoami"] == {
        "subject": demo.user_id,
        "client_id": run.client_id,
        "scopes": ["mcp"],
    }


async def test_typescript_sdk_with_a_client_id_metadata_document_registers_nothing(
    tools: NodeTools, example: Example, documents: DocumentHost
) -> None:
    """Given ``clientMetadataUrl``, the SDK uses it as its ``client_id`` because the
    metadata says ``client_id_metadata_document_supported``; the server fetches it."""
    url = mcp_url(example)
    document_url = documents.publish(
        "typescript-sdk-client",
        client_name="TypeScript SDK test client",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    async with example_store(example) as server:
        clients_before = await server.storage.list_clients()

    run = await run_sdk(tools, example, document_url)

    assert run.sent("POST", f"{example.issuer}/register") == 0
    assert run.client_id == document_url
    [authorization_url] = run.authorization_urls
    query = parse_qs(urlsplit(authorization_url).query)
    assert query["client_id"] == [document_url]
    assert query["resource"] == [url]
    assert run.sent("POST", f"{example.issuer}/token") == 1
    assert documents.fetches(document_url) >= 1

    async with example_store(example) as server:
        demo = await server.storage.get_user("demo")
        assert await server.storage.get_client(document_url) is None
        assert await server.storage.list_clients() == clients_before
        token = await server.introspect_token(run.access_token)
    assert demo is not None
    assert token.active
    assert token.client_id == document_url
    assert token.aud == (url,)
    assert token.sub == demo.user_id
    assert run.result["whoami"] == {
        "subject": demo.user_id,
        "client_id": document_url,
        "scopes": ["mcp"],
    }
