"""OpenID Connect at the authorization and token endpoints, over HTTP.

Every ID token the server issues is verified with PyJWT against the published
JWK Set (``openid_helpers.decode``) and checked claim by claim: OpenID Connect
Core §2 (the claims), §3.1 (code flow), §3.2 and §3.3 (implicit and hybrid),
§3.1.2.1 (``prompt``, ``max_age``, ``login_hint``, ``id_token_hint``) and §5.4
(which user claims go where).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request

from asgi_oauth import AuthorizationServer, Settings, User
from asgi_oauth.app import OAuth2App
from asgi_oauth.models import ResourceOwner
from asgi_oauth.openid import UserClaims
from asgi_oauth.types import GrantType

from .browser_helpers import (
    AUTHORIZE,
    CHALLENGE,
    LOGIN,
    PASSWORD,
    VERIFIER,
    RecordingStorage,
    approved,
    consent_page,
    decide,
    exchange,
    mounted,
    parse_page,
    query_of,
    redirect_params,
    redirect_target,
    sign_in,
    start,
)
from .conftest import ISSUER, REDIRECT_URI, Credentials, FakeClock
from .openid_helpers import decode, fetch_jwks, half_hash, openid_settings

pytestmark = pytest.mark.anyio

NONCE = "n-0S6_WzA2Mj"
WITH_IMPLICIT: frozenset[GrantType] = frozenset({"authorization_code", "implicit", "refresh_token"})
#: The response types of OpenID Connect Core §3.2 and §3.3, and the plain hybrid one.
FRONT_CHANNEL_TYPES = [
    "id_token",
    "id_token token",
    "code id_token",
    "code token",
    "code id_token token",
]
WITH_ID_TOKEN = [t for t in FRONT_CHANNEL_TYPES if "id_token" in t.split()]
#: What the fragment carries besides ``state`` and ``iss``, by response type.
TOKEN_FIELDS = {"access_token", "token_type", "expires_in", "scope"}
RETURNS = {
    "id_token": {"id_token"},
    "id_token token": {"id_token", *TOKEN_FIELDS},
    "code id_token": {"code", "id_token"},
    "code token": {"code", *TOKEN_FIELDS},
    "code id_token token": {"code", "id_token", *TOKEN_FIELDS},
}


# -- fixtures ------------------------------------------------------------------


@pytest.fixture
def settings() -> Settings:
    """OpenID Connect on, the implicit grant too (for the hybrid response types)."""
    return openid_settings(enabled_grants=WITH_IMPLICIT)


@pytest.fixture
def user_claims() -> UserClaims | None:
    return None


@pytest.fixture
async def server(
    settings: Settings, clock: FakeClock, user_claims: UserClaims | None
) -> AsyncIterator[AuthorizationServer]:
    """The conftest server, on a recording store, with the module's ``user_claims`` hook."""
    server = AuthorizationServer(RecordingStorage(), settings, clock=clock, user_claims=user_claims)
    yield server
    await server.close()


@pytest.fixture
def storage(server: AuthorizationServer) -> RecordingStorage:
    assert isinstance(server.storage, RecordingStorage)
    return server.storage


@pytest.fixture
async def alice(server: AuthorizationServer) -> User:
    return await server.create_user("alice", PASSWORD)


@pytest.fixture
async def bob(server: AuthorizationServer) -> User:
    return await server.create_user("bob", PASSWORD)


async def _relying_party(
    server: AuthorizationServer, name: str, *, public: bool = False, **extra: Any
) -> Credentials:
    registered = await server.register_client(
        name=name,
        redirect_uris=[REDIRECT_URI],
        grant_types=extra.pop("grant_types", ["authorization_code", "refresh_token", "implicit"]),
        scope=["openid", "profile", "email", "phone", "read"],
        public=public,
        **extra,
    )
    return Credentials(registered.client.client_id, registered.client_secret)


@pytest.fixture
async def rp(server: AuthorizationServer) -> Credentials:
    """A confidential relying party that may use every response type."""
    return await _relying_party(server, "Relying Party")


@pytest.fixture
async def other_rp(server: AuthorizationServer) -> Credentials:
    return await _relying_party(server, "Other Relying Party")


@pytest.fixture
async def spa(server: AuthorizationServer) -> Credentials:
    """A public relying party: PKCE whenever a code is involved."""
    return await _relying_party(server, "SPA", public=True)


# -- helpers -------------------------------------------------------------------


def request_for(client: Credentials, response_type: str = "code", **params: str) -> dict[str, str]:
    """An authentication request of ``client``: ``openid`` scope, a nonce, a state."""
    return {
        "client_id": client.client_id,
        "response_type": response_type,
        "scope": "openid",
        "state": "xyz",
        "nonce": NONCE,
        **params,
    }


async def id_token_claims(
    http: httpx.AsyncClient, token: str, client: Credentials, *, alg: str = "RS256"
) -> dict[str, Any]:
    """The verified claims of an ID token, after checking its JOSE header.

    PyJWT checks the signature, ``iss`` and ``aud``; ``exp`` is checked against the
    FakeClock by the caller (PyJWT would compare it with the real time).
    """
    header = jwt.get_unverified_header(token)
    assert header == {"alg": alg, "kid": header["kid"], "typ": "JWT"}, header
    jwks = await fetch_jwks(http)
    [published] = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    assert published["alg"] == alg and published["use"] == "sig"
    return decode(token, jwks, audience=client.client_id, verify_exp=False)


def assert_times(claims: Mapping[str, Any], clock: FakeClock, lifetime: int = 3600) -> None:
    assert claims["iat"] == int(clock.now)
    assert claims["exp"] == claims["iat"] + lifetime


