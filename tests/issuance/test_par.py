"""Pushed authorization requests (RFC 9126) over HTTP, and a DPoP proof at ``/par``
binding the code (RFC 9449 §10.1).

§2: the client authenticates at ``/par`` and pushes the parameters of an
authorization request; they are checked as ``/authorize`` would check them and
answered with 201, a ``request_uri`` and its lifetime, or a JSON error (§2.3).
§4: ``/authorize?client_id=..&request_uri=..`` then runs on the pushed
parameters only, once, for that client, before it expires; anything wrong with
the ``request_uri`` is shown to the person, never sent to a redirect URI. §5,
§6: the metadata, and requiring pushed requests of every client or of one.
Alice signs in and approves through ``Person``, the scripted browser user.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from asgi_oauth import AuthorizationServer, Settings, User

from ..browser_helpers import CHALLENGE, VERIFIER, decide, parse_page
from ..conftest import ISSUER, REDIRECT_URI, Credentials, FakeClock
from ..dpop_helpers import (
    FORM,
    PAR_URL,
    PASSWORD,
    USERNAME,
    DPoPKey,
    LedgerStorage,
    Params,
    authorize_url,
    callback,
    error_of,
    query_of,
    token_request,
)
from ..user_agent import Person

pytestmark = pytest.mark.anyio

PREFIX = "urn:ietf:params:oauth:request_uri:"
#: What the person is told of a request_uri that cannot be used.
UNUSABLE = "request_uri is unknown, expired or already used"
#: The second redirect URI of ``app``: a pushed request names one of the two.
OTHER_REDIRECT_URI = "https://app.example/other-cb"


@pytest.fixture
async def app(server: AuthorizationServer) -> Credentials:
    """A confidential client with two redirect URIs, so a request must name one."""
    registered = await server.register_client(
        name="App",
        redirect_uris=[REDIRECT_URI, OTHER_REDIRECT_URI],
        grant_types=["authorization_code", "refresh_token"],
        scope=["read", "write"],
    )
    return Credentials(registered.client.client_id, registered.client_secret)


def code_request(**params: str) -> dict[str, str]:
    """An authorization request of ``app`` (no client_id: that is client authentication)."""
    return {
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": "read",
        "state": "pushed-state",
        **params,
    }


def pkce_request(**params: str) -> dict[str, str]:
    """An authorization request of the public client, with S256 PKCE."""
    return code_request(code_challenge=CHALLENGE, code_challenge_method="S256", **params)


async def push(
    http: httpx.AsyncClient,
    client: Credentials,
    params: Params,
    *,
    auth: str = "basic",
    dpop: str | None = None,
) -> httpx.Response:
    """POST the request to ``/par``, the client authenticated with ``auth``: ``basic``,
    ``post`` (its secret in the body) or ``none`` (a public client's ``client_id``)."""
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    kwargs: dict[str, Any] = {}
    if auth == "basic":
        kwargs["auth"] = client.basic
    elif auth == "post":
        pairs += [("client_id", client.client_id), ("client_secret", client.client_secret or "")]
    else:
        pairs.append(("client_id", client.client_id))
    headers = dict(FORM) if dpop is None else {**FORM, "dpop": dpop}
    return await http.post(PAR_URL, content=urlencode(pairs), headers=headers, **kwargs)


async def pushed(
    http: httpx.AsyncClient, client: Credentials, params: Params, **options: Any
) -> str:
    """The ``request_uri`` of a request pushed with success."""
    response = await push(http, client, params, **options)
    assert response.status_code == 201, response.text
    request_uri: str = response.json()["request_uri"]
    return request_uri


def pushed_url(client: Credentials, request_uri: str, **extra: str) -> str:
    return authorize_url({"client_id": client.client_id, "request_uri": request_uri, **extra})


async def redeem(
    http: httpx.AsyncClient,
    client: Credentials,
    code: str,
    *,
    dpop: str | None = None,
    **form: str,
) -> httpx.Response:
    body = {"grant_type": "authorization_code", "code": code, **form}
    return await token_request(http, client, body, dpop=dpop)


def assert_error_page(response: httpx.Response) -> None:
    """The request_uri refused to the person's face: a page, no redirect to anyone."""
    assert response.status_code == 400, (response.status_code, response.headers)
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert UNUSABLE in parse_page(response.text).text


def assert_redirect_error(response: httpx.Response, error: str) -> dict[str, str]:
    """An error sent to the client's redirect URI, with its state, without a code."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.partition("?")[0] == REDIRECT_URI, location
    params = query_of(location)
    assert params["error"] == error, params
    assert params["state"] == "xyz"
    assert params["iss"] == ISSUER
    assert "code" not in params
    return params


async def signed_in(http: httpx.AsyncClient, client: Credentials) -> None:
    """Alice goes through one pushed request, so her browser is signed in afterwards."""
    request_uri = await pushed(http, client, code_request())
    assert "code" in await callback(http, pushed_url(client, request_uri))


# -- §2: the endpoint -----------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["basic", "post"])
async def test_a_confidential_client_pushes_a_request(
    http: httpx.AsyncClient, ledger: LedgerStorage, app: Credentials, auth: str
) -> None:
    response = await push(http, app, code_request(), auth=auth)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"request_uri", "expires_in"}
    assert body["request_uri"].startswith(PREFIX)
    assert len(body["request_uri"]) > len(PREFIX) + 20
    assert body["expires_in"] == 60

    [stored] = ledger.pushed
    assert stored.client_id == app.client_id
    # The secret authenticated the push; it is no part of the request kept.
    assert dict(stored.params) == {"client_id": app.client_id, **code_request()}


async def test_a_public_client_pushes_with_its_client_id(
    http: httpx.AsyncClient, public: Credentials
) -> None:
    response = await push(http, public, pkce_request(), auth="none")
    assert response.status_code == 201, response.text
    assert response.json()["request_uri"].startswith(PREFIX)


@pytest.mark.parametrize(
    "settings", [Settings(issuer=ISSUER, pushed_authorization_request_lifetime=90)]
)
async def test_expires_in_is_the_configured_lifetime(
    http: httpx.AsyncClient, app: Credentials
) -> None:
    response = await push(http, app, code_request())
    assert response.status_code == 201, response.text
    assert response.json()["expires_in"] == 90


async def test_each_push_gets_its_own_request_uri(
    http: httpx.AsyncClient, app: Credentials
) -> None:
    first = await pushed(http, app, code_request())
    second = await pushed(http, app, code_request())
    assert first != second


@pytest.mark.parametrize(
    ("auth", "client_secret"),
    [("basic", "wrong-secret"), ("post", "wrong-secret"), ("none", None)],
    ids=["basic", "post", "no-secret"],
)
async def test_a_client_that_fails_to_authenticate_is_refused(
    http: httpx.AsyncClient,
    ledger: LedgerStorage,
    app: Credentials,
    auth: str,
    client_secret: str | None,
) -> None:
    # A confidential client's client_id alone is no authentication.
    impostor = Credentials(app.client_id, client_secret)
    response = await push(http, impostor, code_request(), auth=auth)
    assert error_of(response, 401) == "invalid_client"
    assert ledger.pushed == []


async def test_an_unknown_client_is_refused(http: httpx.AsyncClient, ledger: LedgerStorage) -> None:
    stranger = Credentials("no-such-client", None)
    response = await push(http, stranger, pkce_request(), auth="none")
    assert error_of(response, 401) == "invalid_client"
    assert ledger.pushed == []


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"redirect_uri": "https://evil.example/cb"}, "invalid_request"),
        ({"response_type": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"scope": "admin"}, "invalid_scope"),
        ({"resource": "https://api.example/unknown"}, "invalid_target"),
        ({"dpop_jkt": "not-a-thumbprint"}, "invalid_request"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
        ({"request_uri": PREFIX + "abc"}, "invalid_request"),
        ({"request_uri": "https://app.example/request.jwt"}, "invalid_request"),
    ],
    ids=[
        "unregistered-redirect-uri",
        "no-response-type",
        "unsupported-response-type",
        "no-pkce",
        "plain-pkce",
        "unknown-scope",
        "unknown-resource",
        "malformed-dpop-jkt",
        "request-object",
        "pushed-request-uri",
        "other-request-uri",
    ],
)
async def test_an_invalid_request_is_answered_with_a_json_error_and_not_kept(
    http: httpx.AsyncClient,
    ledger: LedgerStorage,
    public: Credentials,
    change: dict[str, str | None],
    error: str,
) -> None:
    params = {**pkce_request(), **change}
    form = {name: value for name, value in params.items() if value is not None}
    response = await push(http, public, form, auth="none")
    # §2.3: an error response, never a redirect.
    assert error_of(response, 400) == error
    assert "location" not in response.headers
    assert response.headers["cache-control"] == "no-store"
    assert ledger.pushed == []


async def test_a_request_naming_no_redirect_uri_of_several_is_refused(
    http: httpx.AsyncClient, ledger: LedgerStorage, app: Credentials
) -> None:
    params = {k: v for k, v in code_request().items() if k != "redirect_uri"}
    response = await push(http, app, params)
    assert error_of(response) == "invalid_request"
    assert ledger.pushed == []


async def test_a_repeated_parameter_is_refused(
    http: httpx.AsyncClient, ledger: LedgerStorage, app: Credentials
) -> None:
    pairs = [*code_request().items(), ("scope", "write")]
    response = await push(http, app, pairs)
    assert error_of(response) == "invalid_request"
    assert "scope" in response.json()["error_description"]
    assert ledger.pushed == []


async def test_the_endpoint_answers_post_only(http: httpx.AsyncClient) -> None:
    response = await http.get(PAR_URL)
    assert error_of(response, 405) == "invalid_request"


# -- §4: the authorization endpoint ---------------------------------------------------------------


async def test_a_pushed_request_completes_the_whole_flow(
    http: httpx.AsyncClient, app: Credentials, alice: User
) -> None:
    request_uri = await pushed(http, app, code_request())
    answer = await callback(http, pushed_url(app, request_uri))
    assert answer["state"] == "pushed-state"
    assert answer["iss"] == ISSUER

    response = await redeem(http, app, answer["code"], redirect_uri=REDIRECT_URI)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read"


async def test_a_public_clients_pushed_request_completes_the_whole_flow(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    request_uri = await pushed(http, public, pkce_request(), auth="none")
    answer = await callback(http, pushed_url(public, request_uri))
    response = await redeem(
        http, public, answer["code"], redirect_uri=REDIRECT_URI, code_verifier=VERIFIER
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("asks", [{"prompt": "login"}, {"max_age": "0"}])
async def test_a_pushed_request_for_a_new_sign_in_asks_once(
    http: httpx.AsyncClient,
    app: Credentials,
    alice: User,
    clock: FakeClock,
    asks: dict[str, str],
) -> None:
    await signed_in(http, app)
    clock.advance(30)
    request_uri = await pushed(http, app, code_request(**asks))
    person = Person(http, USERNAME, PASSWORD)
    location = await person.authorize(pushed_url(app, request_uri))
    # OpenID Connect Core §3.1.2.1: signed in again, and only once, though the pushed
    # parameters keep asking (they cannot be edited on the way back from the login page).
    assert sum("sign in" in title.lower() for title in person.pages) == 1, person.pages
    assert "code" in query_of(location)


async def test_parameters_on_the_url_besides_client_id_and_request_uri_are_ignored(
    http: httpx.AsyncClient, app: Credentials, alice: User
) -> None:
    request_uri = await pushed(http, app, code_request())
    url = pushed_url(
        app,
        request_uri,
        redirect_uri=OTHER_REDIRECT_URI,
        scope="read write",
        state="url-state",
        response_type="token",
    )
    # ``callback`` checks the answer goes to REDIRECT_URI, the pushed one.
    answer = await callback(http, url)
    assert answer["state"] == "pushed-state"

    response = await redeem(http, app, answer["code"], redirect_uri=REDIRECT_URI)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "read"


async def test_the_consent_form_posts_back_the_request_uri_only(
    http: httpx.AsyncClient, app: Credentials, alice: User
) -> None:
    await signed_in(http, app)
    request_uri = await pushed(http, app, code_request(scope="read write"))
    page = await http.get(pushed_url(app, request_uri, scope="read"))
    assert page.status_code == 200, page.text
    form = parse_page(page.text).form
    assert form.action == ISSUER + "/authorize"
    fields = {k: v for k, v in form.fields.items() if k not in ("csrf_token", "remember")}
    assert fields == {"client_id": app.client_id, "request_uri": request_uri}
    # The page shows the pushed scopes, not the URL's.
    assert "write" in parse_page(page.text).text

    answer = await decide(http, page, "approve")
    assert answer.status_code == 303, answer.text
    params = query_of(answer.headers["location"])
    assert params["state"] == "pushed-state" and "code" in params


async def test_a_denied_pushed_request_tells_the_client_with_the_pushed_state(
    http: httpx.AsyncClient, app: Credentials, alice: User
) -> None:
    await signed_in(http, app)
    request_uri = await pushed(http, app, code_request(scope="read write"))
    page = await http.get(pushed_url(app, request_uri))
    answer = await decide(http, page, "deny")
    location = answer.headers["location"]
    assert location.partition("?")[0] == REDIRECT_URI
    assert query_of(location) == {
        "error": "access_denied",
        "error_description": "the user denied the request",
        "state": "pushed-state",
        "iss": ISSUER,
    }


async def test_a_request_uri_is_used_once(
    http: httpx.AsyncClient, app: Credentials, alice: User
) -> None:
    request_uri = await pushed(http, app, code_request())
    assert "code" in await callback(http, pushed_url(app, request_uri))
    assert_error_page(await http.get(pushed_url(app, request_uri)))


async def test_two_consent_pages_of_one_request_uri_issue_one_code(
    http: httpx.AsyncClient, app: Credentials, alice: User
) -> None:
    await signed_in(http, app)
    request_uri = await pushed(http, app, code_request(scope="read write"))
    first = await http.get(pushed_url(app, request_uri))
    second = await http.get(pushed_url(app, request_uri))
    approved = await decide(http, first, "approve")
    assert "code" in query_of(approved.headers["location"])
    assert_error_page(await decide(http, second, "approve"))


async def test_an_expired_request_uri_is_refused(
    http: httpx.AsyncClient, app: Credentials, clock: FakeClock, alice: User
) -> None:
    await signed_in(http, app)
    request_uri = await pushed(http, app, code_request())
    clock.advance(60)
    assert_error_page(await http.get(pushed_url(app, request_uri)))


async def test_a_request_uri_still_fresh_is_accepted(
    http: httpx.AsyncClient, app: Credentials, clock: FakeClock, alice: User
) -> None:
    request_uri = await pushed(http, app, code_request())
    clock.advance(59)
    assert "code" in await callback(http, pushed_url(app, request_uri))


async def test_a_request_uri_expiring_at_the_consent_page_issues_no_code(
    http: httpx.AsyncClient, app: Credentials, clock: FakeClock, alice: User
) -> None:
    await signed_in(http, app)
    request_uri = await pushed(http, app, code_request(scope="read write"))
    page = await http.get(pushed_url(app, request_uri))
    assert page.status_code == 200, page.text
    clock.advance(60)
    assert_error_page(await decide(http, page, "approve"))


async def test_another_clients_request_uri_is_refused(
    http: httpx.AsyncClient, app: Credentials, public: Credentials, alice: User
) -> None:
    await signed_in(http, app)
    request_uri = await pushed(http, app, code_request())
    assert_error_page(await http.get(pushed_url(public, request_uri)))


async def test_an_unknown_request_uri_is_refused(
    http: httpx.AsyncClient, app: Credentials, alice: User
) -> None:
    await signed_in(http, app)
    request_uri = PREFIX + secrets.token_urlsafe(32)
    assert_error_page(await http.get(pushed_url(app, request_uri)))


async def test_a_request_uri_of_another_kind_is_not_supported(
    http: httpx.AsyncClient, confidential: Credentials
) -> None:
    params = {
        "client_id": confidential.client_id,
        "request_uri": "https://client.example/request.jwt",
        "response_type": "code",
        "state": "xyz",
    }
    assert_redirect_error(await http.get(authorize_url(params)), "request_uri_not_supported")


# -- §5, §6: requiring pushed requests ------------------------------------------------------------


async def test_metadata_names_the_endpoint(http: httpx.AsyncClient) -> None:
    metadata = (await http.get("/.well-known/oauth-authorization-server/oauth2")).json()
    assert metadata["pushed_authorization_request_endpoint"] == PAR_URL
    assert metadata["require_pushed_authorization_requests"] is False


@pytest.mark.parametrize(
    "settings", [Settings(issuer=ISSUER, require_pushed_authorization_requests=True)]
)
async def test_metadata_says_pushed_requests_are_required(http: httpx.AsyncClient) -> None:
    metadata = (await http.get("/.well-known/oauth-authorization-server/oauth2")).json()
    assert metadata["require_pushed_authorization_requests"] is True


def plain_request(client: Credentials) -> dict[str, str]:
    return {"client_id": client.client_id, "response_type": "code", "state": "xyz"}


@pytest.mark.parametrize(
    "settings", [Settings(issuer=ISSUER, require_pushed_authorization_requests=True)]
)
async def test_when_required_everywhere_a_plain_request_is_refused(
    http: httpx.AsyncClient, confidential: Credentials, alice: User
) -> None:
    await signed_in(http, confidential)
    response = await http.get(authorize_url(plain_request(confidential)))
    params = assert_redirect_error(response, "invalid_request")
    assert "/par" in params["error_description"]


async def test_when_required_of_one_client_its_plain_requests_are_refused(
    http: httpx.AsyncClient,
    server: AuthorizationServer,
    confidential: Credentials,
    alice: User,
) -> None:
    registered = await server.register_client(
        name="Strict",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code"],
        scope=["read"],
        require_pushed_authorization_requests=True,
    )
    strict = Credentials(registered.client.client_id, registered.client_secret)
    await signed_in(http, strict)
    assert_redirect_error(await http.get(authorize_url(plain_request(strict))), "invalid_request")
    # Another client is not held to it.
    answer = await callback(http, authorize_url(plain_request(confidential)))
    assert "code" in answer


# -- RFC 9449 §10.1: a DPoP proof at /par binds the code ------------------------------------------


@pytest.fixture(scope="module")
def holder() -> DPoPKey:
    return DPoPKey("ES256")


async def bound_code(
    http: httpx.AsyncClient, client: Credentials, holder: DPoPKey, now: int
) -> str:
    """A code whose request was pushed with ``holder``'s proof."""
    request_uri = await pushed(http, client, code_request(), dpop=holder.proof(PAR_URL, iat=now))
    return (await callback(http, pushed_url(client, request_uri)))["code"]


async def test_a_proof_at_par_binds_the_code_to_its_key(
    http: httpx.AsyncClient,
    app: Credentials,
    clock: FakeClock,
    holder: DPoPKey,
    ledger: LedgerStorage,
    alice: User,
) -> None:
    now = int(clock.now)
    code = await bound_code(http, app, holder, now)
    assert dict(ledger.pushed[0].params)["dpop_jkt"] == holder.jkt

    without = await redeem(http, app, code, redirect_uri=REDIRECT_URI)
    assert error_of(without) == "invalid_dpop_proof"
    other_key = DPoPKey("ES256").proof(iat=now)
    with_another = await redeem(http, app, code, redirect_uri=REDIRECT_URI, dpop=other_key)
    assert error_of(with_another) == "invalid_dpop_proof"
    assert ledger.tokens == []

    # Refused requests do not spend the code: its key's proof redeems it.
    response = await redeem(http, app, code, redirect_uri=REDIRECT_URI, dpop=holder.proof(iat=now))
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"


async def test_a_proof_and_dpop_jkt_of_the_same_key_are_accepted(
    http: httpx.AsyncClient, app: Credentials, clock: FakeClock, holder: DPoPKey
) -> None:
    proof = holder.proof(PAR_URL, iat=int(clock.now))
    response = await push(http, app, code_request(dpop_jkt=holder.jkt), dpop=proof)
    assert response.status_code == 201, response.text


async def test_a_proof_and_dpop_jkt_of_different_keys_are_refused(
    http: httpx.AsyncClient,
    ledger: LedgerStorage,
    app: Credentials,
    clock: FakeClock,
    holder: DPoPKey,
) -> None:
    other = DPoPKey("ES256")
    proof = holder.proof(PAR_URL, iat=int(clock.now))
    response = await push(http, app, code_request(dpop_jkt=other.jkt), dpop=proof)
    assert error_of(response) == "invalid_dpop_proof"
    assert ledger.pushed == []


@pytest.mark.parametrize(
    "htu", [ISSUER + "/token", ISSUER + "/authorize"], ids=["token-endpoint", "authorize"]
)
async def test_a_proof_for_another_url_is_refused_at_par(
    http: httpx.AsyncClient,
    ledger: LedgerStorage,
    app: Credentials,
    clock: FakeClock,
    holder: DPoPKey,
    htu: str,
) -> None:
    response = await push(http, app, code_request(), dpop=holder.proof(htu, iat=int(clock.now)))
    assert error_of(response) == "invalid_dpop_proof"
    assert ledger.pushed == []


async def test_dpop_jkt_pushed_without_a_proof_binds_the_code(
    http: httpx.AsyncClient, app: Credentials, clock: FakeClock, holder: DPoPKey, alice: User
) -> None:
    request_uri = await pushed(http, app, code_request(dpop_jkt=holder.jkt))
    code = (await callback(http, pushed_url(app, request_uri)))["code"]
    now = int(clock.now)
    refused = await redeem(
        http, app, code, redirect_uri=REDIRECT_URI, dpop=DPoPKey().proof(iat=now)
    )
    assert error_of(refused) == "invalid_dpop_proof"
    response = await redeem(http, app, code, redirect_uri=REDIRECT_URI, dpop=holder.proof(iat=now))
    assert response.status_code == 200, response.text


async def test_a_client_whose_tokens_are_always_bound_may_push_with_dpop_jkt(
    http: httpx.AsyncClient, server: AuthorizationServer, holder: DPoPKey
) -> None:
    registered = await server.register_client(
        name="Bound",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code"],
        scope=["read"],
        dpop_bound_access_tokens=True,
    )
    client = Credentials(registered.client.client_id, registered.client_secret)
    response = await push(http, client, code_request(dpop_jkt=holder.jkt))
    assert response.status_code == 201, response.text
