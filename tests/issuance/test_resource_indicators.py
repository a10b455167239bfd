"""Resource indicators (RFC 8707) over HTTP: ``resource`` at the authorization, device
authorization and token endpoints, and what it does to the tokens' audience.

§2: each ``resource`` is an absolute URI without a fragment, the parameter may
repeat, and one the server does not know is ``invalid_target``. §2.1: the
resources asked for at ``/authorize`` go with the code. §2.2: a token request
may narrow them, never widen them; the access token's audience is what it is
for, the refresh token keeps the grant's. Audiences are read back through the
introspection endpoint, from JWT access tokens verified with PyJWT, and from
``BearerTokenMiddleware`` guarding one resource.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_oauth import AuthorizationServer, Settings, User
from asgi_oauth.crypto import hash_token
from asgi_oauth.middleware import BearerTokenMiddleware, BearerUser
from asgi_oauth.types import DEVICE_CODE

from .. import device_helpers
from ..conftest import ISSUER, REDIRECT_URI, Credentials
from ..dpop_helpers import (
    LedgerStorage,
    authorization_code,
    authorize_url,
    error_of,
    introspect,
    query_of,
    token_request,
)
from ..openid_helpers import KEK, decode, fetch_jwks

pytestmark = pytest.mark.anyio

API = "https://api.example/v1"
FILES = "https://files.example/"
CALENDAR = "https://calendar.example/api"
#: Known to no server here.
ELSEWHERE = "https://elsewhere.example/api"
RESOURCES = (API, FILES, CALENDAR)
JWT_SETTINGS = Settings(
    issuer=ISSUER, resources=RESOURCES, key_encryption_key=KEK, access_token_format="jwt"
)


@pytest.fixture
def settings() -> Settings:
    return Settings(issuer=ISSUER, resources=RESOURCES)


def code_request(client: Credentials, *resources: str) -> list[tuple[str, str]]:
    """The confidential client's code request, with one ``resource`` per resource."""
    params = [
        ("client_id", client.client_id),
        ("response_type", "code"),
        ("scope", "read"),
        ("state", "xyz"),
    ]
    return params + [("resource", r) for r in resources]


def with_resources(form: dict[str, str], *resources: str) -> list[tuple[str, str]]:
    return [*form.items(), *(("resource", r) for r in resources)]


async def issued(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def redeem(
    http: httpx.AsyncClient, client: Credentials, code: str, *resources: str
) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code}
    return await token_request(http, client, with_resources(form, *resources))


async def refresh(
    http: httpx.AsyncClient, client: Credentials, refresh_token: str, *resources: str
) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return await token_request(http, client, with_resources(form, *resources))


async def client_credentials(
    http: httpx.AsyncClient, client: Credentials, *resources: str
) -> httpx.Response:
    form = {"grant_type": "client_credentials", "scope": "read"}
    return await token_request(http, client, with_resources(form, *resources))


async def audience_of(http: httpx.AsyncClient, resource_server: Credentials, token: str) -> object:
    """The ``aud`` introspection reports for an active token; None when it has none."""
    described = await introspect(http, resource_server, token)
    assert described["active"] is True, described
    return described.get("aud")


