"""The consent page says who is asking (MCP: the redirect URI's host name MUST be shown).

For a client read from a client ID metadata document: the host of its
``client_id`` URL, prominently; the host of this request's redirect URI; a
notice that it is not registered here; and a warning when every one of its
redirect URIs is on this computer. A dynamically registered client gets the
"not verified" notice and the redirect host. A client registered by the
operator keeps the page as it was. Everything shown is escaped, and the page
keeps its Content-Security-Policy.
"""

from __future__ import annotations

import re
from html import unescape

import httpx
import pytest

from asgi_oauth import AuthorizationServer, Settings, User
from asgi_oauth.app.pages import ConsentPage, Pages
from asgi_oauth.models import Client

from .browser_helpers import CHALLENGE, PASSWORD, consent_page, parse_page
from .conftest import ISSUER, REDIRECT_URI, Credentials
from .test_pages import assert_secure_page

pytestmark = pytest.mark.anyio

DOCUMENT_URL = "https://tools.example.com/oauth/client.json"
LOOPBACK = "http://127.0.0.1/callback"
WARNING = "this app runs on your computer. Approve only if you started it yourself."


@pytest.fixture
def settings() -> Settings:
    return Settings(issuer=ISSUER, client_registration="open", scopes_supported=("read", "write"))


@pytest.fixture
async def alice(server: AuthorizationServer) -> User:
    return await server.create_user("alice", PASSWORD)


async def document_client(
    server: AuthorizationServer, redirect_uris: tuple[str, ...], name: str = "Tools"
) -> Client:
    """A client as read from its metadata document, in the store until fetching lands."""
    client = Client(
        client_id=DOCUMENT_URL,
        name=name,
        redirect_uris=redirect_uris,
        scope=frozenset({"read", "write"}),
        metadata_document=True,
    )
    await server.storage.save_client(client)
    return client


