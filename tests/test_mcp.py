"""The Model Context Protocol profile, end to end: ``examples/mcp_server.py`` under
uvicorn and the ``mcp`` package's own client, over real HTTP.

The client is given the MCP endpoint's URL and nothing else. It follows the 401
challenge to the protected resource metadata (RFC 9728), reads the authorization
server's metadata (RFC 8414), registers itself (RFC 7591) or names the URL of its
client ID metadata document (served over https by the test, ``tests/https_helpers.py``),
sends a ``Person`` through sign-in and consent with PKCE and ``resource`` (RFC 8707),
and calls the tools. The tests then look at the example's store for what was
registered and what the token is for.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest

pytest.importorskip("mcp")

import httpx
import httpx2
from mcp.client import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.requests import OAuthRequest
from asgi_oauth.storage import SQLiteStorage

from .https_helpers import DocumentHost
from .test_examples import Example, free_port, run_example
from .user_agent import Person

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

#: A loopback redirect URI (RFC 8252 §7.3): the person's browser stops there.
REDIRECT_URI = "http://127.0.0.1/callback"
#: Another resource server the authorization server knows.
OTHER_RESOURCE = "https://other.example/api"
TIMEOUT = 30.0


@contextmanager
def run_mcp_example(directory: Path, documents: DocumentHost) -> Iterator[Example]:
    """``python -m examples.mcp_server`` on a fresh database in ``directory``, which
    fetches client ID metadata documents from ``documents`` (on loopback) too."""
    command = [sys.executable, "-m", "examples.mcp_server"]
    with run_example(
        "mcp_server",
        directory,
        free_port(),
        command,
        EXAMPLE_DB=str(directory / "example.db"),
        EXAMPLE_CIMD_PRIVATE_ADDRESSES="1",
        SSL_CERT_FILE=str(documents.ca_file),
    ) as running:
        yield running


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory, documents: DocumentHost) -> Iterator[Example]:
    with run_mcp_example(tmp_path_factory.mktemp("mcp"), documents) as running:
        yield running


def mcp_url(example: Example) -> str:
    return example.url + "/mcp"


@asynccontextmanager
async def example_store(example: Example) -> AsyncIterator[AuthorizationServer]:
    """The example's store, opened by this process, with a second resource configured."""
    database = example.stdout_path.parent / "example.db"
    server = AuthorizationServer(
        SQLiteStorage(str(database)),
        Settings(
            issuer=example.issuer,
            insecure_transport=True,
            scopes_supported=("mcp",),
            resources=(mcp_url(example), OTHER_RESOURCE),
        ),
    )
    try:
        yield server
    finally:
        await server.close()


@dataclass
class MemoryTokenStorage:
    """The client's ``TokenStorage``: what it registered as, and its tokens."""

    tokens: OAuthToken | None = None
    client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class Exchange(NamedTuple):
    """A request the client made, its form or JSON body, and the answer's status."""

    method: str
    url: str
    body: dict[str, Any]
    status: int


