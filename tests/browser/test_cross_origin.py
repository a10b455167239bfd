"""A browser-based MCP client on another origin, in Chromium, against
``examples/mcp_server.py`` under uvicorn: CORS enforced by a real browser.

The client's page is served from ``http://localhost:<port>`` and the example runs
on ``http://127.0.0.1:<port>``: two origins, so every ``fetch`` the page makes to
the example is a cross-origin request that Chromium lets the page read only when
the answers say so (Fetch standard). The page does what a browser MCP client does:
its first call to ``/mcp`` gets a 401 whose challenge it reads, it fetches the
protected resource metadata (RFC 9728) and the authorization server's (RFC 8414),
registers itself (RFC 7591), and sends the person (played by the test, on our
pages) to authorize with PKCE and ``resource``; back on its own origin it
exchanges the code at ``/token`` and calls the MCP endpoint with the token.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.test_examples import Example, free_port, run_example

from .conftest import LoopbackSite, PageHandler, Tab, User, sign_in

pytest.importorskip("mcp")

pytestmark = pytest.mark.slow

#: The MCP revision the page speaks: the newest reached by the initialize handshake.
PROTOCOL_VERSION = "2025-11-25"

#: The browser client, all of it: every function returns what the test checks.
SCRIPT = """
const INITIALIZE = {
  jsonrpc: "2.0", id: 1, method: "initialize",
  params: {protocolVersion: VERSION, capabilities: {},
           clientInfo: {name: "browser page", version: "1.0"}},
};

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
}

// RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path.
function wellKnown(url, name) {
  const parsed = new URL(url);
  const path = parsed.pathname === "/" ? "" : parsed.pathname;
  return `${parsed.origin}/.well-known/${name}${path}`;
}

async function rpc(url, message, headers) {
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      "Accept": "application/json, text/event-stream",
      "MCP-Protocol-Version": VERSION,
      ...headers,
    },
    body: JSON.stringify(message),
  });
  const text = await response.text();
  let body = null;
  if ((response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
    const data = text.split("\\n").filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(5).trim()).filter(Boolean);
    body = data.length ? JSON.parse(data[data.length - 1]) : null;
  } else if (text) {
    body = JSON.parse(text);
  }
  return {
    status: response.status,
    wwwAuthenticate: response.headers.get("WWW-Authenticate"),
    sessionId: response.headers.get("Mcp-Session-Id"),
    body,
  };
}

async function startAuthorization(mcpUrl) {
  const challenge = await rpc(mcpUrl, INITIALIZE, {});
  const metadataUrl = /resource_metadata="([^"]+)"/.exec(challenge.wwwAuthenticate)[1];
  const discovery = {headers: {"MCP-Protocol-Version": VERSION}};
  const resource = await (await fetch(metadataUrl, discovery)).json();
  const issuer = resource.authorization_servers[0];
  const metadataResponse = await fetch(wellKnown(issuer, "oauth-authorization-server"), discovery);
  const server = await metadataResponse.json();
  const redirectUri = location.origin + "/callback";
  const registration = await fetch(server.registration_endpoint, {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({
      client_name: "Browser MCP client",
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
      scope: "mcp",
    }),
  });
  const client = await registration.json();
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  const state = base64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem("flow", JSON.stringify({
    mcpUrl, redirectUri, verifier, state,
    tokenEndpoint: server.token_endpoint, clientId: client.client_id,
  }));
  const query = new URLSearchParams({
    response_type: "code", client_id: client.client_id, redirect_uri: redirectUri,
    scope: "mcp", state, code_challenge: base64url(digest), code_challenge_method: "S256",
    resource: mcpUrl,
  });
  return {
    challenge: {status: challenge.status, wwwAuthenticate: challenge.wwwAuthenticate},
    resource,
    server: {status: metadataResponse.status, issuer: server.issuer},
    registration: {status: registration.status, client_id: client.client_id},
    authorizeUrl: `${server.authorization_endpoint}?${query}`,
  };
}

async function finishAuthorization() {
  const flow = JSON.parse(sessionStorage.getItem("flow"));
  const params = new URLSearchParams(location.search);
  if (params.get("state") !== flow.state) throw new Error("another state came back");
  const exchange = await fetch(flow.tokenEndpoint, {
    method: "POST",
    body: new URLSearchParams({
      grant_type: "authorization_code", code: params.get("code"),
      redirect_uri: flow.redirectUri, client_id: flow.clientId,
      code_verifier: flow.verifier, resource: flow.mcpUrl,
    }),
  });
  const token = await exchange.json();
  const bearer = {"Authorization": `Bearer ${token.access_token}`};
  const initialize = await rpc(flow.mcpUrl, INITIALIZE, bearer);
  const session = {...bearer, "Mcp-Session-Id": initialize.sessionId};
  const initialized = await rpc(
    flow.mcpUrl, {jsonrpc: "2.0", method: "notifications/initialized"}, session);
  const whoami = await rpc(flow.mcpUrl, {
    jsonrpc: "2.0", id: 2, method: "tools/call", params: {name: "whoami", arguments: {}},
  }, session);
  return {
    clientId: flow.clientId,
    token: {status: exchange.status, token_type: token.token_type, scope: token.scope},
    initialize, initialized: initialized.status, whoami,
  };
}

