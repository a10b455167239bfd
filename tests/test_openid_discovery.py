"""What an OpenID provider publishes: discovery (OpenID Connect Discovery 1.0 §3, §4),
the JWK Set (RFC 7517 §5) and the UserInfo endpoint (OpenID Connect Core §5.3).

Each test runs the app in process through ``httpx.ASGITransport``, mounted where
its issuer says, with the RFC 8414 §3.1 metadata at the host's root as well.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from asgi_oauth import AuthorizationServer, OAuthRequest, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.openid import UserClaims
from asgi_oauth.pkce import s256_challenge
from asgi_oauth.storage import MemoryStorage

from .conftest import ISSUER, REDIRECT_URI, Credentials, FakeClock
from .helpers import basic_header
from .openid_helpers import decode, openid_settings

pytestmark = pytest.mark.anyio

#: An issuer with a deeper path than the shared fixtures use.
VERSIONED_ISSUER = "https://as.example/auth/v1"
#: What a JWK must never show publicly (RFC 7518 §6.2.2, §6.3.2).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
USERNAME = "alice"
PASSWORD = "correct horse battery staple"


@dataclass
class Provider:
    """A server, its app mounted at its issuer's path, and a client for both."""

    server: AuthorizationServer
    http: httpx.AsyncClient

    @property
    def issuer(self) -> str:
        return self.server.settings.issuer

    @property
    def path(self) -> str:
        """The mount path: the issuer's path."""
        return self.server.settings.issuer_path

    async def get(self, endpoint: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.http.get(self.path + endpoint, headers=headers)


@asynccontextmanager
async def provider(
    settings: Settings,
    *,
    user_claims: UserClaims | None = None,
    clock: FakeClock | None = None,
    base_url: str = "https://as.example",
) -> AsyncIterator[Provider]:
    # Now by default, so that PyJWT (which reads the real clock) accepts what is valid.
    server = AuthorizationServer(
        MemoryStorage(),
        settings,
        clock=clock or FakeClock(float(int(time.time()))),
        user_claims=user_claims,
    )
    app = OAuth2App(server)
    host = Starlette(
        routes=[
            Mount(settings.issuer_path, app=app),
            Route(app.metadata_path, app.metadata_app),
        ]
    )
    transport = httpx.ASGITransport(app=host)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            yield Provider(server, http)
    finally:
        await server.close()


@pytest.fixture
async def op() -> AsyncIterator[Provider]:
    """An OpenID provider at the shared test issuer (mounted at /oauth2)."""
    async with provider(openid_settings()) as p:
        yield p


@pytest.fixture
async def versioned() -> AsyncIterator[Provider]:
    """An OpenID provider mounted at /auth/v1, as its issuer says."""
    async with provider(openid_settings(issuer=VERSIONED_ISSUER)) as p:
        yield p


def urls_in(document: Mapping[str, object]) -> dict[str, str]:
    return {
        name: value
        for name, value in document.items()
        if isinstance(value, str) and value.startswith(("http://", "https://"))
    }


# -- discovery ---------------------------------------------------------------------------


#: What OpenID Connect discovery adds to the RFC 8414 document (signing out).
LOGOUT_MEMBERS = frozenset(
    {"end_session_endpoint", "backchannel_logout_supported", "backchannel_logout_session_supported"}
)


def without_logout(document: dict[str, object]) -> dict[str, object]:
    return {name: value for name, value in document.items() if name not in LOGOUT_MEMBERS}


async def test_openid_configuration_is_the_rfc8414_metadata_document(
    versioned: Provider,
) -> None:
    discovered = await versioned.get("/.well-known/openid-configuration")
    assert discovered.status_code == 200, discovered.text
    # RFC 8414 §3.1: for an issuer with a path, the well-known part goes first.
    metadata = await versioned.http.get("/.well-known/oauth-authorization-server/auth/v1")
    assert metadata.status_code == 200, metadata.text
    # Plus RP-Initiated and Back-Channel Logout's members, which only OpenID Connect has.
    assert without_logout(discovered.json()) == metadata.json()
    assert without_logout(discovered.json()) == versioned.server.metadata()
    assert discovered.json()["end_session_endpoint"] == VERSIONED_ISSUER + "/logout"


async def test_every_url_in_discovery_starts_with_the_issuer_and_its_mount_path(
    versioned: Provider,
) -> None:
    document = (await versioned.get("/.well-known/openid-configuration")).json()
    # Discovery §4.3: the issuer is exactly the one the document was fetched for.
    assert document["issuer"] == VERSIONED_ISSUER
    urls = urls_in(document)
    assert {"authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"} <= set(
        urls
    )
    for name, url in urls.items():
        if name != "issuer":
            assert url.startswith(VERSIONED_ISSUER + "/"), (name, url)
    # And they answer there, where the app is mounted.
    jwks = await versioned.http.get(document["jwks_uri"])
    assert jwks.status_code == 200, jwks.text
    assert (await versioned.http.get(document["userinfo_endpoint"])).status_code == 401


async def test_discovery_has_the_fields_openid_connect_discovery_requires(op: Provider) -> None:
    document = (await op.get("/.well-known/openid-configuration")).json()
    for name in (
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ):
        assert name in document, name
    assert document["issuer"] == ISSUER
    assert "code" in document["response_types_supported"]
    assert document["subject_types_supported"] == ["public"]
    # Core §15.1: RS256 must be supported; never "none" from a provider with keys.
    assert "RS256" in document["id_token_signing_alg_values_supported"]
    assert "none" not in document["id_token_signing_alg_values_supported"]
    assert document["userinfo_endpoint"] == ISSUER + "/userinfo"
    assert "openid" in document["scopes_supported"]


async def test_discovery_says_request_uri_is_not_supported(op: Provider) -> None:
    # Discovery §3: request_uri_parameter_supported defaults to true when absent.
    document = (await op.get("/.well-known/openid-configuration")).json()
    assert document["request_uri_parameter_supported"] is False
    assert document["request_parameter_supported"] is False


async def test_without_a_key_encryption_key_nothing_openid_is_served() -> None:
    async with provider(Settings(issuer=ISSUER)) as plain:
        for endpoint in ("/.well-known/openid-configuration", "/jwks", "/userinfo"):
            response = await plain.get(endpoint)
            assert response.status_code == 404, (endpoint, response.text)
        posted = await plain.http.post(
            plain.path + "/userinfo", headers={"Authorization": "Bearer x"}
        )
        assert posted.status_code == 404
        metadata = (await plain.http.get("/.well-known/oauth-authorization-server/oauth2")).json()
    for name in (
        "jwks_uri",
        "userinfo_endpoint",
        "id_token_signing_alg_values_supported",
        "subject_types_supported",
        "request_uri_parameter_supported",
    ):
        assert name not in metadata, name
    assert "openid" not in metadata.get("scopes_supported", [])
    assert metadata["token_endpoint"] == ISSUER + "/token"


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example"},
        {"Host": "evil.example:8443", "X-Forwarded-Host": "evil.example"},
        {"X-Forwarded-Proto": "http", "X-Forwarded-Prefix": "/elsewhere"},
        {"Forwarded": "host=evil.example;proto=http"},
    ],
    ids=["host", "host-and-forwarded-host", "forwarded-prefix", "forwarded"],
)
async def test_request_headers_never_change_a_published_url(
    versioned: Provider, headers: dict[str, str]
) -> None:
    honest = (await versioned.get("/.well-known/openid-configuration")).json()
    asked = await versioned.get("/.well-known/openid-configuration", headers=headers)
    assert asked.status_code == 200, asked.text
    assert asked.json() == honest
    metadata = await versioned.http.get(
        "/.well-known/oauth-authorization-server/auth/v1", headers=headers
    )
    assert metadata.json() == without_logout(honest)
    assert all("evil" not in url for url in urls_in(asked.json()).values())


