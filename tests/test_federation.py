"""Signing in through upstream providers, against fake upstreams served over real HTTP.

The authorization server runs in-process (a SQLite file and the memory store); the
GitHub-shaped and OpenID Connect upstreams are real uvicorn servers on loopback, so
every message between the two crosses HTTP. The browser is ``tests.user_agent.Person``
with one cookie jar for both sides.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.federation import FederationPolicy, UpstreamIdentity, UpstreamProvider, github
from asgi_oauth.pkce import s256_challenge
from asgi_oauth.storage import MemoryStorage, SQLiteStorage, Storage
from tests.servers.upstreams import DELETE, FakeOpenIDProvider, GitHubLike
from tests.upstream_helpers import serve_upstream
from tests.user_agent import Page, Person

pytestmark = pytest.mark.anyio

ISSUER = "http://as.test/oauth2"
CLIENT_CALLBACK = "https://client.example/cb"
VERIFIER = "v" * 64


@pytest.fixture
def github_fake() -> Iterator[GitHubLike]:
    fake = GitHubLike()
    fake.add_client("gh-client", "gh-secret", f"{ISSUER}/upstream/github/callback")
    with serve_upstream(fake) as served:
        yield served


@pytest.fixture
def op_fake() -> Iterator[FakeOpenIDProvider]:
    fake = FakeOpenIDProvider()
    fake.add_client("op-client", "op-secret", f"{ISSUER}/upstream/corp/callback")
    with serve_upstream(fake) as served:
        yield served


def github_provider(fake: GitHubLike, **more: Any) -> UpstreamProvider:
    base = fake.base_url
    return github(
        "gh-client",
        "gh-secret",
        authorization_endpoint=f"{base}/login/oauth/authorize",
        token_endpoint=f"{base}/login/oauth/access_token",
        userinfo_endpoint=f"{base}/user",
        emails_endpoint=f"{base}/user/emails",
        organizations_endpoint=f"{base}/user/orgs",
        **more,
    )


def oidc_provider(fake: FakeOpenIDProvider, **more: Any) -> UpstreamProvider:
    values: dict[str, Any] = {
        "id": "corp",
        "name": "Corp",
        "client_id": "op-client",
        "client_secret": "op-secret",
        "issuer": fake.issuer,
    }
    values.update(more)
    return UpstreamProvider(**values)


class Deployment:
    """The server, its app and a browser whose requests to the issuer stay in-process."""

    def __init__(self, server: AuthorizationServer, host: Starlette) -> None:
        self.server = server
        self.host = host
        self.http = self.browser()

    def browser(self) -> httpx.AsyncClient:
        """A browser of its own: requests to the issuer in-process, the rest over HTTP."""
        return httpx.AsyncClient(mounts={"http://as.test": httpx.ASGITransport(app=self.host)})

    async def client(self, scope: str = "read") -> str:
        registered = await self.server.register_client(
            name="Client", redirect_uris=[CLIENT_CALLBACK], scope=scope.split(), public=True
        )
        return registered.client.client_id

    def authorize_url(self, client_id: str, **more: str) -> str:
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": CLIENT_CALLBACK,
            "scope": "read",
            "state": "client-state",
            "code_challenge": s256_challenge(VERIFIER),
            "code_challenge_method": "S256",
            **more,
        }
        return f"{ISSUER}/authorize?{urlencode(params)}"

    async def exchange(self, client_id: str, location: str) -> dict[str, Any]:
        """The token response for the code the client received at ``location``."""
        code = parse_qs(urlsplit(location).query)["code"][0]
        response = await self.http.post(
            f"{ISSUER}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": CLIENT_CALLBACK,
                "client_id": client_id,
                "code_verifier": VERIFIER,
            },
        )
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        return tokens

    async def token_subject(self, client_id: str, location: str) -> str:
        tokens = await self.exchange(client_id, location)
        result = await self.server.introspect_token(tokens["access_token"])
        assert result.sub is not None
        return result.sub


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "memory":
        return MemoryStorage()
    return SQLiteStorage(tmp_path / "oauth.db")


async def deployment(
    store: Storage,
    *providers: UpstreamProvider,
    policy: FederationPolicy | None = None,
    **more: Any,
) -> AsyncIterator[Deployment]:
    settings = Settings(
        issuer=ISSUER, insecure_transport=True, upstream_providers=providers, **more
    )
    server = AuthorizationServer(store, settings, federation_policy=policy)
    host = Starlette(routes=[Mount("/oauth2", app=OAuth2App(server))])
    d = Deployment(server, host)
    async with d.http:
        yield d
    await server.close()


@pytest.fixture
async def with_github(store: Storage, github_fake: GitHubLike) -> AsyncIterator[Deployment]:
    async for d in deployment(store, github_provider(github_fake)):
        yield d


@pytest.fixture
async def with_oidc(store: Storage, op_fake: FakeOpenIDProvider) -> AsyncIterator[Deployment]:
    async for d in deployment(store, oidc_provider(op_fake)):
        yield d


def person(d: Deployment, fake: GitHubLike | FakeOpenIDProvider, provider: str) -> Person:
    return Person(d.http, "-", "-", provider=provider, elsewhere=(fake.base_url,))


async def test_github_sign_in_creates_a_linked_user_and_consent_is_still_asked(
    with_github: Deployment, github_fake: GitHubLike
) -> None:
    d = with_github
    client_id = await d.client()
    someone = person(d, github_fake, "GitHub")
    location = await someone.authorize(d.authorize_url(client_id))
    assert location.startswith(CLIENT_CALLBACK)
    # The upstream sign-in said who they are; this server still asked about the client.
    assert someone.pages == ["Sign in", "Authorize access"]
    subject = await d.token_subject(client_id, location)
    user = await d.server.storage.get_user_by_id(subject)
    assert user is not None and user.username == "github:octocat"
    links = await d.server.storage.federated_identities(subject)
    assert [(lk.issuer, lk.subject) for lk in links] == [("https://github.com", "583231")]
    # PKCE and state went upstream; the secret went only to the token endpoint.
    sent = github_fake.authorize_requests[-1]
    assert sent["code_challenge_method"] == "S256" and len(sent["state"]) >= 32
    assert "client_secret" not in sent
    # A second sign-in finds the same user, whatever the login is now.
    github_fake.person = {**github_fake.person, "login": "renamed"}
    again = Person(d.http, "-", "-", provider="GitHub", elsewhere=(github_fake.base_url,))
    d.http.cookies.clear()
    location = await again.authorize(d.authorize_url(client_id))
    assert await d.token_subject(client_id, location) == subject


async def test_claims_from_the_provider_flow_into_id_tokens_and_userinfo(
    store: Storage, github_fake: GitHubLike
) -> None:
    async for d in deployment(store, github_provider(github_fake), key_encryption_key="k" * 32):
        client_id = await d.client("openid profile email")
        url = d.authorize_url(client_id, scope="openid profile email", nonce="n")
        location = await person(d, github_fake, "GitHub").authorize(url)
        tokens = await d.exchange(client_id, location)
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        userinfo = (await d.http.get(f"{ISSUER}/userinfo", headers=bearer)).json()
        id_token = json.loads(_b64decode(tokens["id_token"].split(".")[1]))
        for claims in (userinfo, id_token):
            assert claims["preferred_username"] == "octocat"
            # GitHub's primary address is verified by its e-mail list, not by /user.
            assert claims["email"] == github_fake.emails[0]["email"]
            assert claims["email_verified"] is True
            assert claims["picture"] == github_fake.person["avatar_url"]
        # The upstream did not say how the person signed in there: no amr is invented.
        assert "amr" not in id_token


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


async def test_openid_connect_sign_in_checks_the_id_token_and_links_by_subject(
    with_oidc: Deployment, op_fake: FakeOpenIDProvider
) -> None:
    d = with_oidc
    client_id = await d.client()
    location = await person(d, op_fake, "Corp").authorize(d.authorize_url(client_id))
    subject = await d.token_subject(client_id, location)
    links = await d.server.storage.federated_identities(subject)
    assert [(lk.issuer, lk.subject) for lk in links] == [(op_fake.issuer, op_fake.person["sub"])]
    sent = op_fake.authorize_requests[-1]
    assert sent["nonce"] and sent["code_challenge_method"] == "S256"
    assert set(sent["scope"].split()) == {"openid", "email", "profile"}


async def test_upstream_auth_time_is_the_sign_in_time(
    store: Storage, op_fake: FakeOpenIDProvider
) -> None:
    op_fake.auth_time = 1_000
    async for d in deployment(store, oidc_provider(op_fake)):
        client_id = await d.client()
        someone = person(d, op_fake, "Corp")
        # max_age asks for a new sign-in: asked upstream too, and an old one refused.
        page = await browse_to_page(someone, d.authorize_url(client_id, max_age="60"))
        assert op_fake.authorize_requests[-1].get("prompt") == "login"
        assert "did not ask you to sign in again" in page.text


async def browse_to_page(someone: Person, url: str) -> httpx.Response:
    """Browse until a page without a form (an error page), returning it."""
    response = await someone.visit(url)
    assert not response.is_redirect, response.headers.get("location")
    return response


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("id_token_overrides", {"aud": "someone-else"}),
        ("id_token_overrides", {"nonce": "another-sign-in"}),
        ("id_token_overrides", {"iss": "https://impostor.example"}),
        ("id_token_overrides", {"nonce": DELETE}),
        ("id_token_overrides", {"exp": 1}),
        ("sign_with_foreign_key", True),
        ("alg_none", True),
        ("userinfo_overrides", {"sub": "someone-else"}),
        ("response_iss", "https://impostor.example"),
        ("response_iss", None),
    ],
)
async def test_a_bent_answer_signs_no_one_in_and_creates_nothing(
    store: Storage, op_fake: FakeOpenIDProvider, knob: str, value: object
) -> None:
    setattr(op_fake, knob, value)
    async for d in deployment(store, oidc_provider(op_fake)):
        client_id = await d.client()
        response = await browse_to_page(person(d, op_fake, "Corp"), d.authorize_url(client_id))
        assert response.status_code in (403, 502)
        assert "Sign in" not in Page.parse(response.text).title
        assert await d.server.storage.list_users() == []
        subject = op_fake.person["sub"]
        assert await d.server.storage.get_federated_identity(op_fake.issuer, subject) is None


async def test_a_discovery_document_naming_another_issuer_is_refused(
    store: Storage, op_fake: FakeOpenIDProvider
) -> None:
    op_fake.metadata_issuer = "https://impostor.example"
    async for d in deployment(store, oidc_provider(op_fake)):
        response = await d.http.get(f"{ISSUER}/upstream/corp?next=")
        assert response.status_code == 502
        assert "names another issuer" in response.text
        assert op_fake.authorize_requests == []


async def test_a_wrong_state_or_an_answer_without_the_cookie_is_refused(
    with_github: Deployment, github_fake: GitHubLike
) -> None:
    d = with_github
    start = await d.http.get(f"{ISSUER}/upstream/github?next=")
    upstream = await d.http.get(start.headers["location"])
    callback = upstream.headers["location"]
    forged = callback.replace("state=", "state=x")
    refused = await d.http.get(forged)
    assert refused.status_code == 403 and "not for the sign-in you started" in refused.text
    # An attacker's answer in a victim's browser (login CSRF): no cookie, no sign-in.
    async with d.browser() as victim:
        stolen = await victim.get(callback)
    assert stolen.status_code == 403 and "not started in this browser" in stolen.text
    assert await d.server.storage.list_users() == []


async def test_a_replayed_answer_is_refused(
    with_github: Deployment, github_fake: GitHubLike
) -> None:
    d = with_github
    start = await d.http.get(f"{ISSUER}/upstream/github?next=")
    callback = (await d.http.get(start.headers["location"])).headers["location"]
    cookies = dict(d.http.cookies)
    first = await d.http.get(callback)
    assert first.status_code == 200 and "signed in as github:octocat" in first.text
    d.http.cookies.update(cookies)  # the pending sign-in's cookie, copied before
    replayed = await d.http.get(callback)
    assert replayed.status_code == 403 and "completed already" in replayed.text


async def test_a_foreign_code_is_refused_by_the_upstream(
    with_github: Deployment, github_fake: GitHubLike
) -> None:
    d = with_github
    start = await d.http.get(f"{ISSUER}/upstream/github?next=")
    callback = (await d.http.get(start.headers["location"])).headers["location"]
    query = parse_qs(urlsplit(callback).query)
    forged = f"{ISSUER}/upstream/github/callback?" + urlencode(
        {"code": "code-issued-to-someone-else", "state": query["state"][0]}
    )
    response = await d.http.get(forged)
    assert response.status_code == 502 and "bad_verification_code" in response.text
    assert await d.server.storage.list_users() == []


async def test_the_person_saying_no_upstream_gets_a_clear_page(
    with_github: Deployment, github_fake: GitHubLike
) -> None:
    github_fake.deny = True
    d = with_github
    response = await browse_to_page(person(d, github_fake, "GitHub"), f"{ISSUER}/login")
    assert response.status_code == 403 and "did not allow GitHub" in response.text


async def test_an_upstream_that_is_down_gives_a_clear_page_and_creates_nothing(
    store: Storage, github_fake: GitHubLike
) -> None:
    provider = github_provider(github_fake)
    async for d in deployment(store, provider):
        start = await d.http.get(f"{ISSUER}/upstream/github?next=")
        callback = (await d.http.get(start.headers["location"])).headers["location"]
        github_fake.down = True
        response = await d.http.get(callback)
        assert response.status_code == 502 and "GitHub" in response.text
        assert "Traceback" not in response.text
        assert await d.server.storage.list_users() == []
    unreachable = replace(provider, token_endpoint="http://127.0.0.1:9/token")
    async for d in deployment(MemoryStorage(), unreachable):
        github_fake.down = False
        start = await d.http.get(f"{ISSUER}/upstream/github?next=")
        callback = (await d.http.get(start.headers["location"])).headers["location"]
        response = await d.http.get(callback)
        assert response.status_code == 502 and "cannot be reached" in response.text
        assert await d.server.storage.list_users() == []


async def test_an_unverified_email_never_links_to_an_existing_account(
    store: Storage, op_fake: FakeOpenIDProvider
) -> None:
    op_fake.person = {**op_fake.person, "email": "alice@corp.example", "email_verified": False}
    async for d in deployment(store, oidc_provider(op_fake, link_by_email=True)):
        alice = await d.server.create_user("alice@corp.example", "a long enough password")
        client_id = await d.client()
        location = await person(d, op_fake, "Corp").authorize(d.authorize_url(client_id))
        subject = await d.token_subject(client_id, location)
        assert subject != alice.user_id
        assert await d.server.storage.federated_identities(alice.user_id) == []


async def test_a_verified_email_from_a_trusted_provider_links_to_the_existing_account(
    store: Storage, op_fake: FakeOpenIDProvider
) -> None:
    op_fake.person = {**op_fake.person, "email": "alice@corp.example", "email_verified": True}
    async for d in deployment(store, oidc_provider(op_fake, link_by_email=True)):
        alice = await d.server.create_user("alice@corp.example", "a long enough password")
        client_id = await d.client()
        location = await person(d, op_fake, "Corp").authorize(d.authorize_url(client_id))
        assert await d.token_subject(client_id, location) == alice.user_id
    # Without link_by_email the same verified address creates a user of its own.
    async for d in deployment(MemoryStorage(), oidc_provider(op_fake)):
        alice = await d.server.create_user("alice@corp.example", "a long enough password")
        client_id = await d.client()
        location = await person(d, op_fake, "Corp").authorize(d.authorize_url(client_id))
        assert await d.token_subject(client_id, location) != alice.user_id


@pytest.mark.parametrize(
    "rule",
    [
        {"allowed_domains": ("other.example",)},
        {"allowed_groups": ("admins",)},
    ],
)
async def test_a_person_refused_by_the_providers_rules_is_not_signed_in(
    store: Storage, op_fake: FakeOpenIDProvider, rule: dict[str, Any], caplog: Any
) -> None:
    op_fake.person = {**op_fake.person, "email_verified": True, "groups": ["staff"]}
    async for d in deployment(store, oidc_provider(op_fake, **rule)):
        with caplog.at_level(logging.WARNING, logger="asgi_oauth"):
            response = await browse_to_page(person(d, op_fake, "Corp"), f"{ISSUER}/login")
        assert response.status_code == 403 and "may not sign in here" in response.text
        assert await d.server.storage.list_users() == []
        assert "upstream_sign_in_refused" in caplog.text


async def test_github_organisations_and_a_policy_hook_decide_who_signs_in(
    store: Storage, github_fake: GitHubLike
) -> None:
    async for d in deployment(store, github_provider(github_fake, allowed_organizations=("acme",))):
        response = await browse_to_page(person(d, github_fake, "GitHub"), f"{ISSUER}/login")
        assert response.status_code == 200 and "signed in as github:octocat" in response.text

    class OnlyNamed(FederationPolicy):
        async def admit(self, identity: UpstreamIdentity) -> bool:
            return identity.claims.get("preferred_username") == "someone-else"

    async for d in deployment(MemoryStorage(), github_provider(github_fake), policy=OnlyNamed()):
        response = await browse_to_page(person(d, github_fake, "GitHub"), f"{ISSUER}/login")
        assert response.status_code == 403

    github_fake.orgs = [{"login": "elsewhere", "id": 2}]
    async for d in deployment(
        MemoryStorage(), github_provider(github_fake, allowed_organizations=("acme",))
    ):
        response = await browse_to_page(person(d, github_fake, "GitHub"), f"{ISSUER}/login")
        assert response.status_code == 403


async def test_upstream_groups_limit_the_scopes_a_person_may_grant(
    store: Storage, op_fake: FakeOpenIDProvider
) -> None:
    op_fake.person = {**op_fake.person, "groups": ["readers"]}
    provider = oidc_provider(op_fake, group_scopes={"readers": ("read",), "admins": ("write",)})
    async for d in deployment(store, provider):
        client_id = await d.client("read write")
        location = await person(d, op_fake, "Corp").authorize(
            d.authorize_url(client_id, scope="read write")
        )
        # RFC 6749 §3.3: less was granted than asked, and the response says so.
        assert (await d.exchange(client_id, location))["scope"] == "read"
        # Asked only what they may not grant: refused, not an empty token.
        location = await person(d, op_fake, "Corp").authorize(
            d.authorize_url(client_id, scope="write")
        )
        assert parse_qs(urlsplit(location).query)["error"] == ["access_denied"]


async def test_only_providers_and_one_of_them_goes_straight_there(
    store: Storage, github_fake: GitHubLike
) -> None:
    async for d in deployment(store, github_provider(github_fake), password_sign_in=False):
        response = await d.http.get(f"{ISSUER}/login?next=/authorize%3Fx%3D1")
        assert response.status_code == 303
        assert response.headers["location"].startswith(f"{ISSUER}/upstream/github?")
        refused = await d.http.post(f"{ISSUER}/login", data={"username": "a", "password": "b"})
        assert refused.status_code == 403


async def test_the_sign_in_page_offers_each_provider_beside_the_password_form(
    store: Storage, github_fake: GitHubLike, op_fake: FakeOpenIDProvider
) -> None:
    async for d in deployment(store, github_provider(github_fake), oidc_provider(op_fake)):
        page = Page.parse((await d.http.get(f"{ISSUER}/login?next=/authorize")).text)
        assert [text for text, _ in page.providers] == ["Sign in with GitHub", "Sign in with Corp"]
        assert all(href.startswith(f"{ISSUER}/upstream/") for _, href in page.providers)
        assert any("password" in form.input_types.values() for form in page.forms)


async def test_upstream_tokens_are_kept_sealed_and_refreshed(
    store: Storage, github_fake: GitHubLike
) -> None:
    github_fake.expiring_tokens = True
    github_fake.token_lifetime = 120
    provider = github_provider(github_fake, keep_tokens=True)
    async for d in deployment(store, provider, key_encryption_key="k" * 32):
        client_id = await d.client()
        location = await person(d, github_fake, "GitHub").authorize(d.authorize_url(client_id))
        subject = await d.token_subject(client_id, location)
        link = (await d.server.storage.federated_identities(subject))[0]
        assert link.tokens is not None
        first = await d.server.federation.upstream_token(subject, "github")
        assert first is not None and first not in link.tokens  # sealed at rest
        assert github_fake.access_tokens[first]  # the provider's own token
        # Near its expiry it is refreshed, and the new one is kept.
        d.server.federation._clock = lambda: 10**10
        github_fake.clock = lambda: 10**10
        refreshed = await d.server.federation.upstream_token(subject, "github")
        assert refreshed is not None and refreshed != first
        assert await d.server.federation.upstream_token(subject, "github") == refreshed


def test_a_providers_file_names_secrets_and_never_holds_them(tmp_path: Path) -> None:
    from asgi_oauth.federation import ProviderConfigError, load_providers

    (tmp_path / "secret").write_text("from-a-file\n")
    good = tmp_path / "providers.toml"
    good.write_text(
        '[[provider]]\npreset = "github"\nclient_id = "abc"\nclient_secret_env = "GH_SECRET"\n'
        '[[provider]]\nid = "corp"\nname = "Corp"\nclient_id = "x"\n'
        'issuer = "https://id.corp.example"\nclient_secret_file = "secret"\n'
    )
    gh, corp = load_providers(good, {"GH_SECRET": "from-env"})
    assert (gh.id, gh.client_secret, corp.client_secret) == ("github", "from-env", "from-a-file")
    literal = tmp_path / "literal.json"
    literal.write_text(json.dumps([{"preset": "github", "client_id": "a", "client_secret": "s"}]))
    with pytest.raises(ProviderConfigError, match="never write it"):
        load_providers(literal, {})
    with pytest.raises(ProviderConfigError, match="GH_SECRET is not set"):
        load_providers(good, {})
    env = {"ASGI_OAUTH_ISSUER": "https://as.example", "ASGI_OAUTH_UPSTREAM_PROVIDERS": str(good)}
    settings = Settings.from_env({**env, "GH_SECRET": "s"})
    assert [p.id for p in settings.upstream_providers] == ["github", "corp"]


async def test_a_rotated_upstream_key_is_fetched_and_a_foreign_one_still_refused(
    store: Storage, op_fake: FakeOpenIDProvider
) -> None:
    from joserfc.jwk import RSAKey

    async for d in deployment(store, oidc_provider(op_fake)):
        client_id = await d.client()
        await person(d, op_fake, "Corp").authorize(d.authorize_url(client_id))
        # The provider rotates: the ID token names a kid not read before.
        op_fake.key = RSAKey.generate_key(2048, parameters={"kid": "op-key-2", "alg": "RS256"})
        d.http.cookies.clear()
        too_soon = await browse_to_page(person(d, op_fake, "Corp"), f"{ISSUER}/login")
        # Keys are read again at most every 30 s, so a flood of unknown kids costs nothing.
        assert too_soon.status_code == 502
        upstream = d.server.federation.client("corp")
        upstream._clock = functools.partial(float, upstream._clock() + 31)
        d.http.cookies.clear()
        location = await person(d, op_fake, "Corp").authorize(d.authorize_url(client_id))
        assert location.startswith(CLIENT_CALLBACK)


async def test_an_oversized_upstream_answer_is_refused_not_read(
    store: Storage, github_fake: GitHubLike
) -> None:
    github_fake.person = {**github_fake.person, "bio": "x" * 300_000}
    async for d in deployment(store, github_provider(github_fake)):
        response = await browse_to_page(person(d, github_fake, "GitHub"), f"{ISSUER}/login")
        assert response.status_code == 502 and "its answer is too large" in response.text
        assert await d.server.storage.list_users() == []