async def redeem(http: httpx.AsyncClient, client: Credentials, code: str) -> dict[str, Any]:
    """The token response for ``code`` (PKCE verifier for a public client)."""
    response = await exchange(
        http,
        code,
        client_id=client.client_id,
        client_secret=client.client_secret,
        verifier=VERIFIER if client.client_secret is None else None,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def remember_consent(
    http: httpx.AsyncClient, client: Credentials, username: str, **params: str
) -> httpx.Response:
    """Sign in if needed and approve ``params`` with "remember": the redirect."""
    page = await consent_page(http, username, **request_for(client, **params))
    return await decide(http, page, "approve", remember=True)


async def issued_id_token(
    http: httpx.AsyncClient, client: Credentials, username: str, **params: str
) -> str:
    """An ID token from the code flow (verified), consent remembered along the way."""
    code = redirect_params(await remember_consent(http, client, username, **params), REDIRECT_URI)
    token = str((await redeem(http, client, code["code"]))["id_token"])
    alg = jwt.get_unverified_header(token)["alg"]
    claims = await id_token_claims(http, token, client, alg=alg)
    assert claims["nonce"] == NONCE and claims["amr"] == ["pwd"]
    return token


def assert_redirect_error(
    response: httpx.Response, error: str, *, mode: str = "query"
) -> dict[str, str]:
    """An error at the redirect URI, with ``state`` and ``iss``, and nothing issued in it."""
    params = redirect_params(response, REDIRECT_URI, mode=mode)
    assert params["error"] == error, params
    assert params["state"] == "xyz" and params["iss"] == ISSUER
    assert not {"code", "access_token", "id_token"} & set(params), params
    return params


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64_json(value: object) -> str:
    return b64(json.dumps(value).encode())


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The header, claims and signature segment of a compact JWS (unverified)."""
    header, payload, signature = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "==")),
        json.loads(base64.urlsafe_b64decode(payload + "==")),
        signature,
    )


# -- 1. the code flow ------------------------------------------------------------


async def test_code_flow_id_token_says_who_signed_in_when_and_how(
    http: httpx.AsyncClient, rp: Credentials, alice: User, clock: FakeClock
) -> None:
    await sign_in(http, "alice")
    signed_in_at = int(clock.now)
    clock.advance(40)
    response = await approved(http, "alice", **request_for(rp))
    code = redirect_params(response, REDIRECT_URI)["code"]
    clock.advance(5)

    body = await redeem(http, rp, code)
    assert body["scope"] == "openid" and body["token_type"] == "Bearer"
    claims = await id_token_claims(http, body["id_token"], rp)
    assert claims == {
        "iss": ISSUER,
        "sub": alice.user_id,
        "aud": rp.client_id,
        "iat": int(clock.now),
        "exp": int(clock.now) + 3600,
        "auth_time": signed_in_at,
        "nonce": NONCE,
        "amr": ["pwd"],
        "at_hash": half_hash(body["access_token"]),
    }


async def test_code_flow_without_a_nonce_has_no_nonce_claim(
    http: httpx.AsyncClient, rp: Credentials, alice: User
) -> None:
    params = request_for(rp)
    del params["nonce"]
    code = redirect_params(await approved(http, "alice", **params), REDIRECT_URI)["code"]
    claims = await id_token_claims(http, (await redeem(http, rp, code))["id_token"], rp)
    assert "nonce" not in claims and claims["sub"] == alice.user_id


async def test_without_the_openid_scope_there_is_no_id_token(
    http: httpx.AsyncClient, rp: Credentials, alice: User
) -> None:
    response = await approved(http, "alice", **request_for(rp, scope="read"))
    body = await redeem(http, rp, redirect_params(response, REDIRECT_URI)["code"])
    assert "id_token" not in body
    assert body["scope"] == "read" and body["access_token"]


@pytest.mark.parametrize(
    "settings", [openid_settings(id_token_lifetime=300)], ids=["id_token_lifetime=300"]
)
async def test_id_token_lifetime_setting_sets_exp(
    http: httpx.AsyncClient, rp: Credentials, alice: User, clock: FakeClock
) -> None:
    claims = await id_token_claims(http, await issued_id_token(http, rp, "alice"), rp)
    assert_times(claims, clock, lifetime=300)


async def test_id_token_kid_is_published_in_the_jwks(
    http: httpx.AsyncClient, rp: Credentials, alice: User
) -> None:
    token = await issued_id_token(http, rp, "alice")
    header = jwt.get_unverified_header(token)
    jwks = await fetch_jwks(http)
    assert header["alg"] == "RS256" and header["typ"] == "JWT"
    assert [k["kid"] for k in jwks["keys"]].count(header["kid"]) == 1
    for key in jwks["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key), "a private member is published"


async def test_a_client_that_registered_es256_gets_es256(
    http: httpx.AsyncClient, server: AuthorizationServer, alice: User, clock: FakeClock
) -> None:
    es = await _relying_party(server, "ES256 RP", id_token_signed_response_alg="ES256")
    token = await issued_id_token(http, es, "alice")
    claims = await id_token_claims(http, token, es, alg="ES256")
    assert claims["sub"] == alice.user_id and claims["nonce"] == NONCE
    assert_times(claims, clock)


async def test_refreshing_keeps_working_after_an_openid_code_flow(
    http: httpx.AsyncClient, rp: Credentials, alice: User
) -> None:
    response = await approved(http, "alice", **request_for(rp, scope="openid read"))
    body = await redeem(http, rp, redirect_params(response, REDIRECT_URI)["code"])
    refreshed = await http.post(
        ISSUER + "/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        auth=rp.basic,
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["scope"] == "openid read"
    assert refreshed.json()["access_token"] != body["access_token"]


# -- 2. user claims (Core §5.4) ----------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "expected"),
    [("openid", None), ("openid profile", "alice"), ("openid email", None)],
)
async def test_default_claims_give_preferred_username_only_with_profile(
    http: httpx.AsyncClient, rp: Credentials, alice: User, scope: str, expected: str | None
) -> None:
    claims = await id_token_claims(http, await issued_id_token(http, rp, "alice", scope=scope), rp)
    assert claims.get("preferred_username") == expected
    assert not {"name", "email", "email_verified"} & set(claims)


class StubClaims:
    """A host's ``user_claims`` hook that claims too much, and records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, frozenset[str]]] = []

    async def __call__(self, subject: str, scope: frozenset[str]) -> Mapping[str, object]:
        self.calls.append((subject, scope))
        return {
            "name": "Alice Liddell",
            "preferred_username": "alice",
            "email": "alice@wonderland.example",
            "email_verified": True,
            "phone_number": "+44 20 7946 0000",
            "address": {"country": "UK"},
            "tenant": "wonderland",  # the host's own claim
            "roles": ["reader"],
            # protocol claims a hook must never set
            "sub": "mallory",
            "iss": "https://evil.example",
            "aud": "someone-else",
            "nonce": "forged",
            "auth_time": 1,
            "exp": 9_999_999_999,
            "at_hash": "forged",
            "azp": "someone-else",
        }


@pytest.mark.parametrize("user_claims", [StubClaims()], ids=["stub"])
async def test_hook_claims_are_filtered_by_scope_and_cannot_override_protocol_claims(
    http: httpx.AsyncClient,
    rp: Credentials,
    alice: User,
    clock: FakeClock,
    user_claims: StubClaims,
) -> None:
    await sign_in(http, "alice")
    signed_in_at = int(clock.now)
    clock.advance(10)
    body = await redeem(
        http,
        rp,
        redirect_params(
            await approved(http, "alice", **request_for(rp, scope="openid profile email")),
            REDIRECT_URI,
        )["code"],
    )
    claims = await id_token_claims(http, body["id_token"], rp)
    assert claims == {
        "iss": ISSUER,
        "sub": alice.user_id,
        "aud": rp.client_id,
        "iat": int(clock.now),
        "exp": int(clock.now) + 3600,
        "auth_time": signed_in_at,
        "nonce": NONCE,
        "amr": ["pwd"],
        "at_hash": half_hash(body["access_token"]),
        # profile and email scopes; no phone or address scope, so neither claim
        "name": "Alice Liddell",
        "preferred_username": "alice",
        "email": "alice@wonderland.example",
        "email_verified": True,
        # the host's own claims pass as given
        "tenant": "wonderland",
        "roles": ["reader"],
    }
    assert user_claims.calls[-1] == (alice.user_id, frozenset({"openid", "profile", "email"}))


# -- 3. implicit and hybrid response types --------------------------------------------


@pytest.mark.parametrize("response_type", FRONT_CHANNEL_TYPES)
async def test_front_channel_response_types_answer_in_the_fragment(
    http: httpx.AsyncClient,
    rp: Credentials,
    alice: User,
    clock: FakeClock,
    storage: RecordingStorage,
    response_type: str,
) -> None:
    await sign_in(http, "alice")
    signed_in_at = int(clock.now)
    clock.advance(7)
    response = await approved(
        http, "alice", **request_for(rp, response_type, scope="openid profile")
    )
    params = redirect_params(response, REDIRECT_URI, mode="fragment")
    assert set(params) == RETURNS[response_type] | {"state", "iss"}
    assert params["state"] == "xyz" and params["iss"] == ISSUER
    words = response_type.split()
    assert len(storage.codes) == ("code" in words)
    assert len(storage.tokens) == ("token" in words)
    if "token" in words:
        assert params["token_type"] == "Bearer" and params["scope"] == "openid profile"
    if "id_token" not in words:
        return

    claims = await id_token_claims(http, params["id_token"], rp)
    expected: dict[str, Any] = {
        "iss": ISSUER,
        "sub": alice.user_id,
        "aud": rp.client_id,
        "iat": int(clock.now),
        "exp": int(clock.now) + 3600,
        "auth_time": signed_in_at,
        "nonce": NONCE,
        "amr": ["pwd"],
    }
    if "code" in words:
        expected["c_hash"] = half_hash(params["code"])
    if "token" in words:
        expected["at_hash"] = half_hash(params["access_token"])
    if response_type == "id_token":
        # §5.4: no access token to fetch them from userinfo, so they are in the ID token.
        expected["preferred_username"] = "alice"
    assert claims == expected


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("token id_token", "id_token token"),
        ("id_token code", "code id_token"),
        ("token code", "code token"),
        ("token id_token code", "code id_token token"),
        ("id_token token code", "code id_token token"),
    ],
)
async def test_the_order_of_the_words_of_a_response_type_is_insignificant(
    http: httpx.AsyncClient, rp: Credentials, alice: User, given: str, canonical: str
) -> None:
    response = await approved(http, "alice", **request_for(rp, given))
    params = redirect_params(response, REDIRECT_URI, mode="fragment")
    assert set(params) == RETURNS[canonical] | {"state", "iss"}
    if "id_token" in params:
        claims = await id_token_claims(http, params["id_token"], rp)
        assert claims.get("c_hash") == (half_hash(params["code"]) if "code" in params else None)
        assert claims.get("at_hash") == (
            half_hash(params["access_token"]) if "access_token" in params else None
        )