@dataclass
class McpUser:
    """An MCP client and the person at its browser, with what went over the wire."""

    example: Example
    person: Person
    storage: MemoryTokenStorage = field(default_factory=MemoryTokenStorage)
    #: Every request the client made, discovery and OAuth included.
    exchanges: list[Exchange] = field(default_factory=list)
    authorization_urls: list[str] = field(default_factory=list)
    _callback: str = ""

    async def redirect_handler(self, authorization_url: str) -> None:
        self.authorization_urls.append(authorization_url)
        self._callback = await self.person.authorize(authorization_url)

    async def callback_handler(self) -> AuthorizationCodeResult:
        assert self._callback.startswith(REDIRECT_URI + "?"), self._callback
        query = dict(parse_qsl(urlsplit(self._callback).query))
        return AuthorizationCodeResult(
            code=query["code"], state=query.get("state"), iss=query.get("iss")
        )

    async def _record(self, response: httpx2.Response) -> None:
        request, body = response.request, {}
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            body = dict(parse_qsl(request.content.decode()))
        elif content_type.startswith("application/json") and request.content:
            body = json.loads(request.content)
        self.exchanges.append(
            Exchange(request.method, str(request.url), body, response.status_code)
        )

    def sent(self, method: str, url: str) -> list[dict[str, Any]]:
        """The bodies of the requests sent to ``url`` with ``method``."""
        return [e.body for e in self.exchanges if (e.method, e.url) == (method, url)]

    @asynccontextmanager
    async def connect(self, client_metadata_url: str | None = None) -> AsyncIterator[Client]:
        """An MCP session with the example, authorized as the client's OAuth flow goes;
        identified by ``client_metadata_url`` where the server takes such documents."""
        provider = OAuthClientProvider(
            server_url=mcp_url(self.example),
            client_metadata=OAuthClientMetadata(
                client_name="MCP test client",
                redirect_uris=[AnyUrl(REDIRECT_URI)],
            ),
            storage=self.storage,
            redirect_handler=self.redirect_handler,
            callback_handler=self.callback_handler,
            client_metadata_url=client_metadata_url,
        )
        async with httpx2.AsyncClient(
            auth=provider,
            timeout=TIMEOUT,
            event_hooks={"response": [self._record]},
        ) as http:
            transport = streamable_http_client(mcp_url(self.example), http_client=http)
            async with Client(transport) as client:
                yield client


@asynccontextmanager
async def mcp_user(example: Example, password: str | None = None) -> AsyncIterator[McpUser]:
    async with httpx.AsyncClient(timeout=TIMEOUT) as browser:
        yield McpUser(example, Person(browser, "demo", password or example.password()))


async def whoami(client: Client) -> dict[str, Any]:
    result = await client.call_tool("whoami", {})
    assert not result.is_error, result
    assert isinstance(result.structured_content, dict), result
    return result.structured_content


