"""Redirect URIs of the clients people use, by the kind of client (``application_type``).

RFC 8252 §7: a native app listens on a loopback port it picks at start-up (any
port matches, §7.3) or owns a private-use scheme (``cursor://``, ``vscode://``,
``com.example.app:/cb``, §7.1). OpenID Connect Registration §2: a ``web`` app
uses https. MCP SEP-837: clients should say which they are at registration; one
that does not is judged by its redirect URIs, so the MCP clients that register
``http://localhost:PORT/callback`` without it keep working. Whatever the kind, a
scheme the browser runs or reads itself is never a redirect target, and http
beyond loopback needs ``insecure_transport``. Checked on the rules and through
HTTP (registration, the authorization endpoint, the token endpoint), on the
memory and SQLite stores.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from asgi_oauth import AuthorizationServer, Settings, User
from asgi_oauth.clients import implied_application_type, validate_redirect_uri
from asgi_oauth.storage import Storage
from asgi_oauth.types import ApplicationType

from .browser_helpers import (
    CHALLENGE,
    PASSWORD,
    VERIFIER,
    approved,
    exchange,
    parse_page,
    query_of,
    redirect_target,
    start,
)
from .conftest import ISSUER, FakeClock

pytestmark = pytest.mark.anyio

REGISTER = ISSUER + "/register"
OPEN = Settings(issuer=ISSUER, client_registration="open", scopes_supported=("read",))
CURSOR = "cursor://anysphere.cursor-retrieval/oauth/user-abc/callback"
VSCODE = "vscode://vscode.github-authentication/did-authenticate"
REVERSE_DOMAIN = "com.example.app:/oauth2redirect"
#: What only a native app registers: loopback http and private-use schemes.
NATIVE_ONLY = [
    CURSOR,
    VSCODE,
    REVERSE_DOMAIN,
    "http://127.0.0.1/cb",
    "http://127.0.0.1:33418/cb",
    "http://[::1]:8080/cb",
    "http://localhost:6274/oauth/callback",
]
WEB = "https://app.example/cb"
#: Refused whatever the client says it is.
NEVER = [
    "javascript:alert(document.cookie)",
    "JavaScript://%0Aalert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "blob:https://app.example/0b6c1b5e",
    "about:blank",
    "filesystem:https://app.example/temporary/cb",
    "http://app.example/cb",
    "http://localhost.evil.example/cb",
    "http://127.0.0.1.evil.example/cb",
    "localhost:3000/callback",
    "127.0.0.1:3000/callback",
    "cursor:",
    "https:///cb",
    "http://127.0.0.1:99999/cb",
    "cursor://app/cb#fragment",
    "/cb",
]
KINDS: list[ApplicationType | None] = [None, "native", "web"]


@pytest.fixture
def settings() -> Settings:
    return OPEN


@pytest.fixture
async def server(
    store: Storage, settings: Settings, clock: FakeClock
) -> AsyncIterator[AuthorizationServer]:
    server = AuthorizationServer(store, settings, clock=clock)
    yield server
    await server.close()


@pytest.fixture
async def alice(server: AuthorizationServer) -> User:
    return await server.create_user("alice", PASSWORD)


async def register(http: httpx.AsyncClient, **document: Any) -> httpx.Response:
    return await http.post(REGISTER, json={"token_endpoint_auth_method": "none", **document})


def code_request(client_id: str, redirect_uri: str) -> dict[str, str]:
    return {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "state": "xyz",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }


async def code_at(http: httpx.AsyncClient, client_id: str, redirect_uri: str) -> str:
    """Alice approves; the code, which must come to exactly ``redirect_uri``."""
    location = redirect_target(
        await approved(http, "alice", **code_request(client_id, redirect_uri))
    )
    code = query_of(location)["code"]
    assert location == f"{redirect_uri}?" + urlencode({"code": code, "state": "xyz", "iss": ISSUER})
    return code


# -- the rules -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("uri", NEVER)
def test_dangerous_and_malformed_redirect_uris_are_refused_for_every_kind(
    uri: str, kind: ApplicationType | None
) -> None:
    with pytest.raises(ValueError, match=r"redirect URI|private-use"):
        validate_redirect_uri(uri, application_type=kind)


@pytest.mark.parametrize("uri", [*NATIVE_ONLY, WEB])
@pytest.mark.parametrize("kind", [None, "native"])
def test_a_native_app_may_use_loopback_private_use_schemes_and_https(
    uri: str, kind: ApplicationType | None
) -> None:
    assert validate_redirect_uri(uri, application_type=kind) == uri


@pytest.mark.parametrize("uri", NATIVE_ONLY)
def test_a_web_app_may_use_https_only(uri: str) -> None:
    assert validate_redirect_uri(WEB, application_type="web") == WEB
    with pytest.raises(ValueError, match="web application"):
        validate_redirect_uri(uri, application_type="web")


def test_insecure_transport_lets_a_web_app_use_http_but_no_private_use_scheme() -> None:
    for uri in ("http://localhost:3000/cb", "http://app.test/cb"):
        assert validate_redirect_uri(uri, application_type="web", insecure_transport=True) == uri
    with pytest.raises(ValueError, match="web application"):
        validate_redirect_uri(CURSOR, application_type="web", insecure_transport=True)
    with pytest.raises(ValueError, match="private-use"):
        validate_redirect_uri("javascript:alert(1)", insecure_transport=True)


@pytest.mark.parametrize(
    ("uris", "kind"),
    [
        (["http://localhost:33418/callback"], "native"),
        ([CURSOR], "native"),
        (["http://127.0.0.1:33418", "https://vscode.dev/redirect"], "native"),
        ([WEB], "web"),
        (["https://localhost/cb"], "web"),
        ([], "web"),
    ],
)
def test_an_omitted_application_type_is_implied_by_the_redirect_uris(
    uris: list[str], kind: ApplicationType
) -> None:
    assert implied_application_type(uris) == kind


# -- registration ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [None, "native"])
@pytest.mark.parametrize("uri", NEVER)
async def test_registration_refuses_dangerous_redirect_uris_and_stores_nothing(
    http: httpx.AsyncClient, server: AuthorizationServer, uri: str, kind: str | None
) -> None:
    extra = {} if kind is None else {"application_type": kind}
    response = await register(http, redirect_uris=[uri], **extra)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_redirect_uri"
    assert await server.storage.list_clients() == []


@pytest.mark.parametrize("uri", NATIVE_ONLY)
async def test_a_web_application_cannot_register_a_native_redirect_uri(
    http: httpx.AsyncClient, server: AuthorizationServer, uri: str
) -> None:
    response = await register(http, redirect_uris=[WEB, uri], application_type="web")
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_redirect_uri"
    assert "web application" in response.json()["error_description"]
    assert await server.storage.list_clients() == []


@pytest.mark.parametrize("value", ["desktop", "", "Native", 5, ["native"], {"web": True}])
async def test_an_unknown_application_type_is_invalid_client_metadata(
    http: httpx.AsyncClient, server: AuthorizationServer, value: object
) -> None:
    response = await register(http, redirect_uris=[WEB], application_type=value)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"
    assert "application_type" in response.json()["error_description"]
    assert await server.storage.list_clients() == []


@pytest.mark.parametrize(
    ("document", "kind"),
    [
        ({"redirect_uris": NATIVE_ONLY}, "native"),
        ({"redirect_uris": [*NATIVE_ONLY, WEB], "application_type": "native"}, "native"),
        ({"redirect_uris": [WEB]}, "web"),
        ({"redirect_uris": [WEB], "application_type": "native"}, "native"),
        ({"redirect_uris": [WEB], "application_type": None}, "web"),
    ],
)
async def test_registration_stores_and_returns_the_application_type(
    http: httpx.AsyncClient, server: AuthorizationServer, document: dict[str, Any], kind: str
) -> None:
    response = await register(http, **document)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["application_type"] == kind
    assert body["redirect_uris"] == document["redirect_uris"]
    stored = await server.storage.get_client(body["client_id"])
    assert stored is not None and stored.application_type == kind
    read = await http.get(
        body["registration_client_uri"],
        headers={"Authorization": f"Bearer {body['registration_access_token']}"},
    )
    assert read.json()["application_type"] == kind


async def test_an_update_is_checked_against_the_kind_it_asks_for(
    http: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    body = (await register(http, redirect_uris=["http://localhost:33418/callback"])).json()
    uri = body["registration_client_uri"]
    headers = {"Authorization": f"Bearer {body['registration_access_token']}"}
    document = {
        k: v
        for k, v in body.items()
        if k not in ("registration_access_token", "registration_client_uri", "client_id_issued_at")
    }
    refused = await http.put(uri, json={**document, "application_type": "web"}, headers=headers)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_redirect_uri"
    stored = await server.storage.get_client(body["client_id"])
    assert stored is not None and stored.application_type == "native"

    web = {**document, "application_type": "web", "redirect_uris": [WEB]}
    updated = await http.put(uri, json=web, headers=headers)
    assert updated.status_code == 200, updated.text
    assert updated.json()["application_type"] == "web"
    stored = await server.storage.get_client(body["client_id"])
    assert stored is not None and stored.application_type == "web"


@pytest.mark.parametrize(
    "settings",
    [Settings(issuer=ISSUER, client_registration="open", insecure_transport=True)],
)
async def test_insecure_transport_lets_a_web_app_register_loopback_only(
    http: httpx.AsyncClient,
) -> None:
    local = await register(http, redirect_uris=["http://localhost:3000/cb"], application_type="web")
    assert local.status_code == 201, local.text
    assert local.json()["application_type"] == "web"
    remote = await register(http, redirect_uris=["http://app.test/cb"], application_type="web")
    assert remote.status_code == 400 and remote.json()["error"] == "invalid_redirect_uri"


# -- the flow --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("registered", "requested"),
    [
        # Claude Code: localhost, a port of its own each session, no application_type.
        (["http://localhost:33418/callback"], "http://localhost:54021/callback"),
        (["http://localhost/callback"], "http://localhost:54021/callback"),
        # VS Code: a loopback root and its web redirect.
        (["http://127.0.0.1:33418", "https://vscode.dev/redirect"], "http://127.0.0.1:51000"),
        (["http://[::1]/cb"], "http://[::1]:51000/cb"),
        ([CURSOR], CURSOR),
        ([VSCODE], VSCODE),
        ([REVERSE_DOMAIN], REVERSE_DOMAIN),
    ],
)
async def test_a_dynamically_registered_native_client_completes_the_flow(
    http: httpx.AsyncClient, alice: User, registered: list[str], requested: str
) -> None:
    body = (await register(http, redirect_uris=registered, client_name="Agent")).json()
    assert body["application_type"] == "native"
    client_id = body["client_id"]
    code = await code_at(http, client_id, requested)
    # RFC 6749 §4.1.3: the token request names the very URI the code went to.
    if requested.startswith("http://"):
        other_port = requested.replace(":54021", ":54022").replace(":51000", ":51001")
        refused = await exchange(
            http, code, client_id=client_id, redirect_uri=other_port, verifier=VERIFIER
        )
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    token = await exchange(
        http, code, client_id=client_id, redirect_uri=requested, verifier=VERIFIER
    )
    assert token.status_code == 200, token.text


@pytest.mark.parametrize(
    "requested",
    [
        "http://127.0.0.1:54021/callback",  # localhost matches localhost only
        "http://localhost:54021/callback/",
        "http://localhost:54021/other",
        "https://localhost:54021/callback",
        "cursor://anysphere.cursor-retrieval/oauth/user-abc/callback/",
        "CURSOR://anysphere.cursor-retrieval/oauth/user-abc/callback",
    ],
)
async def test_a_native_client_gets_no_redirect_to_another_uri(
    http: httpx.AsyncClient, requested: str
) -> None:
    registered = ["http://localhost:33418/callback", CURSOR]
    client_id = (await register(http, redirect_uris=registered)).json()["client_id"]
    response = await start(http, **code_request(client_id, requested))
    assert response.status_code == 400 and "location" not in response.headers
    assert "redirect_uri is not registered" in parse_page(response.text).text


@pytest.mark.parametrize(
    "settings",
    [Settings(issuer=ISSUER, client_registration="open", insecure_transport=True)],
)
async def test_a_web_applications_loopback_uri_is_compared_whole(
    http: httpx.AsyncClient, alice: User
) -> None:
    """RFC 9700 §4.1.3: the port may vary for a native app's loopback URI only."""
    registered = "http://localhost:3000/cb"
    body = await register(http, redirect_uris=[registered], application_type="web")
    client_id = body.json()["client_id"]
    other_port = await start(http, **code_request(client_id, "http://localhost:4000/cb"))
    assert other_port.status_code == 400 and "location" not in other_port.headers
    code = await code_at(http, client_id, registered)
    token = await exchange(
        http, code, client_id=client_id, redirect_uri=registered, verifier=VERIFIER
    )
    assert token.status_code == 200, token.text


async def test_a_client_registered_by_the_operator_may_use_a_scheme_without_a_dot(
    http: httpx.AsyncClient, server: AuthorizationServer, alice: User
) -> None:
    """Before clients had a kind, a private-use scheme had to be a reverse domain name."""
    registered = await server.register_client(
        name="Cursor", redirect_uris=[CURSOR], public=True, scope=["read"]
    )
    assert registered.client.application_type is None
    code = await code_at(http, registered.client.client_id, CURSOR)
    token = await exchange(
        http, code, client_id=registered.client.client_id, redirect_uri=CURSOR, verifier=VERIFIER
    )
    assert token.status_code == 200, token.text
    with pytest.raises(ValueError, match="private-use"):
        await server.register_client(name="Evil", redirect_uris=["javascript:alert(1)"])