@pytest.mark.parametrize("response_type", FRONT_CHANNEL_TYPES)
async def test_response_mode_query_is_refused_in_the_fragment(
    http: httpx.AsyncClient,
    rp: Credentials,
    alice: User,
    storage: RecordingStorage,
    response_type: str,
) -> None:
    await sign_in(http, "alice")
    response = await start(http, **request_for(rp, response_type, response_mode="query"))
    assert_redirect_error(response, "invalid_request", mode="fragment")
    assert storage.codes == [] and storage.tokens == []


@pytest.mark.parametrize("response_type", FRONT_CHANNEL_TYPES)
async def test_form_post_carries_the_response_in_the_pages_form(
    http: httpx.AsyncClient, rp: Credentials, alice: User, response_type: str
) -> None:
    response = await approved(
        http, "alice", **request_for(rp, response_type, response_mode="form_post")
    )
    assert response.status_code == 200 and "location" not in response.headers
    form = parse_page(response.text).form
    assert form.action == REDIRECT_URI and form.method == "post"
    fields = form.fields
    assert set(fields) == RETURNS[response_type] | {"state", "iss"}
    assert fields["state"] == "xyz" and fields["iss"] == ISSUER
    if "id_token" in fields:
        claims = await id_token_claims(http, fields["id_token"], rp)
        assert claims["nonce"] == NONCE
        assert claims.get("c_hash") == (half_hash(fields["code"]) if "code" in fields else None)
        assert claims.get("at_hash") == (
            half_hash(fields["access_token"]) if "access_token" in fields else None
        )


@pytest.mark.parametrize("response_type", ["code id_token", "code id_token token", "code token"])
async def test_a_hybrid_code_is_redeemed_for_an_id_token_about_the_same_sign_in(
    http: httpx.AsyncClient,
    rp: Credentials,
    alice: User,
    clock: FakeClock,
    response_type: str,
) -> None:
    await sign_in(http, "alice")
    signed_in_at = int(clock.now)
    clock.advance(3)
    front = redirect_params(
        await approved(http, "alice", **request_for(rp, response_type)),
        REDIRECT_URI,
        mode="fragment",
    )
    clock.advance(2)
    body = await redeem(http, rp, front["code"])
    assert body["access_token"] != front.get("access_token")
    claims = await id_token_claims(http, body["id_token"], rp)
    assert claims == {
        "iss": ISSUER,
        "sub": alice.user_id,
        "aud": rp.client_id,
        "iat": int(clock.now),
        "exp": int(clock.now) + 3600,
        "auth_time": signed_in_at,
        "nonce": NONCE,
        "amr": ["pwd"],
        "at_hash": half_hash(body["access_token"]),
    }
    if "id_token" in front:
        # §3.3.3.6: iss, sub and the claims about the authentication agree.
        first = await id_token_claims(http, front["id_token"], rp)
        for name in ("iss", "sub", "aud", "auth_time", "nonce", "amr"):
            assert first[name] == claims[name], name


@pytest.mark.parametrize("response_type", WITH_ID_TOKEN)
async def test_nonce_is_required_when_the_response_has_an_id_token(
    http: httpx.AsyncClient,
    rp: Credentials,
    alice: User,
    storage: RecordingStorage,
    response_type: str,
) -> None:
    await sign_in(http, "alice")
    params = request_for(rp, response_type)
    del params["nonce"]
    params_out = assert_redirect_error(
        await start(http, **params), "invalid_request", mode="fragment"
    )
    assert "nonce" in params_out["error_description"]
    assert storage.codes == [] and storage.tokens == []


@pytest.mark.parametrize("response_type", WITH_ID_TOKEN)
async def test_id_token_response_types_need_the_openid_scope(
    http: httpx.AsyncClient,
    rp: Credentials,
    alice: User,
    storage: RecordingStorage,
    response_type: str,
) -> None:
    await sign_in(http, "alice")
    response = await start(http, **request_for(rp, response_type, scope="profile read"))
    assert_redirect_error(response, "invalid_request", mode="fragment")
    assert storage.codes == [] and storage.tokens == []


@pytest.mark.parametrize("settings", [openid_settings()], ids=["implicit-off"])
@pytest.mark.parametrize("response_type", FRONT_CHANNEL_TYPES)
async def test_front_channel_types_are_unsupported_while_the_implicit_grant_is_off(
    http: httpx.AsyncClient, rp: Credentials, alice: User, response_type: str
) -> None:
    await sign_in(http, "alice")
    response = await start(http, **request_for(rp, response_type))
    assert_redirect_error(response, "unsupported_response_type", mode="fragment")


