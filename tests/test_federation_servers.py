"""Signing in through upstream providers with real server processes on both sides.

Ours is an ``asgi_oauth`` under uvicorn; its people sign in through a second
``asgi_oauth`` process (an OpenID Connect provider) or a GitHub-shaped server. The
token this server issues afterwards speaks for the linked local user, and a code the
upstream issued to another client is refused by the upstream itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from asgi_oauth.pkce import s256_challenge
from tests.federation_servers import Federated, federated_servers, linked_user, off_loop
from tests.servers.process import API_ME, REDIRECT_URI, TOKEN
from tests.servers.upstreams import GitHubLike
from tests.upstream_helpers import serve_upstream
from tests.user_agent import Person

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


@pytest.fixture(scope="module")
def github() -> Iterator[GitHubLike]:
    with serve_upstream(GitHubLike()) as fake:
        yield fake


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, github: GitHubLike) -> Iterator[Federated]:
    with federated_servers(tmp_path_factory.mktemp("federation"), github) as running:
        yield running


class Authorization:
    def __init__(self, servers: Federated) -> None:
        self.ours = servers.ours
        self.client_id = self.ours.deployment.public_client_id
        self.verifier = secrets.token_urlsafe(48)
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "read",
            "state": "s",
            "code_challenge": s256_challenge(self.verifier),
            "code_challenge_method": "S256",
        }
        self.url = f"{self.ours.deployment.issuer}/authorize?{urlencode(query)}"

    async def token_subject(self, http: httpx.AsyncClient, location: str) -> str:
        """Exchange the code; who ``/api/me`` says the access token speaks for."""
        code = parse_qs(urlsplit(location).query)["code"][0]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": self.client_id,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": self.verifier,
        }
        tokens = await http.post(self.ours.url + TOKEN, data=form)
        assert tokens.status_code == 200, tokens.text
        bearer = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
        me = await http.get(self.ours.url + API_ME, headers=bearer)
        assert me.status_code == 200, me.text
        subject: str = me.json()["sub"]
        return subject


async def test_signing_in_through_another_asgi_oauth_links_the_person_by_subject(
    servers: Federated,
) -> None:
    request = Authorization(servers)
    async with httpx.AsyncClient(timeout=10) as http:
        person = Person(
            http,
            servers.username,
            servers.password,
            provider="Corp",
            elsewhere=(servers.upstream_origin,),
        )
        location = await person.authorize(request.url)
        assert location.startswith(REDIRECT_URI)
        # Ours, then the upstream's sign-in and consent, then ours: consent stays ours.
        assert person.pages == ["Sign in", "Sign in", "Authorize access", "Authorize access"]
        subject = await request.token_subject(http, location)
    upstream_issuer = servers.upstream.deployment.issuer
    ours = servers.ours.deployment
    assert linked_user(ours, upstream_issuer, servers.upstream_subject) == subject
    assert subject != servers.upstream_subject  # a local user of ours, not theirs


async def test_a_code_the_upstream_issued_to_another_client_is_refused(
    servers: Federated,
) -> None:
    ours = servers.ours.deployment
    foreign = off_loop(servers.upstream.deployment.create_code, secrets.token_urlsafe(48))
    async with httpx.AsyncClient(timeout=10) as http:
        start = await http.get(f"{ours.issuer}/upstream/corp?next=")
        assert start.status_code == 303
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        callback = f"{ours.issuer}/upstream/corp/callback?" + urlencode(
            {"code": foreign, "state": state, "iss": servers.upstream.deployment.issuer}
        )
        response = await http.get(callback)
    assert response.status_code == 502
    assert "refused the sign-in (invalid_grant)" in response.text


async def test_signing_in_through_a_github_shaped_server(
    servers: Federated, github: GitHubLike, tmp_path: Path
) -> None:
    request = Authorization(servers)
    async with httpx.AsyncClient(timeout=10) as http:
        person = Person(http, "-", "-", provider="GitHub", elsewhere=(github.base_url,))
        location = await person.authorize(request.url)
        subject = await request.token_subject(http, location)
    linked = linked_user(servers.ours.deployment, "https://github.com", str(github.person["id"]))
    assert linked == subject
