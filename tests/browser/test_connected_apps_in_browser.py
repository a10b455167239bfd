"""The connected applications page in Chromium against uvicorn: a person approves two
clients, opens ``/oauth2/account`` and revokes one, whose tokens the server's own
``/api`` middleware refuses at once while the other client's keep working."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.servers.process import API_ME, TOKEN, ServerProcess

from .conftest import Tab, User, path_of, sign_in
from .test_authorization_in_browser import Authorization, consent_page

pytestmark = pytest.mark.slow


def approve(tab: Tab, request: Authorization, secret: str | None = None) -> dict[str, Any]:
    """Approve on the consent page, remembered where it is offered (the box is checked
    by default), and exchange the code: the token response."""
    page = tab.page
    arrived = len(tab.arrivals)
    page.goto(request.url)
    consent_page(page)
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(tab.redirect_uri + "?**")
    assert len(tab.arrivals) == arrived + 1
    exchanged = request.exchange(tab.arrivals[-1].params["code"], secret)
    assert exchanged.status_code == 200, exchanged.text
    tokens: dict[str, Any] = exchanged.json()
    return tokens


def api_me(server: ServerProcess, access_token: str) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        return http.get(API_ME, headers={"Authorization": f"Bearer {access_token}"})


def test_revoking_an_app_ends_its_tokens_at_once_and_only_its(
    server: ServerProcess, tab: Tab, user: User
) -> None:
    page, deployment = tab.page, server.deployment
    web = Authorization(server, tab, deployment.client.client_id)
    native = Authorization(server, tab, deployment.public_client_id)
    page.goto(f"{deployment.issuer}/account")
    assert path_of(page.url) == "/oauth2/login"
    sign_in(page, user)
    page.get_by_role("heading", name="Connected applications").wait_for()
    assert "No application has access to your account" in page.locator("main").inner_text()

    web_tokens = approve(tab, web, deployment.client.secret)
    native_tokens = approve(tab, native)
    # Each works at the API, so the middleware in the server's process has cached them.
    assert api_me(server, web_tokens["access_token"]).status_code == 200
    assert api_me(server, native_tokens["access_token"]).status_code == 200

    page.goto(f"{deployment.issuer}/account")
    # The confidential client's consent is kept; a native app is asked every time
    # (RFC 8252 §8.6), and is listed by the live tokens it holds.
    assert page.get_by_role("heading", name="app", exact=True).is_visible()
    assert page.get_by_role("heading", name="Native app", exact=True).is_visible()
    text = page.locator("main").inner_text()
    assert "127.0.0.1" in text and "Read your data" in text and " UTC" in text
    page.get_by_role("button", name="Revoke app", exact=True).click()

    page.wait_for_url("**/oauth2/account?revoked=*")
    assert page.get_by_role("status").inner_text() == "app no longer has access to your account."
    assert page.get_by_role("button", name="Revoke app", exact=True).count() == 0
    assert page.get_by_role("button", name="Revoke Native app", exact=True).is_visible()

    refused = api_me(server, web_tokens["access_token"])
    assert refused.status_code == 401, refused.text
    assert api_me(server, native_tokens["access_token"]).status_code == 200
    with httpx.Client(base_url=server.url, timeout=10) as http:
        refresh = http.post(
            TOKEN,
            data={"grant_type": "refresh_token", "refresh_token": web_tokens["refresh_token"]},
            auth=(deployment.client.client_id, deployment.client.secret),
        )
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    assert tab.csp_errors == []