@pytest.mark.parametrize("response_type", FRONT_CHANNEL_TYPES)
async def test_a_client_without_the_implicit_grant_is_unauthorized_for_them(
    http: httpx.AsyncClient, server: AuthorizationServer, alice: User, response_type: str
) -> None:
    code_only = await _relying_party(
        server, "Code only", grant_types=["authorization_code", "refresh_token"]
    )
    await sign_in(http, "alice")
    response = await start(http, **request_for(code_only, response_type))
    assert_redirect_error(response, "unauthorized_client", mode="fragment")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            openid_settings(enabled_grants=WITH_IMPLICIT),
            ["code", "token", *FRONT_CHANNEL_TYPES],
        ),
        (openid_settings(), ["code"]),
        (
            openid_settings(enabled_grants=frozenset({"implicit"})),
            ["token", "id_token", "id_token token"],
        ),
    ],
    ids=["implicit-on", "implicit-off", "implicit-only"],
)
async def test_metadata_lists_exactly_the_enabled_response_types(
    http: httpx.AsyncClient, expected: list[str]
) -> None:
    oauth = (await http.get("/.well-known/oauth-authorization-server/oauth2")).json()
    openid = await http.get("/oauth2/.well-known/openid-configuration")
    assert openid.status_code == 200
    for metadata in (oauth, openid.json()):
        supported = metadata["response_types_supported"]
        assert sorted(supported) == sorted(expected)
        assert len(supported) == len(set(supported))
        assert metadata["id_token_signing_alg_values_supported"] == ["RS256", "ES256", "EdDSA"]
        assert metadata["jwks_uri"] == ISSUER + "/jwks"
        assert "openid" in metadata["scopes_supported"]


async def test_pkce_is_still_required_of_a_public_client_on_code_id_token(
    http: httpx.AsyncClient, spa: Credentials, alice: User, storage: RecordingStorage
) -> None:
    await sign_in(http, "alice")
    refused = await start(http, **request_for(spa, "code id_token"))
    assert_redirect_error(refused, "invalid_request", mode="fragment")
    assert storage.codes == []

    pkce = {"code_challenge": CHALLENGE, "code_challenge_method": "S256"}
    front = redirect_params(
        await approved(http, "alice", **request_for(spa, "code id_token", **pkce)),
        REDIRECT_URI,
        mode="fragment",
    )
    claims = await id_token_claims(http, front["id_token"], spa)
    assert claims["c_hash"] == half_hash(front["code"]) and claims["nonce"] == NONCE
    without = await exchange(http, front["code"], client_id=spa.client_id)
    assert without.status_code == 400 and without.json()["error"] == "invalid_grant"


async def test_a_public_client_redeems_its_hybrid_code_with_the_verifier(
    http: httpx.AsyncClient, spa: Credentials, alice: User
) -> None:
    pkce = {"code_challenge": CHALLENGE, "code_challenge_method": "S256"}
    front = redirect_params(
        await approved(http, "alice", **request_for(spa, "code id_token", **pkce)),
        REDIRECT_URI,
        mode="fragment",
    )
    first = await id_token_claims(http, front["id_token"], spa)
    assert first["c_hash"] == half_hash(front["code"])
    body = await redeem(http, spa, front["code"])
    claims = await id_token_claims(http, body["id_token"], spa)
    assert claims["sub"] == alice.user_id and claims["nonce"] == NONCE


# -- 4. prompt ---------------------------------------------------------------------


@pytest.mark.parametrize("response_type", ["code", "id_token", "code id_token"])
async def test_prompt_none_without_a_session_is_login_required(
    http: httpx.AsyncClient, rp: Credentials, response_type: str
) -> None:
    response = await start(http, **request_for(rp, response_type, prompt="none"))
    mode = "query" if response_type == "code" else "fragment"
    assert_redirect_error(response, "login_required", mode=mode)


async def test_prompt_none_when_consent_is_needed_is_consent_required(
    http: httpx.AsyncClient, rp: Credentials, alice: User
) -> None:
    await sign_in(http, "alice")
    response = await start(http, **request_for(rp, prompt="none"))
    assert_redirect_error(response, "consent_required")


async def test_prompt_none_with_a_session_and_remembered_consent_signs_in_silently(
    http: httpx.AsyncClient, rp: Credentials, alice: User, clock: FakeClock
) -> None:
    await sign_in(http, "alice")
    signed_in_at = int(clock.now)
    await remember_consent(http, rp, "alice")
    clock.advance(600)
    front = redirect_params(
        await start(http, **request_for(rp, "id_token", prompt="none")),
        REDIRECT_URI,
        mode="fragment",
    )
    claims = await id_token_claims(http, front["id_token"], rp)
    assert claims["auth_time"] == signed_in_at and claims["sub"] == alice.user_id
    assert_times(claims, clock)


async def test_prompt_login_signs_in_again_and_auth_time_is_the_new_sign_in(
    http: httpx.AsyncClient, rp: Credentials, alice: User, clock: FakeClock
) -> None:
    await remember_consent(http, rp, "alice")
    clock.advance(1000)
    response = await start(http, **request_for(rp, prompt="login"))
    target = redirect_target(response)
    assert target.startswith(LOGIN + "?")
    assert "prompt" not in query_of(query_of(target)["next"].partition("?")[2])

    clock.advance(20)
    signed_in = await sign_in(http, "alice", next_url=target)
    signed_in_again_at = int(clock.now)
    clock.advance(1)
    back = await http.get(redirect_target(signed_in))
    code = redirect_params(back, REDIRECT_URI)["code"]  # consent remembered: no page
    claims = await id_token_claims(http, (await redeem(http, rp, code))["id_token"], rp)
    assert claims["auth_time"] == signed_in_again_at


async def test_prompt_consent_shows_the_page_even_when_remembered(
    http: httpx.AsyncClient, rp: Credentials, alice: User
) -> None:
    await remember_consent(http, rp, "alice")
    assert redirect_params(await start(http, **request_for(rp)), REDIRECT_URI)["code"]
    page = await start(http, **request_for(rp, prompt="consent"))
    assert page.status_code == 200
    assert parse_page(page.text).title == "Authorize access"


# -- 5. max_age --------------------------------------------------------------------


async def test_a_sign_in_older_than_max_age_signs_in_again(
    http: httpx.AsyncClient, rp: Credentials, alice: User, clock: FakeClock
) -> None:
    await remember_consent(http, rp, "alice")
    clock.advance(120)
    too_old = await start(http, **request_for(rp, max_age="60"))
    target = redirect_target(too_old)
    assert target.startswith(LOGIN + "?")

    none = await start(http, **request_for(rp, max_age="60", prompt="none"))
    assert_redirect_error(none, "login_required")

    signed_in = await sign_in(http, "alice", next_url=target)
    signed_in_at = int(clock.now)
    code = redirect_params(await http.get(redirect_target(signed_in)), REDIRECT_URI)["code"]
    claims = await id_token_claims(http, (await redeem(http, rp, code))["id_token"], rp)
    assert claims["auth_time"] == signed_in_at


@pytest.mark.parametrize("age", ["120", "121", "300"])
async def test_a_sign_in_within_max_age_goes_straight_through(
    http: httpx.AsyncClient, rp: Credentials, alice: User, clock: FakeClock, age: str
) -> None:
    await sign_in(http, "alice")
    signed_in_at = int(clock.now)
    await remember_consent(http, rp, "alice")
    clock.advance(120)
    response = await start(http, **request_for(rp, max_age=age, prompt="none"))
    code = redirect_params(response, REDIRECT_URI)["code"]
    claims = await id_token_claims(http, (await redeem(http, rp, code))["id_token"], rp)
    assert claims["auth_time"] == signed_in_at  # Core §3.1.2.1: present when max_age is used


@pytest.mark.parametrize("age", ["abc", "-1", "1.5", " 60", "0x10", "1e3", "٣"])
async def test_max_age_must_be_a_non_negative_integer(
    http: httpx.AsyncClient, rp: Credentials, alice: User, age: str
) -> None:
    await sign_in(http, "alice")
    response = await start(http, **request_for(rp, max_age=age))
    assert_redirect_error(response, "invalid_request")