def assert_invalid_target(response: httpx.Response, description: str) -> None:
    """A ``invalid_target`` redirect to the client (§2), with ``state`` and no code."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.partition("?")[0] == REDIRECT_URI, location
    params = query_of(location)
    assert params["error"] == "invalid_target", params
    assert description in params["error_description"], params
    assert params["state"] == "xyz"
    assert params["iss"] == ISSUER
    assert "code" not in params


# -- §2.1: the authorization endpoint -----------------------------------------------------------


@pytest.mark.parametrize(
    ("resources", "audience"),
    [((API,), API), ((API, FILES), [API, FILES])],
    ids=["one", "several"],
)
async def test_the_resources_asked_for_go_with_the_code_and_become_the_audience(
    http: httpx.AsyncClient,
    server: AuthorizationServer,
    confidential: Credentials,
    resource_server: Credentials,
    alice: User,
    resources: tuple[str, ...],
    audience: object,
) -> None:
    code = await authorization_code(http, code_request(confidential, *resources))
    stored = await server.storage.get_authorization_code(hash_token(code))
    assert stored is not None and stored.resource == resources

    tokens = await issued(await redeem(http, confidential, code))
    assert await audience_of(http, resource_server, tokens["access_token"]) == audience


async def test_a_resource_asked_for_twice_is_one_audience(
    http: httpx.AsyncClient,
    confidential: Credentials,
    resource_server: Credentials,
    alice: User,
) -> None:
    code = await authorization_code(http, code_request(confidential, API, API))
    tokens = await issued(await redeem(http, confidential, code))
    assert await audience_of(http, resource_server, tokens["access_token"]) == API


@pytest.mark.parametrize(
    ("resource", "description"),
    [
        (ELSEWHERE, "unknown resource"),
        ("/v1", "absolute URI"),
        ("api.example/v1", "absolute URI"),
        (API + "#section", "without a fragment"),
    ],
    ids=["unknown", "relative", "no-scheme", "fragment"],
)
async def test_a_resource_not_acceptable_is_sent_back_as_invalid_target(
    http: httpx.AsyncClient,
    confidential: Credentials,
    alice: User,
    resource: str,
    description: str,
) -> None:
    response = await http.get(authorize_url(code_request(confidential, API, resource)))
    assert_invalid_target(response, description)


async def test_a_request_without_resource_gives_a_token_without_audience(
    http: httpx.AsyncClient,
    server: AuthorizationServer,
    confidential: Credentials,
    resource_server: Credentials,
    alice: User,
) -> None:
    code = await authorization_code(http, code_request(confidential))
    stored = await server.storage.get_authorization_code(hash_token(code))
    assert stored is not None and stored.resource == ()
    tokens = await issued(await redeem(http, confidential, code))
    assert await audience_of(http, resource_server, tokens["access_token"]) is None


# -- §2.2: the token endpoint, redeeming a code ---------------------------------------------------


async def test_a_token_request_narrows_the_codes_resources(
    http: httpx.AsyncClient,
    confidential: Credentials,
    resource_server: Credentials,
    alice: User,
) -> None:
    code = await authorization_code(http, code_request(confidential, API, FILES))
    tokens = await issued(await redeem(http, confidential, code, FILES))
    assert await audience_of(http, resource_server, tokens["access_token"]) == FILES

    # The grant still covers both: the refresh token gets a token for the other one.
    refreshed = await issued(await refresh(http, confidential, tokens["refresh_token"], API))
    assert await audience_of(http, resource_server, refreshed["access_token"]) == API


@pytest.mark.parametrize("outside", [CALENDAR, ELSEWHERE], ids=["not-in-the-code", "unknown"])
async def test_a_token_request_for_a_resource_outside_the_code_is_invalid_target(
    http: httpx.AsyncClient,
    ledger: LedgerStorage,
    confidential: Credentials,
    resource_server: Credentials,
    alice: User,
    outside: str,
) -> None:
    code = await authorization_code(http, code_request(confidential, API, FILES))
    refused = await redeem(http, confidential, code, API, outside)
    assert error_of(refused) == "invalid_target"
    assert "access_token" not in refused.json()
    assert ledger.tokens == []

    # The refusal does not spend the code: the same code, asked rightly, is redeemed.
    tokens = await issued(await redeem(http, confidential, code, API))
    assert await audience_of(http, resource_server, tokens["access_token"]) == API


async def test_a_code_without_resources_may_be_redeemed_for_a_known_one(
    http: httpx.AsyncClient,
    confidential: Credentials,
    resource_server: Credentials,
    alice: User,
) -> None:
    code = await authorization_code(http, code_request(confidential))
    tokens = await issued(await redeem(http, confidential, code, CALENDAR))
    assert await audience_of(http, resource_server, tokens["access_token"]) == CALENDAR


# -- §2.2: refreshing -----------------------------------------------------------------------------


async def test_a_refresh_narrows_the_access_token_and_the_refresh_token_keeps_the_grant(
    http: httpx.AsyncClient,
    confidential: Credentials,
    resource_server: Credentials,
    alice: User,
) -> None:
    code = await authorization_code(http, code_request(confidential, API, FILES))
    tokens = await issued(await redeem(http, confidential, code))

    narrowed = await issued(await refresh(http, confidential, tokens["refresh_token"], API))
    assert await audience_of(http, resource_server, narrowed["access_token"]) == API
    assert await audience_of(http, resource_server, narrowed["refresh_token"]) == [API, FILES]

    # A refresh asking for nothing gets the whole grant again.
    whole = await issued(await refresh(http, confidential, narrowed["refresh_token"]))
    assert await audience_of(http, resource_server, whole["access_token"]) == [API, FILES]


@pytest.mark.parametrize("wider", [CALENDAR, ELSEWHERE], ids=["known", "unknown"])
async def test_a_refresh_for_a_resource_outside_the_grant_is_invalid_target(
    http: httpx.AsyncClient,
    ledger: LedgerStorage,
    confidential: Credentials,
    resource_server: Credentials,
    alice: User,
    wider: str,
) -> None:
    code = await authorization_code(http, code_request(confidential, API))
    tokens = await issued(await redeem(http, confidential, code))
    saved = len(ledger.tokens)

    refused = await refresh(http, confidential, tokens["refresh_token"], API, wider)
    assert error_of(refused) == "invalid_target"
    assert len(ledger.tokens) == saved
    # The refresh token is not rotated out by the refusal.
    assert (await introspect(http, resource_server, tokens["refresh_token"]))["active"] is True


# -- other grants ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resources", "audience"),
    [((FILES,), FILES), ((API, CALENDAR), [API, CALENDAR]), ((), None)],
    ids=["one", "several", "none"],
)
async def test_client_credentials_with_resources(
    http: httpx.AsyncClient,
    confidential: Credentials,
    resource_server: Credentials,
    resources: tuple[str, ...],
    audience: object,
) -> None:
    tokens = await issued(await client_credentials(http, confidential, *resources))
    assert await audience_of(http, resource_server, tokens["access_token"]) == audience


@pytest.mark.parametrize("resource", [ELSEWHERE, "/v1", API + "#x"])
async def test_client_credentials_for_an_unacceptable_resource_is_invalid_target(
    http: httpx.AsyncClient, ledger: LedgerStorage, confidential: Credentials, resource: str
) -> None:
    assert error_of(await client_credentials(http, confidential, resource)) == "invalid_target"
    assert ledger.tokens == []


async def test_one_resource_value_with_a_space_is_not_two_resources(
    http: httpx.AsyncClient, ledger: LedgerStorage, confidential: Credentials
) -> None:
    # §2: the value is one absolute URI; "API FILES" is none.
    response = await client_credentials(http, confidential, f"{API} {FILES}")
    assert error_of(response) == "invalid_target"
    assert ledger.tokens == []


async def test_device_authorization_with_a_resource(
    http: httpx.AsyncClient, server: AuthorizationServer, resource_server: Credentials, alice: User
) -> None:
    registered = await server.register_client(
        name="TV", grant_types=[DEVICE_CODE], scope=["read"], public=True
    )
    tv = Credentials(registered.client.client_id, None)
    started = await device_helpers.start_ok(http, tv, scope="read", resource=CALENDAR)
    signed_in = await device_helpers.sign_in(http)
    assert signed_in.status_code == 200, signed_in.text
    decided = await device_helpers.decide(http, started["user_code"], "approve")
    assert decided.status_code == 200, decided.text

    tokens = await issued(await device_helpers.poll(http, tv, started["device_code"]))
    assert await audience_of(http, resource_server, tokens["access_token"]) == CALENDAR


async def test_device_authorization_for_an_unknown_resource_is_invalid_target(
    http: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    registered = await server.register_client(
        name="TV", grant_types=[DEVICE_CODE], scope=["read"], public=True
    )
    tv = Credentials(registered.client.client_id, None)
    response = await device_helpers.start(http, tv, scope="read", resource=ELSEWHERE)
    assert error_of(response) == "invalid_target"
    assert "device_code" not in response.json()


# -- JWT access tokens (RFC 9068 §3: aud) ---------------------------------------------------------


@pytest.mark.parametrize("settings", [JWT_SETTINGS], ids=["jwt"])
@pytest.mark.parametrize(
    ("resources", "audience"),
    [((FILES,), FILES), ((API, FILES), [API, FILES]), ((), ISSUER)],
    ids=["one", "several", "none-is-the-default"],
)
async def test_a_jwt_access_token_is_for_the_resources_asked_for(
    http: httpx.AsyncClient,
    confidential: Credentials,
    resources: tuple[str, ...],
    audience: object,
) -> None:
    tokens = await issued(await client_credentials(http, confidential, *resources))
    jwks = await fetch_jwks(http)
    # Verified for one of its audiences, as a resource server verifies it.
    claims = decode(
        tokens["access_token"], jwks, audience=(resources or (ISSUER,))[0], verify_exp=False
    )
    assert claims["aud"] == audience


@pytest.mark.parametrize("settings", [JWT_SETTINGS], ids=["jwt"])
async def test_a_jwt_access_token_from_a_code_is_narrowed_as_asked(
    http: httpx.AsyncClient, confidential: Credentials, alice: User
) -> None:
    code = await authorization_code(http, code_request(confidential, API, FILES))
    tokens = await issued(await redeem(http, confidential, code, API))
    claims = decode(tokens["access_token"], await fetch_jwks(http), audience=API, verify_exp=False)
    assert claims["aud"] == API


# -- a resource server guarding one resource ------------------------------------------------------


async def whoami(request: Request) -> JSONResponse:
    user = request.user
    assert isinstance(user, BearerUser)
    return JSONResponse({"client_id": user.client_id})


@pytest.fixture
async def api(server: AuthorizationServer) -> AsyncIterator[httpx.AsyncClient]:
    """A tiny API for ``API`` on the same server, behind ``BearerTokenMiddleware``."""
    app = BearerTokenMiddleware(
        Starlette(routes=[Route("/v1/me", whoami)]), introspector=server, resource=API
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.example") as client:
        yield client


@pytest.mark.parametrize(
    "settings",
    [Settings(issuer=ISSUER, resources=RESOURCES), JWT_SETTINGS],
    ids=["opaque", "jwt"],
)
@pytest.mark.parametrize(
    ("resources", "status"),
    [((API,), 200), ((FILES, API), 200), ((), 200), ((FILES,), 401), ((FILES, CALENDAR), 401)],
    ids=["this-one", "a-list-naming-it", "no-resource", "another", "others"],
)
async def test_the_resource_server_takes_only_tokens_meant_for_it(
    http: httpx.AsyncClient,
    api: httpx.AsyncClient,
    confidential: Credentials,
    resources: tuple[str, ...],
    status: int,
) -> None:
    token = (await issued(await client_credentials(http, confidential, *resources)))["access_token"]
    response = await api.get("/v1/me", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json() == {"client_id": confidential.client_id}
    else:
        assert response.json()["error"] == "invalid_token"
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_code_flow_token_reaches_only_its_resource(
    http: httpx.AsyncClient,
    api: httpx.AsyncClient,
    confidential: Credentials,
    alice: User,
) -> None:
    code = await authorization_code(http, code_request(confidential, API, FILES))
    for_api = await issued(await redeem(http, confidential, code, API))
    bearer = {"authorization": f"Bearer {for_api['access_token']}"}
    assert (await api.get("/v1/me", headers=bearer)).status_code == 200

    for_files = await issued(await refresh(http, confidential, for_api["refresh_token"], FILES))
    bearer = {"authorization": f"Bearer {for_files['access_token']}"}
    refused = await api.get("/v1/me", headers=bearer)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_token"