async def test_mcp_client_discovers_registers_and_calls_a_tool(example: Example) -> None:
    url = mcp_url(example)
    async with mcp_user(example) as user, user.connect() as client:
        me = await whoami(client)
        added = await client.call_tool("add", {"a": 2, "b": 3})

    # Discovery: the challenge's metadata URL (RFC 9728 §5.1), then RFC 8414 §3.1.
    metadata = f"{example.url}/.well-known/oauth-protected-resource/mcp"
    server_metadata = f"{example.url}/.well-known/oauth-authorization-server/oauth2"
    assert user.exchanges[0][:2] == ("POST", url)
    assert user.exchanges[0].status == 401
    gets = [e.url for e in user.exchanges if e.method == "GET" and "/.well-known/" in e.url]
    assert gets[:2] == [metadata, server_metadata]
    # Registration (RFC 7591): once, at the endpoint the metadata named.
    [registration] = user.sent("POST", f"{example.issuer}/register")
    assert registration["redirect_uris"] == [REDIRECT_URI]
    assert user.storage.client_info is not None
    client_id = user.storage.client_info.client_id
    # Authorization: PKCE and the resource, as the person approved it.
    [authorization_url] = user.authorization_urls
    assert authorization_url.startswith(f"{example.issuer}/authorize?")
    query = parse_qs(urlsplit(authorization_url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["resource"] == [url]
    assert query["scope"] == ["mcp"]
    [token_request] = user.sent("POST", f"{example.issuer}/token")
    assert token_request["grant_type"] == "authorization_code"
    assert token_request["resource"] == url
    assert len(token_request["code_verifier"]) >= 43
    assert user.person.pages[-1] == "Authorize access", user.person.pages

    async with example_store(example) as server:
        demo = await server.storage.get_user("demo")
        registered = await server.storage.get_client(client_id)
        assert user.storage.tokens is not None
        token = await server.introspect_token(user.storage.tokens.access_token)
    assert demo is not None
    assert registered is not None
    assert registered.registration_access_token_hash is not None  # registered dynamically
    assert registered.redirect_uris == (REDIRECT_URI,)
    assert token.active
    assert token.aud == (url,)
    assert token.client_id == client_id
    assert token.sub == demo.user_id

    assert me == {"subject": demo.user_id, "client_id": client_id, "scopes": ["mcp"]}
    assert not added.is_error, added
    assert added.structured_content == {"result": 5}


async def test_mcp_client_with_a_client_id_metadata_document_registers_nothing(
    example: Example, documents: DocumentHost
) -> None:
    """draft-ietf-oauth-client-id-metadata-document: the client's ``client_id`` is the
    URL of its metadata, which the server fetches; nothing is registered."""
    url = mcp_url(example)
    document_url = documents.publish(
        "python-mcp-client",
        client_name="MCP test client",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    async with example_store(example) as server:
        clients_before = await server.storage.list_clients()

    async with mcp_user(example) as user, user.connect(client_metadata_url=document_url) as client:
        me = await whoami(client)

    assert not user.sent("POST", f"{example.issuer}/register")
    assert user.storage.client_info is not None
    assert user.storage.client_info.client_id == document_url
    [authorization_url] = user.authorization_urls
    query = parse_qs(urlsplit(authorization_url).query)
    assert query["client_id"] == [document_url]
    assert query["resource"] == [url]
    assert query["code_challenge_method"] == ["S256"]
    [token_request] = user.sent("POST", f"{example.issuer}/token")
    assert token_request["client_id"] == document_url
    assert "client_secret" not in token_request
    assert documents.fetches(document_url) >= 1
    assert user.person.pages[-1] == "Authorize access", user.person.pages

    async with example_store(example) as server:
        demo = await server.storage.get_user("demo")
        assert await server.storage.get_client(document_url) is None
        assert await server.storage.list_clients() == clients_before
        assert user.storage.tokens is not None
        token = await server.introspect_token(user.storage.tokens.access_token)
    assert demo is not None
    assert token.active
    assert token.client_id == document_url
    assert token.aud == (url,)
    assert token.sub == demo.user_id
    assert me == {"subject": demo.user_id, "client_id": document_url, "scopes": ["mcp"]}


async def test_example_fetches_no_document_from_loopback_unless_told(
    documents: DocumentHost, tmp_path: Path
) -> None:
    """Without ``EXAMPLE_CIMD_PRIVATE_ADDRESSES=1`` a document URL on loopback is refused
    before any request is made to it (draft §8.6: no fetch reaches a private address)."""
    document_url = documents.publish(
        "loopback-client",
        client_name="Loopback client",
        redirect_uris=[REDIRECT_URI],
        token_endpoint_auth_method="none",
    )
    command = [sys.executable, "-m", "examples.mcp_server"]
    with run_example(
        "mcp_server",
        tmp_path,
        free_port(),
        command,
        EXAMPLE_DB=str(tmp_path / "example.db"),
        SSL_CERT_FILE=str(documents.ca_file),
    ) as example:
        query = {
            "response_type": "code",
            "client_id": document_url,
            "redirect_uri": REDIRECT_URI,
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
            "resource": mcp_url(example),
        }
        async with httpx.AsyncClient(timeout=TIMEOUT) as browser:
            page = await browser.get(example.issuer + "/authorize", params=query)

    assert page.status_code == 400, page.text
    assert "location" not in page.headers  # an error page, never a redirect
    assert "private" in page.text
    assert documents.fetches(document_url) == 0


async def test_mcp_client_with_a_bad_token_is_challenged_and_authorizes_again(
    example: Example,
) -> None:
    async with mcp_user(example) as user:
        async with user.connect() as client:
            before = await whoami(client)
        assert user.storage.tokens is not None
        user.storage.tokens = user.storage.tokens.model_copy(update={"access_token": "not-valid"})
        user.exchanges.clear()

        async with user.connect() as client:
            again = await whoami(client)

    # The bad token was sent, refused with a challenge, and a new one obtained
    # under the same registration.
    refused = user.exchanges[0]
    assert (refused.method, refused.url, refused.status) == ("POST", mcp_url(example), 401)
    assert not user.sent("POST", f"{example.issuer}/register")
    assert len(user.authorization_urls) == 2
    assert len(user.sent("POST", f"{example.issuer}/token")) == 1
    assert user.storage.tokens is not None
    assert user.storage.tokens.access_token != "not-valid"
    assert again == before


async def test_mcp_endpoint_refuses_a_token_for_another_resource(example: Example) -> None:
    url = mcp_url(example)
    async with example_store(example) as server:
        registered = await server.register_client(
            name="Service", grant_types=["client_credentials"], scope=["mcp"]
        )
        assert registered.client_secret is not None
        client_id = registered.client.client_id
        basic = base64.b64encode(f"{client_id}:{registered.client_secret}".encode())

        async def token_for(resource: str) -> str:
            form = {"grant_type": "client_credentials", "scope": "mcp", "resource": resource}
            request = OAuthRequest(form=form, authorization=f"Basic {basic.decode()}")
            return (await server.token(request)).access_token

        other, ours = await token_for(OTHER_RESOURCE), await token_for(url)
        assert (await server.introspect_token(other)).aud == (OTHER_RESOURCE,)

    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "curl", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        refused = await http.post(
            url, json=initialize, headers={**headers, "Authorization": f"Bearer {other}"}
        )
        accepted = await http.post(
            url, json=initialize, headers={**headers, "Authorization": f"Bearer {ours}"}
        )

    assert refused.status_code == 401, refused.text
    challenge = refused.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge
    metadata = f"{example.url}/.well-known/oauth-protected-resource/mcp"
    assert f'resource_metadata="{metadata}"' in challenge
    assert accepted.status_code == 200, accepted.text


async def test_mcp_server_with_the_authorization_server_elsewhere(tmp_path: Path) -> None:
    """The docstring's second setup: ``asgi-oauth serve`` and the example asking it (RFC 7662)."""
    port, mcp_port = free_port(), free_port()
    database = tmp_path / "serve.db"
    command = [sys.executable, "-m", "asgi_oauth", "serve", "--demo", "--insecure-transport"]
    command += ["--port", str(port), "--db", str(database)]
    with run_example(
        "asgi_oauth_serve",
        tmp_path,
        port,
        command,
        mount="",
        ASGI_OAUTH_RESOURCES=f"http://127.0.0.1:{mcp_port}/mcp",
        ASGI_OAUTH_CLIENT_REGISTRATION="open",
        ASGI_OAUTH_SCOPES_SUPPORTED="mcp",
    ) as authorization_server:
        settings = Settings(issuer=authorization_server.issuer, insecure_transport=True)
        server = AuthorizationServer(SQLiteStorage(str(database)), settings)
        try:
            resource_server = await server.register_client(
                name="MCP server", grant_types=[], is_resource_server=True
            )
        finally:
            await server.close()
        assert resource_server.client_secret is not None
        with run_example(
            "mcp_server",
            tmp_path,
            mcp_port,
            [sys.executable, "-m", "examples.mcp_server"],
            EXAMPLE_AS_URL=authorization_server.issuer,
            EXAMPLE_CLIENT_ID=resource_server.client.client_id,
            EXAMPLE_CLIENT_SECRET=resource_server.client_secret,
        ) as example:
            password = authorization_server.password()
            async with mcp_user(example, password) as user, user.connect() as client:
                me = await whoami(client)

    registrations = [e.url for e in user.exchanges if e.url.endswith("/register")]
    assert registrations == [f"{authorization_server.issuer}/register"]
    assert user.storage.client_info is not None
    assert me["client_id"] == user.storage.client_info.client_id
    assert me["subject"] is not None
    assert me["scopes"] == ["mcp"]