async def test_max_age_zero_always_signs_in_again(
    http: httpx.AsyncClient, rp: Credentials, alice: User
) -> None:
    await remember_consent(http, rp, "alice")
    response = await start(http, **request_for(rp, max_age="0"))
    assert redirect_target(response).startswith(LOGIN + "?")


async def test_max_age_zero_is_satisfied_by_the_sign_in_it_asked_for(
    http: httpx.AsyncClient, rp: Credentials, alice: User, clock: FakeClock
) -> None:
    await remember_consent(http, rp, "alice")
    clock.advance(10)
    target = redirect_target(await start(http, **request_for(rp, max_age="0")))
    signed_in = await sign_in(http, "alice", next_url=target)
    clock.advance(1)  # the browser follows the redirect a moment later
    back = await http.get(redirect_target(signed_in))
    assert redirect_params(back, REDIRECT_URI)["code"]


HOST_LOGIN = "https://app.example/login"


def hook_app(server: AuthorizationServer, auth_times: list[int | None]) -> OAuth2App:
    """A host that has someone signed in, and says when from ``auth_times[-1]``."""

    async def current_user(request: Request) -> ResourceOwner | None:
        return ResourceOwner(subject="host-user-42", name="Alice", auth_time=auth_times[-1])

    return OAuth2App(server, current_user=current_user, login_url=HOST_LOGIN)


async def back_from_the_hosts_login(http: httpx.AsyncClient, response: httpx.Response) -> str:
    """Follow the redirect to the host's login page back, and approve: the code."""
    target = redirect_target(response)
    assert target.startswith(HOST_LOGIN + "?"), target
    page = await http.get(query_of(target)["next"])
    assert parse_page(page.text).title == "Authorize access", page.text
    return redirect_params(await decide(http, page, "approve"), REDIRECT_URI)["code"]


async def test_max_age_with_a_hook_that_gives_no_auth_time_signs_in_anew(
    server: AuthorizationServer, rp: Credentials, clock: FakeClock
) -> None:
    async with mounted(hook_app(server, [None])) as http:
        response = await start(http, **request_for(rp, max_age="60"))
        sent_at = int(clock.now)
        assert "max_age" not in query_of(query_of(redirect_target(response))["next"])
        clock.advance(30)  # the person signs in at the host's login page
        code = await back_from_the_hosts_login(http, response)
        clock.advance(5)
        claims = await id_token_claims(http, (await redeem(http, rp, code))["id_token"], rp)
    assert claims["sub"] == "host-user-42"
    # Core §2: auth_time, required when max_age was asked; the time sent to sign in.
    assert claims["auth_time"] == sent_at


async def test_max_age_with_a_hook_that_gives_no_auth_time_is_login_required_for_prompt_none(
    server: AuthorizationServer, rp: Credentials
) -> None:
    async with mounted(hook_app(server, [None])) as http:
        response = await start(http, **request_for(rp, max_age="60", prompt="none"))
    assert_redirect_error(response, "login_required")


async def test_the_recorded_sign_in_time_grows_old_like_any_other(
    server: AuthorizationServer, rp: Credentials, clock: FakeClock
) -> None:
    async with mounted(hook_app(server, [None])) as http:
        await back_from_the_hosts_login(http, await start(http, **request_for(rp, max_age="60")))
        clock.advance(30)
        page = await start(http, **request_for(rp, max_age="60"))
        assert parse_page(page.text).title == "Authorize access"
        clock.advance(60)
        again = await start(http, **request_for(rp, max_age="60"))
    assert redirect_target(again).startswith(HOST_LOGIN + "?")


async def test_a_hooks_own_auth_time_wins_over_the_recorded_one(
    server: AuthorizationServer, rp: Credentials, clock: FakeClock
) -> None:
    auth_times: list[int | None] = [None]
    async with mounted(hook_app(server, auth_times)) as http:
        response = await start(http, **request_for(rp, max_age="60"))
        clock.advance(30)
        auth_times.append(int(clock.now))  # the host now says when it signed them in
        code = await back_from_the_hosts_login(http, response)
        claims = await id_token_claims(http, (await redeem(http, rp, code))["id_token"], rp)
    assert claims["auth_time"] == auth_times[-1]


async def test_a_hooks_fresh_auth_time_passes_straight_through(
    server: AuthorizationServer, rp: Credentials, clock: FakeClock
) -> None:
    signed_in_at = int(clock.now) - 10
    async with mounted(hook_app(server, [signed_in_at])) as http:
        page = await start(http, **request_for(rp, max_age="60"))
        assert parse_page(page.text).title == "Authorize access", page.text
        code = redirect_params(await decide(http, page, "approve"), REDIRECT_URI)["code"]
        claims = await id_token_claims(http, (await redeem(http, rp, code))["id_token"], rp)
    assert claims["auth_time"] == signed_in_at


async def test_a_hooks_old_auth_time_is_sent_to_sign_in(
    server: AuthorizationServer, rp: Credentials, clock: FakeClock
) -> None:
    async with mounted(hook_app(server, [int(clock.now) - 120])) as http:
        response = await start(http, **request_for(rp, max_age="60"))
    assert redirect_target(response).startswith(HOST_LOGIN + "?")


# -- 6. login_hint -----------------------------------------------------------------


@pytest.mark.parametrize("hint", ["alice", "alice@wonderland.example", '"><script>x()</script>'])
async def test_login_hint_prefills_the_username(
    http: httpx.AsyncClient, rp: Credentials, hint: str
) -> None:
    target = redirect_target(await start(http, **request_for(rp, login_hint=hint)))
    login = await http.get(target)
    assert login.status_code == 200
    assert parse_page(login.text).form.fields["username"] == hint
    assert "<script>x()" not in login.text


async def test_without_login_hint_the_username_is_empty(
    http: httpx.AsyncClient, rp: Credentials
) -> None:
    target = redirect_target(await start(http, **request_for(rp)))
    assert parse_page((await http.get(target)).text).form.fields["username"] == ""


# -- 7. id_token_hint --------------------------------------------------------------


async def test_id_token_hint_for_the_signed_in_user_passes(
    http: httpx.AsyncClient, rp: Credentials, alice: User
) -> None:
    hint = await issued_id_token(http, rp, "alice")
    response = await start(http, **request_for(rp, prompt="none", id_token_hint=hint))
    assert redirect_params(response, REDIRECT_URI)["code"]


async def test_an_es256_id_token_hint_passes(
    http: httpx.AsyncClient, server: AuthorizationServer, alice: User
) -> None:
    es = await _relying_party(server, "ES256 RP", id_token_signed_response_alg="ES256")
    hint = await issued_id_token(http, es, "alice")
    response = await start(http, **request_for(es, prompt="none", id_token_hint=hint))
    assert redirect_params(response, REDIRECT_URI)["code"]


async def test_id_token_hint_for_another_user_asks_for_a_sign_in(
    http: httpx.AsyncClient, rp: Credentials, alice: User, bob: User
) -> None:
    bobs = await issued_id_token(http, rp, "bob")
    await sign_in(http, "alice")  # now alice signs in on the same browser
    await remember_consent(http, rp, "alice")

    none = await start(http, **request_for(rp, prompt="none", id_token_hint=bobs))
    assert_redirect_error(none, "login_required")

    target = redirect_target(await start(http, **request_for(rp, id_token_hint=bobs)))
    assert target.startswith(LOGIN + "?")
    signed_in = await sign_in(http, "bob", next_url=target)
    code = redirect_params(await http.get(redirect_target(signed_in)), REDIRECT_URI)["code"]
    claims = await id_token_claims(http, (await redeem(http, rp, code))["id_token"], rp)
    assert claims["sub"] == bob.user_id