def request(client_id: str, redirect_uri: str) -> dict[str, str]:
    return {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": "read",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }


def notice(response: httpx.Response) -> str:
    """The text of the page's notice about who is asking; empty without one."""
    found = re.search(r'<div class="notice">(.*?)</div>', response.text)
    return "" if found is None else " ".join(unescape(re.sub("<[^>]+>", " ", found[1])).split())


def hosts(response: httpx.Response) -> list[str]:
    """The host names shown prominently, in order."""
    return [unescape(h) for h in re.findall(r'<span class="host">(.*?)</span>', response.text)]


# -- client ID metadata documents ---------------------------------------------------


async def test_a_document_client_shows_its_host_the_redirect_host_and_a_local_warning(
    http: httpx.AsyncClient, server: AuthorizationServer, alice: User
) -> None:
    client = await document_client(server, (LOOPBACK, "http://localhost/callback"))
    page = await consent_page(http, "alice", **request(client.client_id, LOOPBACK))
    assert hosts(page) == ["tools.example.com", "127.0.0.1"]
    text = notice(page)
    assert "This app is not registered with this server." in text
    assert "Its name and details come from tools.example.com." in text
    assert WARNING in text
    assert "Tools wants to access your account" in parse_page(page.text).text


async def test_the_redirect_host_is_the_one_this_request_uses(
    http: httpx.AsyncClient, server: AuthorizationServer, alice: User
) -> None:
    client = await document_client(
        server, ("https://tools.example.com/cb", "https://callback.example.net/cb")
    )
    page = await consent_page(
        http, "alice", **request(client.client_id, "https://callback.example.net/cb")
    )
    assert hosts(page) == ["tools.example.com", "callback.example.net"]
    assert WARNING not in notice(page)  # it can reach a site, not only this computer


@pytest.mark.parametrize(
    "redirect_uris",
    [
        (LOOPBACK,),
        ("http://localhost/callback",),
        ("http://[::1]/callback",),
        ("cursor://tools/callback",),
        (LOOPBACK, "http://[::1]/callback", "vscode://tools/callback"),
    ],
    ids=["127.0.0.1", "localhost", "ipv6", "app-scheme", "all-local"],
)
async def test_only_local_redirect_uris_get_the_warning(
    http: httpx.AsyncClient,
    server: AuthorizationServer,
    alice: User,
    redirect_uris: tuple[str, ...],
) -> None:
    client = await document_client(server, redirect_uris)
    page = await consent_page(http, "alice", **request(client.client_id, redirect_uris[0]))
    assert WARNING in notice(page)


@pytest.mark.parametrize("elsewhere", ["https://tools.example.com/cb", "http://tools.example/cb"])
async def test_one_redirect_uri_elsewhere_among_local_ones_means_no_warning(
    http: httpx.AsyncClient, server: AuthorizationServer, alice: User, elsewhere: str
) -> None:
    client = await document_client(server, (LOOPBACK, elsewhere))
    page = await consent_page(http, "alice", **request(client.client_id, LOOPBACK))
    assert hosts(page) == ["tools.example.com", "127.0.0.1"]
    assert WARNING not in notice(page)


async def test_an_app_scheme_redirect_is_named_by_its_scheme(
    http: httpx.AsyncClient, server: AuthorizationServer, alice: User
) -> None:
    client = await document_client(server, ("cursor://anysphere.cursor/callback",))
    page = await consent_page(
        http, "alice", **request(client.client_id, "cursor://anysphere.cursor/callback")
    )
    assert hosts(page) == ["tools.example.com", "cursor:"]


async def test_a_name_that_poses_as_another_site_cannot_hide_the_real_host(
    http: httpx.AsyncClient, server: AuthorizationServer, alice: User
) -> None:
    """The document names itself; only the host it was fetched from is vouched for."""
    name = 'Bank <span class="host">bank.example</span> & "Co"'
    client = await document_client(server, (LOOPBACK,), name=name)
    page = await consent_page(http, "alice", **request(client.client_id, LOOPBACK))
    assert hosts(page) == ["tools.example.com", "127.0.0.1"]
    assert '<span class="host">bank' not in page.text
    assert name in parse_page(page.text).text
    assert_secure_page(page)


# -- dynamically registered clients ---------------------------------------------------


async def register(http: httpx.AsyncClient, redirect_uris: list[str]) -> str:
    response = await http.post(
        ISSUER + "/register",
        json={
            "client_name": "Self-made",
            "redirect_uris": redirect_uris,
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        },
    )
    assert response.status_code == 201, response.text
    client_id: str = response.json()["client_id"]
    return client_id


async def test_a_dynamically_registered_client_is_not_verified(
    http: httpx.AsyncClient, alice: User
) -> None:
    client_id = await register(http, [REDIRECT_URI])
    page = await consent_page(http, "alice", **request(client_id, REDIRECT_URI))
    assert hosts(page) == ["app.example"]
    text = notice(page)
    assert "This app registered itself with this server: its name is not verified." in text
    assert "After you decide, your browser is sent to app.example" in text
    assert WARNING not in text
    assert_secure_page(page)


async def test_a_dynamically_registered_local_app_gets_the_warning_too(
    http: httpx.AsyncClient, alice: User
) -> None:
    client_id = await register(http, [LOOPBACK])
    page = await consent_page(
        http, "alice", **request(client_id, "http://127.0.0.1:49152/callback")
    )
    assert hosts(page) == ["127.0.0.1"]
    assert WARNING in notice(page)


# -- clients the operator registered ---------------------------------------------------


async def test_a_registered_client_keeps_the_page_as_it_was(
    http: httpx.AsyncClient, server: AuthorizationServer, alice: User
) -> None:
    registered = await server.register_client(
        name="Native", redirect_uris=[LOOPBACK], scope=["read"], public=True
    )
    client = Credentials(registered.client.client_id, None)
    page = await consent_page(http, "alice", **request(client.client_id, LOOPBACK))
    assert notice(page) == ""
    assert hosts(page) == []
    assert "not registered" not in page.text and "127.0.0.1" not in parse_page(page.text).text


# -- the page object, rendered directly ------------------------------------------------


def test_every_shown_value_is_escaped() -> None:
    evil = "<script>alert(1)</script>"
    html = Pages().consent(
        ConsentPage(
            action=ISSUER + "/authorize",
            csrf_token="t",
            client_name=evil,
            user_name=evil,
            scopes=((evil, evil),),
            allowed=(("read", evil),),
            client_kind="metadata_document",
            client_host=evil,
            redirect_host=evil,
            local_only=True,
        )
    )
    assert "<script>" not in html
    assert html.count("&lt;script&gt;") == 7  # name, user, scope, allowed, host x2, redirect
