"""The fake upstream identity providers behave as the sign-in tests rely on.

Each fake runs under uvicorn on loopback (``serve_upstream``) and is driven with httpx,
as the relying party will drive it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from joserfc.errors import BadSignatureError, InvalidClaimError

from .servers.upstreams import DELETE, FakeOpenIDProvider, GitHubLike
from .upstream_helpers import (
    pkce_pair,
    query_of,
    serve_upstream,
    upstream_redirect,
    verify_id_token,
)

pytestmark = pytest.mark.anyio

CALLBACK = "http://rp.example/callback"
JSON = {"Accept": "application/json"}


@pytest.fixture
def github() -> Iterator[GitHubLike]:
    with serve_upstream(GitHubLike({"gh-app": ("gh-secret", CALLBACK)})) as fake:
        yield fake


@pytest.fixture
def op() -> Iterator[FakeOpenIDProvider]:
    fake = FakeOpenIDProvider()
    fake.add_client("rp", "rp-secret", CALLBACK)
    fake.add_client("spa", None, CALLBACK)
    with serve_upstream(fake) as served:
        yield served


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


async def github_code(http: httpx.AsyncClient, github: GitHubLike, challenge: str) -> str:
    query = {"client_id": "gh-app", "redirect_uri": CALLBACK, "scope": "read:user user:email"}
    query.update(state="st-1", code_challenge=challenge, code_challenge_method="S256")
    url = str(httpx.URL(f"{github.base_url}/login/oauth/authorize", params=query))
    back = query_of(await upstream_redirect(http, url))
    assert back["state"] == "st-1"
    return back["code"]


async def test_github_round_trip_with_pkce_answers_json_when_asked(
    http: httpx.AsyncClient, github: GitHubLike
) -> None:
    verifier, challenge = pkce_pair()
    code = await github_code(http, github, challenge)
    assert github.authorize_requests[0]["code_challenge"] == challenge
    assert github.authorize_requests[0]["scope"] == "read:user user:email"
    form = {"code": code, "redirect_uri": CALLBACK, "code_verifier": verifier}
    token = await http.post(
        f"{github.base_url}/login/oauth/access_token",
        data=form,
        auth=("gh-app", "gh-secret"),
        headers=JSON,
    )
    assert token.headers["content-type"] == "application/json"
    body = token.json()
    assert body["token_type"] == "bearer"
    assert body["scope"] == "read:user,user:email"  # GitHub joins scopes with commas
    assert "expires_in" not in body
    api = {"Authorization": f"token {body['access_token']}"}  # GitHub's own scheme
    user = await http.get(f"{github.base_url}/user", headers=api)
    assert (user.json()["id"], user.json()["login"]) == (583231, "octocat")
    emails = await http.get(f"{github.base_url}/user/emails", headers=api)
    assert emails.json()[0]["primary"] is True
    orgs = await http.get(f"{github.base_url}/user/orgs", headers=api)
    assert orgs.json() == [{"login": "acme", "id": 1}]
    again = await http.post(
        f"{github.base_url}/login/oauth/access_token",
        data={**form, "client_id": "gh-app", "client_secret": "gh-secret"},
        headers=JSON,
    )
    assert (again.status_code, again.json()["error"]) == (200, "bad_verification_code")
    assert github.token_requests == 2


async def test_github_wrong_verifier_is_a_200_form_encoded_error(
    http: httpx.AsyncClient, github: GitHubLike
) -> None:
    _, challenge = pkce_pair()
    code = await github_code(http, github, challenge)
    form = {"client_id": "gh-app", "client_secret": "gh-secret", "code": code}
    answer = await http.post(
        f"{github.base_url}/login/oauth/access_token",
        data={**form, "code_verifier": pkce_pair()[0]},
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(answer.text))["error"] == "bad_verification_code"


async def test_github_expiring_tokens_rotate_and_expire(
    http: httpx.AsyncClient, github: GitHubLike
) -> None:
    now = [1_700_000_000.0]
    github.clock = lambda: now[0]
    github.expiring_tokens = True
    verifier, challenge = pkce_pair()
    code = await github_code(http, github, challenge)
    endpoint = f"{github.base_url}/login/oauth/access_token"
    auth = ("gh-app", "gh-secret")
    form = {"code": code, "code_verifier": verifier}
    first = dict(parse_qsl((await http.post(endpoint, data=form, auth=auth)).text))
    assert (first["expires_in"], first["refresh_token"][:4]) == ("28800", "ghr_")
    refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    second = (await http.post(endpoint, data=refresh, auth=auth, headers=JSON)).json()
    assert second["refresh_token"] != first["refresh_token"]
    reused = (await http.post(endpoint, data=refresh, auth=auth, headers=JSON)).json()
    assert reused["error"] == "bad_refresh_token"
    now[0] += 28801
    api = {"Authorization": f"Bearer {second['access_token']}"}
    expired = await http.get(f"{github.base_url}/user", headers=api)
    assert (expired.status_code, expired.json()) == (401, {"message": "Bad credentials"})


async def test_github_refusals_denial_and_outage(
    http: httpx.AsyncClient, github: GitHubLike
) -> None:
    authorize = f"{github.base_url}/login/oauth/authorize"
    unknown = await http.get(authorize, params={"client_id": "nobody"})
    elsewhere = await http.get(
        authorize, params={"client_id": "gh-app", "redirect_uri": "http://evil.example/cb"}
    )
    assert (unknown.status_code, elsewhere.status_code) == (400, 400)
    github.deny = True
    denied = query_of(await upstream_redirect(http, f"{authorize}?client_id=gh-app&state=s2"))
    assert (denied["error"], denied["state"]) == ("access_denied", "s2")
    github.down = True
    assert (await http.get(authorize)).status_code == 503


async def test_op_discovery(http: httpx.AsyncClient, op: FakeOpenIDProvider) -> None:
    url = f"{op.base_url}/.well-known/openid-configuration"
    metadata = (await http.get(url)).json()
    assert metadata["issuer"] == op.base_url
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    jwks = (await http.get(metadata["jwks_uri"])).json()
    assert [key["kid"] for key in jwks["keys"]] == [op.key.kid]
    assert "d" not in jwks["keys"][0]
    op.metadata_issuer = "https://elsewhere.example"
    assert (await http.get(url)).json()["issuer"] == "https://elsewhere.example"


async def op_sign_in(
    http: httpx.AsyncClient, op: FakeOpenIDProvider, *, client: str = "rp", **extra: str
) -> tuple[dict[str, str], str]:
    """Through ``/authorize``: the callback's query and the PKCE verifier."""
    verifier, challenge = pkce_pair()
    query = {"client_id": client, "redirect_uri": CALLBACK, "response_type": "code"}
    query.update(scope="openid email offline_access", state="st", nonce="n-0S6")
    query.update(code_challenge=challenge, code_challenge_method="S256", **extra)
    url = str(httpx.URL(f"{op.base_url}/authorize", params=query))
    return query_of(await upstream_redirect(http, url)), verifier