#: A key the server never saw, for tokens "from another server".
_FOREIGN_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _server_public_pem(jwks: Mapping[str, Any], kid: str) -> bytes:
    [entry] = [k for k in jwks["keys"] if k["kid"] == kid]
    public = jwt.PyJWK(entry).key
    pem: bytes = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem


def _hs256(header: Mapping[str, Any], claims: Mapping[str, Any], secret: bytes) -> str:
    signing_input = f"{b64_json(header)}.{b64_json(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def _flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


#: Ways to spoil a valid hint: (the valid hint, the JWK Set) -> the spoilt one.
Spoiler = Callable[[str, Mapping[str, Any]], str]


def _tampered_signature(hint: str, jwks: Mapping[str, Any]) -> str:
    head, payload, signature = hint.split(".")
    return f"{head}.{payload}.{_flip(signature, len(signature) // 2)}"


def _tampered_claims(hint: str, jwks: Mapping[str, Any]) -> str:
    header, claims, signature = segments(hint)
    return f"{b64_json(header)}.{b64_json({**claims, 'sub': 'someone-else'})}.{signature}"


def _foreign_key(same_kid: bool) -> Spoiler:
    def spoil(hint: str, jwks: Mapping[str, Any]) -> str:
        header, claims, _ = segments(hint)
        kid = header["kid"] if same_kid else "foreign-key"
        return jwt.encode(
            claims, _FOREIGN_KEY, algorithm="RS256", headers={"kid": kid, "typ": "JWT"}
        )

    return spoil


def _alg_none(keep_signature: bool) -> Spoiler:
    def spoil(hint: str, jwks: Mapping[str, Any]) -> str:
        header, claims, signature = segments(hint)
        none = {"alg": "none", "kid": header["kid"], "typ": "JWT"}
        return f"{b64_json(none)}.{b64_json(claims)}.{signature if keep_signature else ''}"

    return spoil


def _hmac_with_public_key(hint: str, jwks: Mapping[str, Any]) -> str:
    """The classic confusion: HS256 keyed with the server's public key as published."""
    header, claims, _ = segments(hint)
    pem = _server_public_pem(jwks, header["kid"])
    return _hs256({"alg": "HS256", "kid": header["kid"], "typ": "JWT"}, claims, pem)


def _hmac_with_public_jwk(hint: str, jwks: Mapping[str, Any]) -> str:
    header, claims, _ = segments(hint)
    [entry] = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    secret = json.dumps(entry).encode()
    return _hs256({"alg": "HS256", "kid": header["kid"], "typ": "JWT"}, claims, secret)


def _header_changed(**changes: object) -> Spoiler:
    def spoil(hint: str, jwks: Mapping[str, Any]) -> str:
        header, _, _ = segments(hint)
        _, payload, signature = hint.split(".")
        return f"{b64_json({**header, **changes})}.{payload}.{signature}"

    return spoil


def _embedded_jwk(hint: str, jwks: Mapping[str, Any]) -> str:
    """A foreign key's signature, that key carried in the header (CVE-2018-0114)."""
    header, claims, _ = segments(hint)
    public = jwt.algorithms.RSAAlgorithm.to_jwk(_FOREIGN_KEY.public_key(), as_dict=True)
    extra = {"kid": header["kid"], "typ": "JWT", "jwk": public}
    return jwt.encode(claims, _FOREIGN_KEY, algorithm="RS256", headers=extra)


def _es256_kid(hint: str, jwks: Mapping[str, Any]) -> str:
    """An RS256 signature by a foreign key, naming the server's ES256 key."""
    _, claims, _ = segments(hint)
    [es] = [k for k in jwks["keys"] if k["alg"] == "ES256"]
    return jwt.encode(claims, _FOREIGN_KEY, algorithm="RS256", headers={"kid": es["kid"]})


def _huge_header(hint: str, jwks: Mapping[str, Any]) -> str:
    header, _, _ = segments(hint)
    _, payload, signature = hint.split(".")
    return f"{b64_json({**header, 'x': 'a' * 20_000})}.{payload}.{signature}"


def _constant(value: str) -> Spoiler:
    return lambda hint, jwks: value


def _reshaped(build: Callable[[list[str]], list[str]]) -> Spoiler:
    return lambda hint, jwks: ".".join(build(hint.split(".")))


BAD_HINTS: dict[str, Spoiler] = {
    "tampered-signature": _tampered_signature,
    "tampered-claims": _tampered_claims,
    "foreign-key-same-kid": _foreign_key(same_kid=True),
    "foreign-key-other-kid": _foreign_key(same_kid=False),
    "embedded-jwk": _embedded_jwk,
    "alg-none": _alg_none(keep_signature=False),
    "alg-none-with-signature": _alg_none(keep_signature=True),
    "hs256-with-public-pem": _hmac_with_public_key,
    "hs256-with-public-jwk": _hmac_with_public_jwk,
    "alg-es256-on-an-rsa-key": _header_changed(alg="ES256"),
    "rs256-naming-the-es256-key": _es256_kid,
    "unknown-kid": _header_changed(kid="no-such-key"),
    "kid-not-a-string": _header_changed(kid=7),
    "no-kid": _header_changed(kid=None),
    "crit-header": _header_changed(crit=["exp"]),
    "typ-at+jwt-header": _header_changed(typ="at+jwt"),
    "bad-base64": _reshaped(lambda p: ["!!" + p[0][2:], p[1], p[2]]),
    "base64-padding": _reshaped(lambda p: [p[0] + "==", p[1], p[2]]),
    "payload-not-base64": _reshaped(lambda p: [p[0], "%%%%", p[2]]),
    "header-not-json": _reshaped(lambda p: [b64(b"{not json"), p[1], p[2]]),
    "header-a-list": _reshaped(lambda p: [b64_json(["RS256"]), p[1], p[2]]),
    "header-not-utf8": _reshaped(lambda p: [b64(b'{"alg":"\xff"}'), p[1], p[2]]),
    "header-deeply-nested": _reshaped(lambda p: [b64(b"[" * 380 + b"]" * 380), p[1], p[2]]),
    "two-segments": _reshaped(lambda p: p[:2]),
    "four-segments": _reshaped(lambda p: [*p, p[2]]),
    "five-segments-jwe": _reshaped(lambda p: [*p, "", ""]),
    "garbage": _constant("not-a-jwt"),
    "only-dots": _constant(".."),
    "huge-header": _huge_header,
    "huge-token": _reshaped(lambda p: [p[0], p[1] + "A" * 20_000, p[2]]),
}


@pytest.mark.parametrize("spoil", list(BAD_HINTS.values()), ids=list(BAD_HINTS))
async def test_a_bad_id_token_hint_is_invalid_request_and_issues_nothing(
    http: httpx.AsyncClient,
    rp: Credentials,
    alice: User,
    storage: RecordingStorage,
    spoil: Spoiler,
) -> None:
    hint = await issued_id_token(http, rp, "alice")
    codes, tokens = len(storage.codes), len(storage.tokens)
    bad = spoil(hint, await fetch_jwks(http))
    assert bad != hint
    response = await start(http, **request_for(rp, prompt="none", id_token_hint=bad))
    assert_redirect_error(response, "invalid_request")
    # the same in the fragment for a front-channel response type
    response = await start(http, **request_for(rp, "id_token", prompt="none", id_token_hint=bad))
    assert_redirect_error(response, "invalid_request", mode="fragment")
    assert len(storage.codes) == codes and len(storage.tokens) == tokens