// What the page may read of an answer, or how the browser refused to let it.
async function tryFetch(url, options) {
  try {
    const response = await fetch(url, options);
    return {status: response.status};
  } catch (error) {
    return {error: `${error.name}: ${error.message}`};
  }
}
"""

PAGE = (
    "<!doctype html><meta charset=utf-8><title>Browser MCP client</title>"
    f"<p>A client in the browser.<script>const VERSION = {json.dumps(PROTOCOL_VERSION)};"
    f"{SCRIPT}</script>"
).encode()


class ClientSite(LoopbackSite):
    """The browser client's own site, reached as ``http://localhost:<port>``: another
    origin than the example's ``http://127.0.0.1:<port>``. Every path is its page."""

    def __init__(self) -> None:
        class Handler(PageHandler):
            def do_GET(self) -> None:
                self.send_page(PAGE)

        super().__init__(Handler)
        self.origin = f"http://localhost:{self.port}"


@pytest.fixture(scope="module")
def client_site() -> Iterator[ClientSite]:
    site = ClientSite()
    yield site
    site.close()


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory, client_site: ClientSite) -> Iterator[Example]:
    """The example, told (for the ``mcp`` package's Origin check) about the page's origin."""
    directory = tmp_path_factory.mktemp("cross-origin")
    command = [sys.executable, "-m", "examples.mcp_server"]
    with run_example(
        "mcp_server",
        directory,
        free_port(),
        command,
        EXAMPLE_DB=str(directory / "example.db"),
        EXAMPLE_ALLOWED_ORIGINS=client_site.origin,
    ) as running:
        yield running


def open_client(tab: Tab, client_site: ClientSite) -> None:
    tab.page.goto(client_site.origin + "/")
    assert tab.page.evaluate("location.origin") == client_site.origin


def test_a_page_on_another_origin_discovers_registers_and_calls_the_mcp_endpoint(
    tab: Tab, example: Example, client_site: ClientSite
) -> None:
    mcp_url = example.url + "/mcp"
    page = tab.page
    open_client(tab, client_site)
    started: dict[str, Any] = page.evaluate("url => startAuthorization(url)", mcp_url)
    # The 401 and its challenge are readable: the client learns where to go from them.
    assert started["challenge"]["status"] == 401
    assert started["challenge"]["wwwAuthenticate"].startswith("Bearer ")
    assert started["resource"]["resource"] == mcp_url
    assert started["server"] == {"status": 200, "issuer": example.issuer}
    assert started["registration"]["status"] == 201
    assert started["registration"]["client_id"]

    page.goto(started["authorizeUrl"])
    sign_in(page, User("demo", example.password()))
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"{client_site.origin}/callback?**")

    finished: dict[str, Any] = page.evaluate("finishAuthorization()")
    assert finished["token"] == {"status": 200, "token_type": "Bearer", "scope": "mcp"}
    initialize = finished["initialize"]
    assert initialize["status"] == 200, initialize
    assert initialize["body"]["result"]["protocolVersion"] == PROTOCOL_VERSION
    assert initialize["body"]["result"]["serverInfo"]["name"] == "asgi-oauth example"
    # Exposed, so the page can send it back; the later calls only work with it.
    assert initialize["sessionId"]
    assert finished["initialized"] == 202
    whoami = finished["whoami"]
    assert whoami["status"] == 200, whoami
    called = whoami["body"]["result"]
    assert called["isError"] is False, called
    assert called["structuredContent"]["client_id"] == finished["clientId"]
    assert called["structuredContent"]["scopes"] == ["mcp"]


def test_the_browser_refuses_the_page_what_is_not_offered_to_it(
    tab: Tab, example: Example, client_site: ClientSite
) -> None:
    """The control: the same page is refused where no CORS is answered (introspection
    is for resource servers; the pages people see are same-origin), so the successes
    above are the browser's verdict, not the test's."""
    open_client(tab, client_site)
    for url, options in [
        (
            example.issuer + "/introspect",
            "{method: 'POST', body: new URLSearchParams({token: 'x'})}",
        ),
        (example.issuer + "/login", "{}"),
    ]:
        refused = tab.page.evaluate(f"url => tryFetch(url, {options})", url)
        assert refused.get("error", "").startswith("TypeError"), (url, refused)
    metadata = example.url + "/.well-known/oauth-authorization-server/oauth2"
    assert tab.page.evaluate("url => tryFetch(url, {})", metadata) == {"status": 200}
