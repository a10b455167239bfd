"""Signing in through an upstream provider in Chromium: ours and a second ``asgi_oauth``
process (the OpenID Connect provider) under uvicorn, the person clicking through both
servers' pages, and the client receiving a code whose token speaks for the linked user."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest

from asgi_oauth.pkce import s256_challenge
from tests.federation_servers import Federated, federated_servers, linked_user
from tests.servers.process import API_ME, TOKEN

from .conftest import Tab, User, path_of, sign_in

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federated]:
    directory = tmp_path_factory.mktemp("federation-browser")
    with federated_servers(directory) as running:
        yield running


def test_a_person_signs_in_upstream_approves_here_and_the_client_gets_a_code(
    servers: Federated, tab: Tab
) -> None:
    page, ours = tab.page, servers.ours.deployment
    verifier, state = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    query = {
        "response_type": "code",
        "client_id": ours.public_client_id,
        "redirect_uri": tab.redirect_uri,
        "scope": "read",
        "state": state,
        "code_challenge": s256_challenge(verifier),
        "code_challenge_method": "S256",
    }
    page.goto(f"{ours.issuer}/authorize?{urlencode(query)}")

    assert path_of(page.url) == "/oauth2/login"
    page.get_by_role("link", name="Sign in with Corp").click()
    # The upstream's own sign-in and consent, on its own origin.
    page.wait_for_url(servers.upstream_origin + "/oauth2/login?**")
    sign_in(page, User(servers.username, servers.password))
    page.get_by_role("heading", name="Authorize access").wait_for()
    assert "Our server wants to access your account" in page.locator("main").inner_text()
    page.get_by_role("button", name="Approve").click()

    # Back here: this server asks about its own client, whoever signed in upstream.
    page.wait_for_url(ours.issuer + "/authorize?**")
    page.get_by_role("heading", name="Authorize access").wait_for()
    text = page.locator("main").inner_text()
    assert "Native app wants to access your account" in text
    assert "signed in as corp:alice" in text
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(tab.redirect_uri + "?**")

    arrival = tab.arrival()
    assert arrival.params["state"] == state
    form = {
        "grant_type": "authorization_code",
        "code": arrival.params["code"],
        "client_id": ours.public_client_id,
        "redirect_uri": tab.redirect_uri,
        "code_verifier": verifier,
    }
    with httpx.Client(base_url=servers.ours.url, timeout=10) as http:
        tokens = http.post(TOKEN, data=form)
        assert tokens.status_code == 200, tokens.text
        bearer = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
        subject = http.get(API_ME, headers=bearer).json()["sub"]
    upstream_issuer = servers.upstream.deployment.issuer
    assert linked_user(ours, upstream_issuer, servers.upstream_subject) == subject
    assert tab.csp_errors == []