async def test_an_expired_id_token_hint_is_invalid_request(
    http: httpx.AsyncClient, rp: Credentials, alice: User, clock: FakeClock
) -> None:
    hint = await issued_id_token(http, rp, "alice")
    _, claims, _ = segments(hint)
    clock.now = claims["exp"] + 60 - 1  # within the clock skew: still good
    response = await start(http, **request_for(rp, prompt="none", id_token_hint=hint))
    assert redirect_params(response, REDIRECT_URI)["code"]

    clock.now = claims["exp"] + 60 + 1
    response = await start(http, **request_for(rp, prompt="none", id_token_hint=hint))
    assert_redirect_error(response, "invalid_request")


async def test_an_id_token_hint_issued_to_another_client_is_invalid_request(
    http: httpx.AsyncClient,
    rp: Credentials,
    other_rp: Credentials,
    alice: User,
    storage: RecordingStorage,
) -> None:
    others = await issued_id_token(http, other_rp, "alice")
    await remember_consent(http, rp, "alice")
    codes = len(storage.codes)
    response = await start(http, **request_for(rp, prompt="none", id_token_hint=others))
    assert_redirect_error(response, "invalid_request")
    assert len(storage.codes) == codes


@pytest.mark.parametrize(
    "settings",
    [openid_settings(access_token_audience="jwt-rp")],
    ids=["jwt-access-tokens-for-jwt-rp"],
)
async def test_a_jwt_access_token_is_not_an_id_token_hint(
    http: httpx.AsyncClient, server: AuthorizationServer, alice: User, storage: RecordingStorage
) -> None:
    # A JWT access token for alice with aud = this client: only its typ tells it apart.
    client = await _relying_party(server, "JWT RP", client_id="jwt-rp", access_token_format="jwt")
    code = redirect_params(await remember_consent(http, client, "alice"), REDIRECT_URI)["code"]
    body = await redeem(http, client, code)
    access_token = body["access_token"]
    assert (await id_token_claims(http, body["id_token"], client))["sub"] == alice.user_id
    header, claims, _ = segments(access_token)
    assert header["typ"] == "at+jwt"
    assert claims["aud"] == "jwt-rp" and claims["sub"] == alice.user_id and claims["iss"] == ISSUER

    codes = len(storage.codes)
    response = await start(http, **request_for(client, prompt="none", id_token_hint=access_token))
    assert_redirect_error(response, "invalid_request")
    assert len(storage.codes) == codes


async def test_a_hint_signed_before_a_key_rotation_still_passes(
    http: httpx.AsyncClient, server: AuthorizationServer, rp: Credentials, alice: User
) -> None:
    hint = await issued_id_token(http, rp, "alice")
    old_kid = jwt.get_unverified_header(hint)["kid"]
    await server.rotate_signing_keys()
    response = await start(http, **request_for(rp, prompt="none", id_token_hint=hint))
    code = redirect_params(response, REDIRECT_URI)["code"]

    fresh = (await redeem(http, rp, code))["id_token"]
    assert jwt.get_unverified_header(fresh)["kid"] != old_kid
    assert (await id_token_claims(http, fresh, rp))["sub"] == alice.user_id
    assert old_kid in {k["kid"] for k in (await fetch_jwks(http))["keys"]}


@pytest.mark.parametrize(
    "settings", [Settings(issuer=ISSUER, enabled_grants=WITH_IMPLICIT)], ids=["oidc-off"]
)
async def test_without_openid_connect_id_token_types_are_unsupported_and_none_issued(
    http: httpx.AsyncClient, rp: Credentials, alice: User
) -> None:
    await sign_in(http, "alice")
    for response_type in WITH_ID_TOKEN:
        refused = await start(http, **request_for(rp, response_type))
        assert_redirect_error(refused, "unsupported_response_type", mode="fragment")
    response = await approved(http, "alice", **request_for(rp))
    body = await redeem(http, rp, redirect_params(response, REDIRECT_URI)["code"])
    assert "id_token" not in body
    assert (await http.get("/oauth2/jwks")).status_code == 404
    assert (await http.get("/oauth2/.well-known/openid-configuration")).status_code == 404


@pytest.mark.parametrize(
    "settings", [Settings(issuer=ISSUER, enabled_grants=WITH_IMPLICIT)], ids=["oidc-off"]
)
async def test_without_openid_connect_an_id_token_hint_is_refused_not_ignored(
    http: httpx.AsyncClient, rp: Credentials, alice: User, storage: RecordingStorage
) -> None:
    # No keys to check it with: ignoring it (RFC 6749 §3.1) could answer prompt=none
    # for someone other than the user the client named, so it is refused.
    await remember_consent(http, rp, "alice")
    codes = len(storage.codes)
    response = await start(http, **request_for(rp, prompt="none", id_token_hint="eyJ.eyJ.sig"))
    assert_redirect_error(response, "invalid_request")
    assert len(storage.codes) == codes


#: Claims signed with the server's own key that still make no valid hint for ``rp``.
SIGNED_BUT_WRONG: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "other-issuer": lambda c: {**c, "iss": "https://evil.example"},
    "no-issuer": lambda c: {k: v for k, v in c.items() if k != "iss"},
    "audience-list-without-client": lambda c: {**c, "aud": ["someone-else"]},
    "audience-not-a-string": lambda c: {**c, "aud": 7},
    "no-exp": lambda c: {k: v for k, v in c.items() if k != "exp"},
    "exp-a-string": lambda c: {**c, "exp": str(c["exp"])},
    "exp-true": lambda c: {**c, "exp": True},
    "exp-a-float": lambda c: {**c, "exp": c["exp"] + 0.5},
    "no-sub": lambda c: {k: v for k, v in c.items() if k != "sub"},
    "empty-sub": lambda c: {**c, "sub": ""},
    "sub-a-number": lambda c: {**c, "sub": 7},
}


