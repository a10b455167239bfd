"""The authorization code flow in Chromium against uvicorn: sign-in, consent, the
redirect (query and form_post) and the code exchanged over HTTP (RFC 6749 §4.1,
RFC 7636, RFC 9207, OAuth 2.0 Form Post Response Mode)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import httpx
import pytest

from asgi_oauth.pkce import s256_challenge
from tests.servers.process import TOKEN, ServerProcess

from .conftest import PHONE, NewTab, Tab, User, assert_fits_a_phone, path_of, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

#: The consent page's look comes from its nonce'd stylesheet: this is its body background.
STYLED_BACKGROUND = "rgb(244, 245, 247)"


class Authorization:
    """One authorization request of a client, with its PKCE verifier and state."""

    def __init__(self, server: ServerProcess, tab: Tab, client_id: str, **params: str) -> None:
        self.server = server
        self.client_id = client_id
        self.redirect_uri = tab.redirect_uri
        self.verifier = secrets.token_urlsafe(48)
        self.state = secrets.token_urlsafe(16)
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "read",
            "state": self.state,
            "code_challenge": s256_challenge(self.verifier),
            "code_challenge_method": "S256",
            **params,
        }
        self.url = f"{server.deployment.issuer}/authorize?{urlencode(query)}"

    def exchange(self, code: str, secret: str | None = None) -> httpx.Response:
        """The token request: the PKCE verifier, and the client's secret if it has one."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self.verifier,
        }
        if secret is not None:
            form["client_secret"] = secret
        with httpx.Client(base_url=self.server.url, timeout=10) as http:
            return http.post(TOKEN, data=form)


def public(server: ServerProcess, tab: Tab, **params: str) -> Authorization:
    return Authorization(server, tab, server.deployment.public_client_id, **params)


def consent_page(page: Page) -> str:
    """The consent page's text, once the browser shows it."""
    page.get_by_role("heading", name="Authorize access").wait_for()
    assert path_of(page.url) == "/oauth2/authorize"
    return page.locator("main").inner_text()


def client_named(page: Page) -> str:
    """The client the consent page names."""
    return page.locator("main p strong").inner_text()


def test_public_client_signs_in_consents_and_exchanges_the_code(
    server: ServerProcess, tab: Tab, user: User
) -> None:
    page, issuer = tab.page, server.deployment.issuer
    request = public(server, tab)

    page.goto(request.url)

    assert path_of(page.url) == "/oauth2/login"
    assert page.title() == "Sign in"
    username, password = page.get_by_label("Username"), page.get_by_label("Password")
    assert username.evaluate("input => input === document.activeElement")
    assert password.get_attribute("type") == "password"
    sign_in(page, user)

    text = consent_page(page)
    assert client_named(page) == "Native app"
    assert "Native app wants to access your account" in text
    assert f"signed in as {user.username}" in text
    assert "Read your data" in text
    assert "Change your data" not in text
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(tab.redirect_uri + "?**")

    arrival = tab.arrival()
    assert arrival.method == "GET"
    assert arrival.params.keys() == {"code", "state", "iss"}
    assert arrival.params["state"] == request.state
    assert arrival.params["iss"] == issuer
    exchanged = request.exchange(arrival.params["code"])
    assert exchanged.status_code == 200, exchanged.text
    tokens = exchanged.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "read"
    assert tokens["access_token"]
    assert tokens["refresh_token"]
    assert tab.csp_errors == []


def test_confidential_client_denied_gets_access_denied_and_state(
    server: ServerProcess, tab: Tab, user: User
) -> None:
    page, deployment = tab.page, server.deployment
    request = Authorization(server, tab, deployment.client.client_id, scope="read write")

    page.goto(request.url)
    sign_in(page, user)
    text = consent_page(page)
    assert client_named(page) == "app"
    assert "Read your data" in text
    assert "Change your data" in text
    page.get_by_role("button", name="Deny").click()
    page.wait_for_url(tab.redirect_uri + "?**")

    params = tab.arrival().params
    assert params["error"] == "access_denied"
    assert params["state"] == request.state
    assert params["iss"] == deployment.issuer
    assert "code" not in params
    assert tab.csp_errors == []


