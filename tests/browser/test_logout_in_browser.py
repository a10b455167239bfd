"""Signing out at a client's request in Chromium against uvicorn (OpenID Connect
RP-Initiated Logout 1.0 §2): the person confirms, the session ends, and the browser
lands on the registered post-logout URI with ``state``, or on the "Signed out" page."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest

from asgi_oauth import AuthorizationServer
from asgi_oauth.pkce import s256_challenge
from tests.openid_helpers import KEK
from tests.servers.process import REDIRECT_URI, TOKEN, ServerProcess, deploy, run_on_store, serve

from .conftest import Tab, User, off_this_thread, path_of, sign_in

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The browser tests' server, an OpenID provider (it has a key-encryption key)."""
    directory = tmp_path_factory.mktemp("logout")
    deployment = dataclasses.replace(
        off_this_thread(lambda: deploy(directory)), key_encryption_key=KEK
    )
    with serve("uvicorn", deployment) as running:
        yield running


def relying_party(server: ServerProcess, tab: Tab) -> str:
    """A public OpenID client whose post-logout URI is this tab's loopback listener."""
    deployment = server.deployment

    async def register(s: AuthorizationServer) -> str:
        registered = await s.register_client(
            name="Relying party",
            redirect_uris=[REDIRECT_URI],
            scope=["openid"],
            public=True,
            post_logout_redirect_uris=[tab.redirect_uri],
        )
        client_id: str = registered.client.client_id
        return client_id

    return off_this_thread(lambda: run_on_store(deployment.db, deployment.issuer, register))


def authorization_url(server: ServerProcess, tab: Tab, client_id: str, verifier: str) -> str:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": tab.redirect_uri,
        "scope": "openid",
        "state": secrets.token_urlsafe(8),
        "code_challenge": s256_challenge(verifier),
        "code_challenge_method": "S256",
    }
    return f"{server.deployment.issuer}/authorize?{urlencode(query)}"


def signed_in_with_id_token(server: ServerProcess, tab: Tab, user: User, client_id: str) -> str:
    """Sign in and approve in the browser, redeem the code over HTTP: the ID token."""
    page = tab.page
    verifier = secrets.token_urlsafe(48)
    page.goto(authorization_url(server, tab, client_id, verifier))
    sign_in(page, user)
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(tab.redirect_uri + "?**")
    code = tab.arrival().params["code"]
    tab.arrivals.clear()
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": client_id,
        "redirect_uri": tab.redirect_uri,
        "code_verifier": verifier,
    }
    with httpx.Client(base_url=server.url, timeout=10) as http:
        tokens = http.post(TOKEN, data=form)
    assert tokens.status_code == 200, tokens.text
    id_token: str = tokens.json()["id_token"]
    return id_token


def asks_to_sign_in(server: ServerProcess, tab: Tab, client_id: str) -> bool:
    """Whether a new authorization request sends the person to the sign-in page."""
    tab.page.goto(authorization_url(server, tab, client_id, secrets.token_urlsafe(48)))
    return path_of(tab.page.url) == "/oauth2/login"


def test_signing_out_returns_to_the_registered_uri_with_state(
    server: ServerProcess, tab: Tab, user: User
) -> None:
    client_id = relying_party(server, tab)
    hint = signed_in_with_id_token(server, tab, user, client_id)
    page, state = tab.page, secrets.token_urlsafe(12)
    query = {"id_token_hint": hint, "post_logout_redirect_uri": tab.redirect_uri, "state": state}

    page.goto(f"{server.deployment.issuer}/logout?{urlencode(query)}")
    assert page.title() == "Sign out"
    assert "Relying party asks you to sign out" in page.locator("main").inner_text()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(tab.redirect_uri + "?**")

    arrival = tab.arrival()
    assert arrival.method == "GET" and arrival.params == {"state": state}
    assert asks_to_sign_in(server, tab, client_id)
    assert tab.csp_errors == []


def test_signing_out_without_a_uri_shows_the_signed_out_page(
    server: ServerProcess, tab: Tab, user: User
) -> None:
    client_id = relying_party(server, tab)
    hint = signed_in_with_id_token(server, tab, user, client_id)
    page = tab.page

    page.goto(f"{server.deployment.issuer}/logout?{urlencode({'id_token_hint': hint})}")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Signed out").wait_for()
    assert path_of(page.url) == "/oauth2/logout"
    assert tab.arrivals == []
    assert asks_to_sign_in(server, tab, client_id)
    assert tab.csp_errors == []


def test_an_unregistered_uri_is_an_error_page_and_no_one_is_signed_out(
    server: ServerProcess, tab: Tab, user: User
) -> None:
    client_id = relying_party(server, tab)
    hint = signed_in_with_id_token(server, tab, user, client_id)
    page = tab.page
    query = {"id_token_hint": hint, "post_logout_redirect_uri": tab.redirect_uri + "/elsewhere"}

    response = page.goto(f"{server.deployment.issuer}/logout?{urlencode(query)}")
    assert response is not None and response.status == 400
    assert path_of(page.url) == "/oauth2/logout"
    assert tab.arrivals == []
    assert not asks_to_sign_in(server, tab, client_id)