@pytest.mark.parametrize("change", list(SIGNED_BUT_WRONG.values()), ids=list(SIGNED_BUT_WRONG))
async def test_an_id_token_hint_signed_by_us_is_still_checked_claim_by_claim(
    http: httpx.AsyncClient,
    server: AuthorizationServer,
    rp: Credentials,
    alice: User,
    change: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    # The server's own signer (not reachable over HTTP) makes tokens it would never issue.
    hint = await issued_id_token(http, rp, "alice")
    _, claims, _ = segments(hint)
    assert server.keys is not None
    forged = server.keys.sign(change(claims), alg="RS256", typ="JWT")
    response = await start(http, **request_for(rp, prompt="none", id_token_hint=forged))
    assert_redirect_error(response, "invalid_request")


async def test_an_id_token_hint_with_an_audience_list_naming_the_client_passes(
    http: httpx.AsyncClient, server: AuthorizationServer, rp: Credentials, alice: User
) -> None:
    hint = await issued_id_token(http, rp, "alice")
    _, claims, _ = segments(hint)
    assert server.keys is not None
    listed = server.keys.sign({**claims, "aud": ["x", rp.client_id]}, alg="RS256", typ="JWT")
    response = await start(http, **request_for(rp, prompt="none", id_token_hint=listed))
    assert redirect_params(response, REDIRECT_URI)["code"]


async def test_a_code_redeemed_twice_at_once_gives_one_id_token(
    http: httpx.AsyncClient, rp: Credentials, alice: User
) -> None:
    response = await approved(http, "alice", **request_for(rp, scope="openid profile"))
    code = redirect_params(response, REDIRECT_URI)["code"]
    results: list[httpx.Response] = []

    async def redeem_once() -> None:
        results.append(
            await exchange(http, code, client_id=rp.client_id, client_secret=rp.client_secret)
        )

    async with anyio.create_task_group() as group:
        group.start_soon(redeem_once)
        group.start_soon(redeem_once)
    assert sorted(r.status_code for r in results) == [200, 400]
    [ok] = [r for r in results if r.status_code == 200]
    [refused] = [r for r in results if r.status_code == 400]
    assert refused.json()["error"] == "invalid_grant" and "id_token" not in refused.json()
    assert (await id_token_claims(http, ok.json()["id_token"], rp))["sub"] == alice.user_id


# -- 8. bad input never 500s ---------------------------------------------------------


@pytest.mark.parametrize("response_type", ["code", "id_token"])
@pytest.mark.parametrize(("nonce", "ok"), [("n" * 512, True), ("n" * 513, False)])
async def test_nonce_length_is_bounded(
    http: httpx.AsyncClient,
    rp: Credentials,
    alice: User,
    response_type: str,
    nonce: str,
    ok: bool,
) -> None:
    await remember_consent(http, rp, "alice")
    response = await start(http, **request_for(rp, response_type, nonce=nonce))
    mode = "query" if response_type == "code" else "fragment"
    if not ok:
        assert_redirect_error(response, "invalid_request", mode=mode)
        return
    params = redirect_params(response, REDIRECT_URI, mode=mode)
    token = params.get("id_token") or (await redeem(http, rp, params["code"]))["id_token"]
    assert (await id_token_claims(http, token, rp))["nonce"] == nonce


async def test_an_empty_nonce_is_an_omitted_one(
    http: httpx.AsyncClient, rp: Credentials, alice: User
) -> None:
    # RFC 6749 §3.1: a parameter without a value is treated as omitted.
    await remember_consent(http, rp, "alice")
    refused = await start(http, **request_for(rp, "id_token", nonce=""))
    assert_redirect_error(refused, "invalid_request", mode="fragment")
    code = redirect_params(await start(http, **request_for(rp, nonce="")), REDIRECT_URI)["code"]
    claims = await id_token_claims(http, (await redeem(http, rp, code))["id_token"], rp)
    assert "nonce" not in claims


async def test_an_empty_id_token_hint_is_an_omitted_one(
    http: httpx.AsyncClient, rp: Credentials, alice: User
) -> None:
    await remember_consent(http, rp, "alice")
    response = await start(http, **request_for(rp, prompt="none", id_token_hint=""))
    assert redirect_params(response, REDIRECT_URI)["code"]


@pytest.mark.parametrize("nonce", ["ünïcødé ✓", "a\tb\nc", "<script>", "a&b=c#d"])
async def test_odd_nonces_are_echoed_exactly(
    http: httpx.AsyncClient, rp: Credentials, alice: User, nonce: str
) -> None:
    await remember_consent(http, rp, "alice")
    response = await start(http, **request_for(rp, "id_token", nonce=nonce))
    params = redirect_params(response, REDIRECT_URI, mode="fragment")
    assert (await id_token_claims(http, params["id_token"], rp))["nonce"] == nonce


async def test_a_nonce_with_a_nul_is_refused_on_the_error_page(
    http: httpx.AsyncClient, rp: Credentials, alice: User
) -> None:
    await remember_consent(http, rp, "alice")
    response = await start(http, **request_for(rp, "id_token", nonce="a\x00b"))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "must not contain NUL" in response.text


async def test_a_repeated_nonce_is_invalid_request(
    http: httpx.AsyncClient, rp: Credentials, alice: User
) -> None:
    await sign_in(http, "alice")
    params = request_for(rp, "id_token")
    query = httpx.QueryParams(params).add("nonce", "another")
    response = await http.get(AUTHORIZE, params=query)
    assert_redirect_error(response, "invalid_request", mode="fragment")


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("request", "eyJhbGciOiJub25lIn0.eyJub25jZSI6Im90aGVyIn0.", "request_not_supported"),
        ("request_uri", "https://app.example/request.jwt", "request_uri_not_supported"),
    ],
    ids=["request", "request_uri"],
)
async def test_an_unsupported_request_object_is_refused_not_ignored(
    http: httpx.AsyncClient,
    rp: Credentials,
    alice: User,
    storage: RecordingStorage,
    name: str,
    value: str,
    error: str,
) -> None:
    await remember_consent(http, rp, "alice")
    codes = len(storage.codes)
    response = await start(http, **request_for(rp, "code id_token", **{name: value}))
    assert_redirect_error(response, error, mode="fragment")
    assert len(storage.codes) == codes


@pytest.mark.parametrize("response_type", WITH_ID_TOKEN)
async def test_form_post_carries_the_refusal_of_a_missing_nonce(
    http: httpx.AsyncClient, rp: Credentials, alice: User, response_type: str
) -> None:
    await sign_in(http, "alice")
    params = request_for(rp, response_type, response_mode="form_post")
    del params["nonce"]
    response = await start(http, **params)
    assert response.status_code == 200 and "location" not in response.headers
    fields = parse_page(response.text).form.fields
    assert fields["error"] == "invalid_request" and fields["state"] == "xyz"
    assert not {"code", "access_token", "id_token"} & set(fields)


@pytest.mark.parametrize(
    ("response_type", "mode"),
    [
        # words with a token in them: refused in the fragment
        ("code  id_token", "fragment"),
        (" code id_token", "fragment"),
        ("code id_token ", "fragment"),
        ("code id_token token none", "fragment"),
        # no recognisable word: refused in the query, the default
        ("code\tid_token", "query"),
        ("id_token+token", "query"),
        ("ID_TOKEN", "query"),
        (" ", "query"),
    ],
)
async def test_odd_response_types_are_unsupported_never_a_500(
    http: httpx.AsyncClient, rp: Credentials, alice: User, response_type: str, mode: str
) -> None:
    await remember_consent(http, rp, "alice")
    response = await start(http, **request_for(rp, response_type))
    assert_redirect_error(response, "unsupported_response_type", mode=mode)


@pytest.mark.parametrize(
    ("response_type", "mode", "field"),
    [("code code", "query", "code"), ("id_token id_token", "fragment", "id_token")],
)
async def test_a_repeated_word_of_a_response_type_counts_once(
    http: httpx.AsyncClient, rp: Credentials, alice: User, response_type: str, mode: str, field: str
) -> None:
    await remember_consent(http, rp, "alice")
    response = await start(http, **request_for(rp, response_type))
    params = redirect_params(response, REDIRECT_URI, mode=mode)
    assert set(params) == {field, "state", "iss"}
    token = params.get("id_token") or (await redeem(http, rp, params["code"]))["id_token"]
    assert (await id_token_claims(http, token, rp))["nonce"] == NONCE