def test_form_post_page_posts_itself_under_the_csp(
    server: ServerProcess, tab: Tab, user: User
) -> None:
    page = tab.page
    request = public(server, tab, response_mode="form_post")

    page.goto(request.url)
    sign_in(page, user)
    consent_page(page)
    # The nonce'd stylesheet applied: the CSP did not block it.
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == STYLED_BACKGROUND
    page.get_by_role("button", name="Approve").click()
    # Only the nonce'd script can have submitted the form to the client.
    page.wait_for_url(tab.redirect_uri)

    arrival = tab.arrival()
    assert arrival.method == "POST"
    assert arrival.url == tab.redirect_uri
    assert arrival.params.keys() == {"code", "state", "iss"}
    assert arrival.params["state"] == request.state
    assert arrival.params["iss"] == server.deployment.issuer
    exchanged = request.exchange(arrival.params["code"])
    assert exchanged.status_code == 200, exchanged.text
    assert tab.csp_errors == []


def test_csp_errors_are_noticed(tab: Tab) -> None:
    """The check the other tests rely on: a blocked style and script are reported."""
    page = tab.page
    page.route(
        "http://127.0.0.1/strict",
        lambda route: route.fulfill(
            content_type="text/html",
            headers={"Content-Security-Policy": "default-src 'none'"},
            body="<!doctype html><style>p{color:red}</style><script>1</script><p>Blocked",
        ),
    )

    page.goto("http://127.0.0.1/strict")
    page.wait_for_function("document.readyState === 'complete'")
    page.wait_for_timeout(200)

    assert any("inline style" in e for e in tab.csp_errors), tab.csp_errors
    assert any("inline script" in e for e in tab.csp_errors), tab.csp_errors


def test_wrong_password_shows_an_error_then_the_right_one_continues(
    server: ServerProcess, tab: Tab, user: User
) -> None:
    page = tab.page
    request = public(server, tab)
    page.goto(request.url)

    sign_in(page, User(user.username, "not the password"))

    alert = page.get_by_role("alert")
    assert alert.inner_text() == "invalid username or password"
    assert path_of(page.url) == "/oauth2/login"
    assert page.title() == "Sign in"
    assert page.get_by_label("Username").input_value() == user.username
    assert page.get_by_label("Password").input_value() == ""

    page.get_by_label("Password").press_sequentially(user.password)
    page.get_by_role("button", name="Sign in").click()
    consent_page(page)
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(tab.redirect_uri + "?**")
    assert tab.arrival().params["state"] == request.state


def confidential(server: ServerProcess, tab: Tab, **params: str) -> Authorization:
    return Authorization(server, tab, server.deployment.client.client_id, **params)


def test_remembered_consent_skips_the_pages_until_more_is_asked(
    server: ServerProcess, tab: Tab, user: User
) -> None:
    # A confidential client: a public one on a loopback redirect URI is asked every
    # time (RFC 8252 §8.6), which the HTTP tests check.
    page = tab.page
    page.goto(confidential(server, tab).url)
    sign_in(page, user)
    consent_page(page)
    assert page.get_by_label("Remember this decision").is_checked()
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(tab.redirect_uri + "?**")

    again = confidential(server, tab)
    response = page.goto(again.url)

    # One redirect from the authorization endpoint straight to the client: no page shown.
    assert response is not None
    assert response.url.startswith(tab.redirect_uri + "?")
    first = response.request.redirected_from
    assert first is not None
    assert first.url == again.url
    assert first.redirected_from is None
    arrival = tab.arrivals[-1]
    assert arrival.params["state"] == again.state
    exchanged = again.exchange(arrival.params["code"], server.deployment.client.secret)
    assert exchanged.status_code == 200, exchanged.text

    # A scope not consented to before asks again.
    page.goto(confidential(server, tab, scope="read write").url)
    assert "Change your data" in consent_page(page)


def test_pages_fit_a_phone(server: ServerProcess, new_tab: NewTab, user: User) -> None:
    tab = new_tab(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = tab.page

    page.goto(public(server, tab).url)
    assert_fits_a_phone(page, "Sign in")
    sign_in(page, user)
    consent_page(page)
    assert_fits_a_phone(page, "Approve")
    assert_fits_a_phone(page, "Deny")
    page.get_by_role("button", name="Approve").tap()
    page.wait_for_url(tab.redirect_uri + "?**")
    assert tab.csp_errors == []
