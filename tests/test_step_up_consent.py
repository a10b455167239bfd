"""Step-up authorization (MCP "Step-Up Authorization Flow"): a client that asks again
with more scopes gets a consent page for just the new ones.

Driven through HTTP by a ``Person`` on the built-in pages: the page lists what is
new as asked for and what was allowed before apart, as already allowed;
approving remembers the union, so the earlier grant is not lost; a request for
no more than was allowed goes straight back to the client; and every token
carries the scopes its own request asked for, never the remembered union.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html import unescape
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from asgi_oauth import AuthorizationServer, Settings, User
from asgi_oauth.app import OAuth2App

from .browser_helpers import (
    AUTHORIZE,
    CHALLENGE,
    PASSWORD,
    VERIFIER,
    exchange,
    mounted,
    parse_page,
)
from .conftest import ISSUER, REDIRECT_URI, Credentials
from .user_agent import Decision, Person

pytestmark = pytest.mark.anyio

DESCRIPTIONS = {"read": "Read your files", "write": "Change your files", "admin": "Run it all"}


@pytest.fixture
def settings() -> Settings:
    return Settings(issuer=ISSUER, scope_descriptions=DESCRIPTIONS)


@pytest.fixture
async def alice(server: AuthorizationServer) -> User:
    return await server.create_user("alice", PASSWORD)


@pytest.fixture
async def app(server: AuthorizationServer) -> Credentials:
    """A public client at an https redirect URI, whose consent can be remembered."""
    registered = await server.register_client(
        name="Files app",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token"],
        scope=["read", "write", "admin"],
        public=True,
    )
    return Credentials(registered.client.client_id, None)


class Browser:
    """Alice at her browser, and every page she was shown."""

    def __init__(self, http: httpx.AsyncClient, app: Credentials, username: str) -> None:
        self.http = http
        self.app = app
        self.person = Person(http, username, PASSWORD)
        self.html: list[str] = []

    async def seen(self, response: httpx.Response) -> None:
        if response.headers.get("content-type", "").startswith("text/html"):
            await response.aread()
            self.html.append(response.text)

    async def authorize(self, scope: str, decision: Decision = "approve") -> dict[str, str]:
        """One authorization request for ``scope``: what came back to the client."""
        self.html.clear()
        query = {
            "client_id": self.app.client_id,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": scope,
            "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
        }
        location = await self.person.authorize(f"{AUTHORIZE}?{urlencode(query)}", decision)
        assert location.startswith(REDIRECT_URI + "?"), location
        return dict(parse_qsl(urlsplit(location).query))

    async def token_scope(self, answer: dict[str, str]) -> str:
        response = await exchange(
            self.http,
            answer["code"],
            client_id=self.app.client_id,
            redirect_uri=REDIRECT_URI,
            verifier=VERIFIER,
        )
        assert response.status_code == 200, response.text
        scope: str = response.json()["scope"]
        return scope

    def consent(self) -> str:
        """The one consent page of the last request."""
        pages = [html for html in self.html if parse_page(html).title == "Authorize access"]
        assert len(pages) == 1, [parse_page(html).title for html in self.html]
        return pages[0]


def listed(html: str, heading: str) -> list[str]:
    """The items of the list that follows the paragraph ``heading`` on a page."""
    found = re.search(rf"<p>{re.escape(heading)}</p><ul>(.*?)</ul>", html)
    if found is None:
        return []
    return [
        unescape(re.sub("<[^>]+>", "", item)) for item in re.findall(r"<li>(.*?)</li>", found[1])
    ]


ASKED, ALLOWED = "It asks to:", "You already allowed it to:"


@asynccontextmanager
async def at_a_browser(
    oauth_app: OAuth2App, app: Credentials, username: str
) -> AsyncIterator[Browser]:
    async with mounted(oauth_app) as http:
        browser = Browser(http, app, username)
        http.event_hooks["response"].append(browser.seen)
        yield browser


@pytest.fixture
async def alice_at_her_browser(
    oauth_app: OAuth2App, app: Credentials, alice: User
) -> AsyncIterator[Browser]:
    async with at_a_browser(oauth_app, app, "alice") as browser:
        yield browser


async def test_a_step_up_asks_for_the_new_scopes_and_shows_the_old_as_allowed(
    alice_at_her_browser: Browser, server: AuthorizationServer, alice: User, app: Credentials
) -> None:
    browser = alice_at_her_browser
    first = await browser.authorize("read")
    assert listed(browser.consent(), ASKED) == ["Read your files"]
    assert listed(browser.consent(), ALLOWED) == []
    assert await browser.token_scope(first) == "read"

    more = await browser.authorize("read write")
    page = browser.consent()
    assert listed(page, ASKED) == ["Change your files"]
    assert listed(page, ALLOWED) == ["Read your files"]
    assert await browser.token_scope(more) == "read write"
    remembered = await server.storage.get_consent(alice.user_id, app.client_id)
    assert remembered == frozenset({"read", "write"})


async def test_approving_only_the_new_scope_keeps_the_earlier_grant(
    alice_at_her_browser: Browser, server: AuthorizationServer, alice: User, app: Credentials
) -> None:
    """A client that steps up asking for the new scope alone: the token has what it asked
    for, and what the person allowed before is still remembered."""
    browser = alice_at_her_browser
    await browser.authorize("read")
    only_write = await browser.authorize("write")
    assert listed(browser.consent(), ASKED) == ["Change your files"]
    assert await browser.token_scope(only_write) == "write"
    remembered = await server.storage.get_consent(alice.user_id, app.client_id)
    assert remembered == frozenset({"read", "write"})

    again = await browser.authorize("read write")
    assert browser.html == []  # no page at all: straight back to the client
    assert await browser.token_scope(again) == "read write"


@pytest.mark.parametrize("scope", ["read", "write", "read write"])
async def test_asking_for_no_more_than_was_allowed_needs_no_consent(
    alice_at_her_browser: Browser, scope: str
) -> None:
    browser = alice_at_her_browser
    await browser.authorize("read write")
    answer = await browser.authorize(scope)
    assert browser.html == []
    # The token has what this request asked for, not everything allowed before.
    assert await browser.token_scope(answer) == scope


async def test_denying_a_step_up_keeps_the_earlier_grant(
    alice_at_her_browser: Browser, server: AuthorizationServer, alice: User, app: Credentials
) -> None:
    browser = alice_at_her_browser
    await browser.authorize("read")
    denied = await browser.authorize("read admin", decision="deny")
    assert denied["error"] == "access_denied"
    assert listed(browser.consent(), ASKED) == ["Run it all"]
    assert await server.storage.get_consent(alice.user_id, app.client_id) == frozenset({"read"})
    still = await browser.authorize("read")
    assert browser.html == []
    assert await browser.token_scope(still) == "read"


async def test_asked_again_for_what_was_allowed_the_page_says_nothing_is_new(
    alice_at_her_browser: Browser,
) -> None:
    """``prompt=consent`` shows the page though nothing is new: nothing is listed as asked."""
    browser = alice_at_her_browser
    await browser.authorize("read write")
    browser.html.clear()
    query = {
        "client_id": browser.app.client_id,
        "response_type": "code",
        "scope": "read",
        "prompt": "consent",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    await browser.person.authorize(f"{AUTHORIZE}?{urlencode(query)}")
    page = browser.consent()
    assert "It asks for nothing new." in page
    assert listed(page, ASKED) == []
    assert listed(page, ALLOWED) == ["Read your files"]


async def test_a_step_up_for_another_person_or_client_starts_from_nothing(
    oauth_app: OAuth2App,
    server: AuthorizationServer,
    alice_at_her_browser: Browser,
    app: Credentials,
) -> None:
    """What alice allowed is hers, for this client: bob is asked for everything."""
    await alice_at_her_browser.authorize("read")
    await server.create_user("bob", PASSWORD)
    async with at_a_browser(oauth_app, app, "bob") as bob:
        await bob.authorize("read write")
    assert listed(bob.consent(), ASKED) == ["Read your files", "Change your files"]
    assert listed(bob.consent(), ALLOWED) == []