async def op_tokens(
    http: httpx.AsyncClient, op: FakeOpenIDProvider, code: str, verifier: str
) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    form["code_verifier"] = verifier
    return await http.post(f"{op.base_url}/token", data=form, auth=("rp", "rp-secret"))


async def test_op_code_flow_id_token_verifies_with_nonce_and_aud(
    http: httpx.AsyncClient, op: FakeOpenIDProvider
) -> None:
    back, verifier = await op_sign_in(http, op, max_age="60")
    assert (back["state"], back["iss"]) == ("st", op.base_url)  # RFC 9207 §2
    assert op.codes[back["code"]].max_age == "60"
    tokens = (await op_tokens(http, op, back["code"], verifier)).json()
    assert tokens["token_type"] == "Bearer"
    jwks = (await http.get(f"{op.base_url}/jwks")).json()
    claims = verify_id_token(
        tokens["id_token"], jwks, issuer=op.base_url, audience="rp", nonce="n-0S6"
    )
    assert (claims["sub"], claims["azp"]) == ("248289761001", "rp")
    assert claims["email"] == "janedoe@example.com"
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    userinfo = (await http.get(f"{op.base_url}/userinfo", headers=bearer)).json()
    assert userinfo["sub"] == claims["sub"]
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    renewed = await http.post(f"{op.base_url}/token", data=refresh, auth=("rp", "rp-secret"))
    assert renewed.json()["refresh_token"] != tokens["refresh_token"]
    assert (await op_tokens(http, op, back["code"], verifier)).json()["error"] == "invalid_grant"


async def test_op_token_errors(http: httpx.AsyncClient, op: FakeOpenIDProvider) -> None:
    back, verifier = await op_sign_in(http, op)
    form = {"grant_type": "authorization_code", "code": back["code"], "code_verifier": verifier}
    wrong = await http.post(f"{op.base_url}/token", data=form, auth=("rp", "not-it"))
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    other_client = await http.post(f"{op.base_url}/token", data={**form, "client_id": "spa"})
    assert (other_client.status_code, other_client.json()["error"]) == (400, "invalid_grant")
    bare = {"client_id": "spa", "response_type": "code", "redirect_uri": CALLBACK}
    back = query_of(
        await upstream_redirect(http, str(httpx.URL(f"{op.base_url}/authorize", params=bare)))
    )
    no_pkce = {"grant_type": "authorization_code", "code": back["code"], "client_id": "spa"}
    refused = await http.post(f"{op.base_url}/token", data=no_pkce)
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")


def header_of(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


async def test_op_knobs_bend_what_it_says(http: httpx.AsyncClient, op: FakeOpenIDProvider) -> None:
    jwks = (await http.get(f"{op.base_url}/jwks")).json()

    async def id_token() -> str:
        back, verifier = await op_sign_in(http, op)
        token: str = (await op_tokens(http, op, back["code"], verifier)).json()["id_token"]
        return token

    def verify(token: str) -> dict[str, Any]:
        return verify_id_token(token, jwks, issuer=op.base_url, audience="rp", nonce="n-0S6")

    op.id_token_overrides = {"aud": "other"}
    with pytest.raises(InvalidClaimError):
        verify(await id_token())
    op.id_token_overrides = {"nonce": DELETE, "groups": ["admins"]}
    bent = verify_id_token(await id_token(), jwks, issuer=op.base_url, audience="rp", nonce=None)
    assert ("nonce" in bent, bent["groups"]) == (False, ["admins"])
    op.id_token_overrides = {}
    op.sign_with_foreign_key = True
    foreign = await id_token()
    assert header_of(foreign)["kid"] == op.key.kid
    with pytest.raises(BadSignatureError):
        verify(foreign)
    op.sign_with_foreign_key, op.alg_none = False, True
    unsigned = await id_token()
    assert (header_of(unsigned), unsigned.endswith(".")) == ({"alg": "none"}, True)
    op.response_iss = "https://evil.example"
    assert (await op_sign_in(http, op))[0]["iss"] == "https://evil.example"
    op.response_iss = None
    assert "iss" not in (await op_sign_in(http, op))[0]
    back, verifier = await op_sign_in(http, op)
    access = (await op_tokens(http, op, back["code"], verifier)).json()["access_token"]
    op.userinfo_overrides = {"sub": "someone-else"}
    userinfo = await http.post(
        f"{op.base_url}/userinfo", headers={"Authorization": f"Bearer {access}"}
    )
    assert userinfo.json()["sub"] == "someone-else"