async def test_jwks_has_one_rs256_one_es256_and_one_eddsa_public_key(op: Provider) -> None:
    response = await op.get("/jwks")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    keys = response.json()["keys"]
    assert sorted(k["alg"] for k in keys) == ["ES256", "EdDSA", "RS256"]
    kty = {"RS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}
    for key in keys:
        assert key["use"] == "sig"
        assert isinstance(key["kid"], str) and key["kid"]
        assert not PRIVATE_MEMBERS & set(key), key
        assert key["kty"] == kty[key["alg"]]
    (ec,) = [k for k in keys if k["alg"] == "ES256"]
    assert ec["crv"] == "P-256"
    (okp,) = [k for k in keys if k["alg"] == "EdDSA"]
    assert okp["crv"] == "Ed25519"  # RFC 8037 §2
    assert len({k["kid"] for k in keys}) == 3
    # The same set on every fetch: keys are made once, not per request.
    assert (await op.get("/jwks")).json() == response.json()


async def test_discovery_and_jwks_may_be_cached_for_a_while(op: Provider) -> None:
    discovered = await op.get("/.well-known/openid-configuration")
    jwks = await op.get("/jwks")
    assert discovered.headers["cache-control"] == "public, max-age=3600"
    # Relying parties refetch keys on an unknown kid; a shorter life covers the rest.
    assert jwks.headers["cache-control"] == "public, max-age=300"
    assert "pragma" not in discovered.headers and "pragma" not in jwks.headers


async def test_discovery_and_jwks_are_get_only(op: Provider) -> None:
    for endpoint in ("/.well-known/openid-configuration", "/jwks"):
        response = await op.http.post(op.path + endpoint)
        assert response.status_code == 405, (endpoint, response.text)
        assert response.headers["allow"] == "GET"


# -- userinfo ----------------------------------------------------------------------------


async def register_rp(server: AuthorizationServer) -> Credentials:
    registered = await server.register_client(
        name="Relying party",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
        scope=["openid", "profile", "email", "read"],
    )
    return Credentials(registered.client.client_id, registered.client_secret)


async def user_token(server: AuthorizationServer, rp: Credentials, scope: str) -> str:
    """An access token for alice with ``scope``, from a code as /authorize would issue it."""
    user = await server.storage.get_user(USERNAME)
    if user is None:
        user = await server.create_user(USERNAME, PASSWORD)
    code = await server.create_authorization_code(
        client_id=rp.client_id,
        subject=user.user_id,
        redirect_uri=REDIRECT_URI,
        scope=scope,
    )
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    issued = await server.token(OAuthRequest(form=form, authorization=basic_header(*rp.basic)))
    return issued.access_token


async def alice_id(server: AuthorizationServer) -> str:
    user = await server.storage.get_user(USERNAME)
    assert user is not None
    return user.user_id


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge(response: httpx.Response) -> str:
    value: str = response.headers["www-authenticate"]
    assert value.startswith("Bearer "), value
    return value


@pytest.mark.parametrize("how", ["get-header", "post-form", "post-header"])
async def test_userinfo_answers_for_the_user_of_a_token_with_openid(op: Provider, how: str) -> None:
    rp = await register_rp(op.server)
    token = await user_token(op.server, rp, "openid")
    url = op.path + "/userinfo"
    if how == "get-header":
        response = await op.http.get(url, headers=bearer(token))
    elif how == "post-form":
        # RFC 6750 §2.2, which Core §5.3.1 allows.
        response = await op.http.post(url, data={"access_token": token})
    else:
        response = await op.http.post(url, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"sub": await alice_id(op.server)}


async def test_userinfo_claims_follow_the_granted_scope(op: Provider) -> None:
    rp = await register_rp(op.server)
    url = op.path + "/userinfo"
    bare_token = await user_token(op.server, rp, "openid")
    sub = await alice_id(op.server)
    bare = await op.http.get(url, headers=bearer(bare_token))
    assert bare.json() == {"sub": sub}
    profile_token = await user_token(op.server, rp, "openid profile")
    profiled = await op.http.get(url, headers=bearer(profile_token))
    assert profiled.json() == {"sub": sub, "preferred_username": USERNAME}


async def test_userinfo_with_the_sub_of_the_id_token(op: Provider) -> None:
    """Core §5.3.2: the sub in the UserInfo response is the ID token's sub."""
    rp = await register_rp(op.server)
    user = await op.server.create_user(USERNAME, PASSWORD)
    code = await op.server.create_authorization_code(
        client_id=rp.client_id,
        subject=user.user_id,
        redirect_uri=REDIRECT_URI,
        scope="openid profile",
        nonce="n-0S6_WzA2Mj",
    )
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    issued = await op.server.token(OAuthRequest(form=form, authorization=basic_header(*rp.basic)))
    assert issued.id_token is not None
    jwks = (await op.get("/jwks")).json()
    claims = decode(issued.id_token, jwks, audience=rp.client_id)
    answered = await op.http.get(op.path + "/userinfo", headers=bearer(issued.access_token))
    assert answered.json()["sub"] == claims["sub"] == user.user_id
    assert claims["nonce"] == "n-0S6_WzA2Mj"


@pytest.mark.parametrize(
    "token",
    ["not-a-token", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "a" * 40],
    ids=["junk", "alg-none-jwt", "unknown"],
)
async def test_userinfo_refuses_a_bad_token_with_invalid_token(op: Provider, token: str) -> None:
    response = await op.http.get(op.path + "/userinfo", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in challenge(response)
    assert response.json()["error"] == "invalid_token"
    assert response.headers["cache-control"] == "no-store"


async def test_userinfo_without_a_token_is_a_bare_challenge(op: Provider) -> None:
    response = await op.http.get(op.path + "/userinfo")
    assert response.status_code == 401
    # RFC 6750 §3.1: no error code when no credentials were sent.
    assert "error=" not in challenge(response)


async def test_userinfo_refuses_a_revoked_token(op: Provider) -> None:
    rp = await register_rp(op.server)
    token = await user_token(op.server, rp, "openid")
    url = op.path + "/userinfo"
    assert (await op.http.get(url, headers=bearer(token))).status_code == 200
    await op.server.revoke(
        OAuthRequest(form={"token": token}, authorization=basic_header(*rp.basic))
    )
    response = await op.http.get(url, headers=bearer(token))
    assert response.status_code == 401
    assert 'error="invalid_token"' in challenge(response)


async def test_userinfo_needs_the_openid_scope(op: Provider) -> None:
    rp = await register_rp(op.server)
    token = await user_token(op.server, rp, "read profile")
    response = await op.http.get(op.path + "/userinfo", headers=bearer(token))
    assert response.status_code == 403, response.text
    value = challenge(response)
    assert 'error="insufficient_scope"' in value
    # The scope needed, with the token's own: re-authorizing with these loses nothing.
    assert 'scope="openid profile read"' in value
    assert response.json()["error"] == "insufficient_scope"


async def test_userinfo_refuses_a_token_issued_to_no_user(op: Provider) -> None:
    """Core §5.3.3: a client credentials token speaks for no user, even with openid."""
    rp = await register_rp(op.server)
    form = {"grant_type": "client_credentials", "scope": "openid read"}
    issued = await op.server.token(OAuthRequest(form=form, authorization=basic_header(*rp.basic)))
    assert "openid" in issued.scope
    response = await op.http.get(op.path + "/userinfo", headers=bearer(issued.access_token))
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in challenge(response)
    assert "sub" not in response.json()


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_userinfo_allows_only_get_and_post(op: Provider, method: str) -> None:
    rp = await register_rp(op.server)
    token = await user_token(op.server, rp, "openid")
    response = await op.http.request(method, op.path + "/userinfo", headers=bearer(token))
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "GET, POST"


async def test_userinfo_answers_are_never_cached(op: Provider) -> None:
    rp = await register_rp(op.server)
    token = await user_token(op.server, rp, "openid profile")
    url = op.path + "/userinfo"
    for response in (
        await op.http.get(url, headers=bearer(token)),
        await op.http.post(url, data={"access_token": token}),
    ):
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"


async def test_a_user_claims_hook_shows_email_only_with_the_email_scope() -> None:
    asked: list[frozenset[str]] = []

    async def claims(subject: str, scope: frozenset[str]) -> Mapping[str, object]:
        asked.append(scope)
        return {
            "email": f"{subject}@example.com",
            "email_verified": True,
            "name": "Alice Liddell",
            "tenant": "wonderland",
            # A hook cannot override what the server says.
            "sub": "someone-else",
            "iss": "https://evil.example",
        }

    async with provider(openid_settings(), user_claims=claims) as p:
        rp = await register_rp(p.server)
        url = p.path + "/userinfo"
        plain = await p.http.get(url, headers=bearer(await user_token(p.server, rp, "openid")))
        sub = await alice_id(p.server)
        # A claim that is not standard is the host's own business and shown as given.
        assert plain.json() == {"sub": sub, "tenant": "wonderland"}
        email_token = await user_token(p.server, rp, "openid email")
        emailed = await p.http.get(url, headers=bearer(email_token))
        assert emailed.json() == {
            "sub": sub,
            "tenant": "wonderland",
            "email": f"{sub}@example.com",
            "email_verified": True,
        }
        profile_token = await user_token(p.server, rp, "openid profile")
        profiled = await p.http.post(url, data={"access_token": profile_token})
        assert profiled.json() == {"sub": sub, "tenant": "wonderland", "name": "Alice Liddell"}
    assert frozenset({"openid", "email"}) in asked


async def test_userinfo_refuses_a_token_sent_twice_or_in_the_query(op: Provider) -> None:
    rp = await register_rp(op.server)
    token = await user_token(op.server, rp, "openid")
    url = op.path + "/userinfo"
    # RFC 6750 §2: one method per request.
    twice = await op.http.post(url, headers=bearer(token), data={"access_token": token})
    assert twice.status_code == 400, twice.text
    assert 'error="invalid_request"' in challenge(twice)
    # §2.3 (the query) is not supported: as if no token had been sent.
    in_query = await op.http.get(url, params={"access_token": token})
    assert in_query.status_code == 401
    assert "error=" not in challenge(in_query)


async def test_userinfo_for_a_user_deleted_since_is_invalid_token(op: Provider) -> None:
    rp = await register_rp(op.server)
    token = await user_token(op.server, rp, "openid profile")
    assert await op.server.storage.delete_user(USERNAME)
    response = await op.http.get(op.path + "/userinfo", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in challenge(response)


async def register_jwt_rp(server: AuthorizationServer) -> Credentials:
    registered = await server.register_client(
        name="JWT RP",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "client_credentials"],
        scope=["openid", "profile"],
        access_token_format="jwt",
    )
    return Credentials(registered.client.client_id, registered.client_secret)


async def test_userinfo_accepts_jwt_access_tokens_for_a_user_only(op: Provider) -> None:
    """RFC 9068 access tokens are checked without the store; the same rules apply."""
    rp = await register_jwt_rp(op.server)
    token = await user_token(op.server, rp, "openid profile")
    assert token.count(".") == 2
    url = op.path + "/userinfo"
    answered = await op.http.get(url, headers=bearer(token))
    assert answered.status_code == 200, answered.text
    assert answered.json() == {"sub": await alice_id(op.server), "preferred_username": USERNAME}

    form = {"grant_type": "client_credentials", "scope": "openid"}
    issued = await op.server.token(OAuthRequest(form=form, authorization=basic_header(*rp.basic)))
    assert issued.access_token.count(".") == 2
    refused = await op.http.get(url, headers=bearer(issued.access_token))
    assert refused.status_code == 401, refused.text
    assert 'error="invalid_token"' in challenge(refused)


async def test_jwt_access_tokens_are_judged_by_the_servers_clock() -> None:
    a_day_ago = FakeClock(time.time() - 24 * 3600)
    async with provider(openid_settings(), clock=a_day_ago) as p:
        rp = await register_jwt_rp(p.server)
        token = await user_token(p.server, rp, "openid")
        assert (await p.server.introspect_token(token)).active is True
        answered = await p.http.get(p.path + "/userinfo", headers=bearer(token))
        assert answered.status_code == 200, answered.text


async def test_userinfo_allows_the_origins_of_registered_clients() -> None:
    """Core §5.3: the UserInfo endpoint SHOULD support CORS, for browser-based clients;
    with ``cors_origins=()``, for the origins clients registered."""
    async with provider(openid_settings(cors_origins=())) as op:
        await _userinfo_allows_the_origins_of_registered_clients(op)


async def _userinfo_allows_the_origins_of_registered_clients(op: Provider) -> None:
    registered = await op.server.register_client(
        name="SPA",
        redirect_uris=[REDIRECT_URI],
        scope=["openid"],
        public=True,
        allowed_origins=["https://spa.example"],
    )
    rp = Credentials(registered.client.client_id, None)
    user = await op.server.create_user(USERNAME, PASSWORD)
    verifier = "v" * 43
    code = await op.server.create_authorization_code(
        client_id=rp.client_id,
        subject=user.user_id,
        redirect_uri=REDIRECT_URI,
        scope="openid",
        code_challenge=s256_challenge(verifier),
        code_challenge_method="S256",
    )
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": rp.client_id,
        "code_verifier": verifier,
    }
    token = (await op.server.token(OAuthRequest(form=form))).access_token
    url = op.path + "/userinfo"
    preflight = await op.http.options(
        url,
        headers={
            "Origin": "https://spa.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 204, preflight.text
    assert preflight.headers["access-control-allow-origin"] == "https://spa.example"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    allowed = await op.http.get(url, headers={**bearer(token), "Origin": "https://spa.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://spa.example"
    stranger = await op.http.get(url, headers={**bearer(token), "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in stranger.headers
