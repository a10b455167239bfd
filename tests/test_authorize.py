"""The authorization endpoint over HTTP, driven the way a person's browser drives it.

Each test signs in on the real login page, reads the real consent page and posts its
form; errors are checked where RFC 6749 §4.1.2.1 puts them: on a page while the
client or redirect URI is in doubt, at the redirect URI (with ``state`` and ``iss``,
RFC 9207) once they are not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest
from starlette.requests import Request

from asgi_oauth import AuthorizationServer, Settings, User
from asgi_oauth.app import OAuth2App
from asgi_oauth.models import ResourceOwner

from .browser_helpers import (
    AUTHORIZE,
    CHALLENGE,
    LOGIN,
    PASSWORD,
    VERIFIER,
    RecordingStorage,
    approved,
    authorize_url,
    consent_page,
    csp,
    decide,
    exchange,
    fragment_of,
    mounted,
    parse_page,
    query_of,
    redirect_params,
    redirect_target,
    sign_in,
    start,
    submit,
)
from .conftest import ISSUER, REDIRECT_URI, Credentials, FakeClock

pytestmark = pytest.mark.anyio

LOOPBACK = "http://127.0.0.1/cb"
IMPLICIT = Settings(
    issuer=ISSUER,
    enabled_grants=frozenset({"authorization_code", "implicit", "refresh_token"}),
)


@pytest.fixture
async def server(settings: Settings, clock: FakeClock) -> AsyncIterator[AuthorizationServer]:
    """The conftest server, on a store that records every code and token it saves."""
    server = AuthorizationServer(RecordingStorage(), settings, clock=clock)
    yield server
    await server.close()


@pytest.fixture
def storage(server: AuthorizationServer) -> RecordingStorage:
    assert isinstance(server.storage, RecordingStorage)
    return server.storage


@pytest.fixture
async def alice(server: AuthorizationServer) -> User:
    return await server.create_user("alice", PASSWORD)


def pkce(client: Credentials, **params: str) -> dict[str, str]:
    """A code request of the public client, with S256 PKCE."""
    return {
        "client_id": client.client_id,
        "response_type": "code",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        **params,
    }


def assert_error_page(response: httpx.Response, status: int = 400) -> None:
    """An error shown to the person: a page, never a redirect anywhere."""
    assert response.status_code == status, (response.status_code, response.headers)
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert "Traceback" not in response.text


def assert_redirect_error(
    response: httpx.Response, error: str, *, state: str | None = "xyz", mode: str = "query"
) -> dict[str, str]:
    params = redirect_params(response, REDIRECT_URI, mode=mode)
    assert params["error"] == error, params
    assert params["iss"] == ISSUER
    if state is None:
        assert "state" not in params
    else:
        assert params["state"] == state
    assert "code" not in params and "access_token" not in params
    return params


# -- rule 1: the whole flow ----------------------------------------------------


async def test_signed_out_person_is_sent_to_the_login_page_and_back(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    params = pkce(public, state="xyz", scope="read")
    response = await start(http, **params)
    target = redirect_target(response)
    assert target.startswith(LOGIN + "?")
    assert query_of(target) == {"next": "/authorize?" + urlencode(params)}

    login = await http.get(target)
    assert login.status_code == 200
    form = parse_page(login.text).form
    assert form.action == LOGIN and form.method == "post"
    assert len(form.fields["csrf_token"]) >= 32
    assert form.fields["next"] == "/authorize?" + urlencode(params)

    signed_in = await submit(http, form, {"username": "alice", "password": PASSWORD})
    assert redirect_target(signed_in) == authorize_url(**params)


@pytest.mark.parametrize(
    "settings",
    [Settings(issuer=ISSUER, scope_descriptions={"read": "Read your files"})],
    ids=["descriptions"],
)
async def test_consent_page_names_the_client_the_person_and_the_scopes(
    http: httpx.AsyncClient, confidential: Credentials, alice: User
) -> None:
    page = await consent_page(http, "alice", client_id=confidential.client_id, response_type="code")
    text = parse_page(page.text).text
    assert "Confidential wants to access your account" in text
    assert "signed in as alice" in text
    assert "Read your files" in text  # a described scope, in words
    assert "write" in text  # an undescribed one, by name
    assert ">read<" not in page.text


async def test_public_client_code_flow_with_pkce(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    response = await approved(http, "alice", **pkce(public, state="xyz", scope="read"))
    params = redirect_params(response, REDIRECT_URI)
    assert set(params) == {"code", "state", "iss"}
    assert params["state"] == "xyz" and params["iss"] == ISSUER

    token = await exchange(http, params["code"], client_id=public.client_id, verifier=VERIFIER)
    assert token.status_code == 200, token.text
    assert token.json()["scope"] == "read"


async def test_confidential_client_code_flow_with_its_secret(
    http: httpx.AsyncClient,
    confidential: Credentials,
    resource_server: Credentials,
    alice: User,
) -> None:
    response = await approved(
        http,
        "alice",
        client_id=confidential.client_id,
        response_type="code",
        redirect_uri=REDIRECT_URI,
        scope="write",
        state="xyz",
    )
    code = redirect_params(response, REDIRECT_URI)["code"]
    token = await exchange(
        http,
        code,
        client_id=confidential.client_id,
        client_secret=confidential.client_secret,
        redirect_uri=REDIRECT_URI,
    )
    assert token.status_code == 200, token.text
    assert token.json()["scope"] == "write"
    introspected = await http.post(
        ISSUER + "/introspect",
        data={"token": token.json()["access_token"]},
        auth=resource_server.basic,
    )
    assert introspected.json()["sub"] == alice.user_id


# -- rule 2: deny --------------------------------------------------------------


async def test_deny_redirects_access_denied_and_issues_nothing(
    http: httpx.AsyncClient, public: Credentials, alice: User, storage: RecordingStorage
) -> None:
    page = await consent_page(http, "alice", **pkce(public, state="xyz"))
    response = await decide(http, page, "deny", remember=True)
    params = assert_redirect_error(response, "access_denied")
    assert set(params) <= {"error", "error_description", "state", "iss"}
    assert storage.codes == [] and storage.tokens == []
    # Denying is not remembered: the next request asks again.
    again = await start(http, **pkce(public, state="xyz"))
    assert again.status_code == 200


async def test_unknown_decision_is_refused_on_a_page(
    http: httpx.AsyncClient, public: Credentials, alice: User, storage: RecordingStorage
) -> None:
    page = await consent_page(http, "alice", **pkce(public))
    response = await decide(http, page, "maybe")
    assert_error_page(response)
    assert storage.codes == []


# -- rule 3: state, iss, metadata ----------------------------------------------


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"scope": "admin"}, "invalid_scope"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code id_token"}, "unsupported_response_type"),
        ({"response_type": "code bogus"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"prompt": "none"}, "login_required"),
        ({"prompt": "bogus"}, "invalid_request"),
        ({"response_mode": "web_message"}, "invalid_request"),
    ],
)
async def test_every_error_at_the_redirect_uri_carries_state_and_iss(
    http: httpx.AsyncClient,
    public: Credentials,
    extra: dict[str, str | None],
    error: str,
) -> None:
    params = pkce(public, state="a b&c=d")
    for name, value in extra.items():
        if value is None:
            del params[name]
        else:
            params[name] = value
    response = await start(http, **params)
    # Multiple Response Type Encoding Practices §5: anything returning a token,
    # ID tokens included, answers in the fragment, refusals too.
    returns_tokens = {"token", "id_token"} & set(str(params.get("response_type")).split())
    mode = "fragment" if returns_tokens else "query"
    assert_redirect_error(response, error, state="a b&c=d", mode=mode)


async def test_metadata_advertises_the_authorization_endpoint(http: httpx.AsyncClient) -> None:
    metadata = (await http.get(ISSUER + "/.well-known/oauth-authorization-server")).json()
    assert metadata["authorization_endpoint"] == AUTHORIZE
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert metadata["response_types_supported"] == ["code"]
    assert "implicit" not in metadata["grant_types_supported"]
    assert "password" not in metadata["grant_types_supported"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]


@pytest.mark.parametrize(
    "settings",
    [
        Settings(
            issuer=ISSUER,
            enabled_grants=frozenset({"authorization_code", "implicit", "password"}),
            allow_response_type_none=True,
        )
    ],
    ids=["legacy"],
)
async def test_metadata_lists_legacy_response_types_once_enabled(
    http: httpx.AsyncClient,
) -> None:
    metadata = (await http.get(ISSUER + "/.well-known/oauth-authorization-server")).json()
    # "code token" (Multiple Response Types §5) comes with the implicit grant too.
    assert metadata["response_types_supported"] == ["code", "token", "none", "code token"]
    assert {"implicit", "password"} <= set(metadata["grant_types_supported"])


@pytest.mark.parametrize(
    "settings",
    [Settings(issuer=ISSUER, enabled_grants=frozenset({"client_credentials"}))],
    ids=["no-browser-grants"],
)
async def test_no_authorization_endpoint_without_a_response_type(
    http: httpx.AsyncClient,
) -> None:
    metadata = (await http.get(ISSUER + "/.well-known/oauth-authorization-server")).json()
    assert "authorization_endpoint" not in metadata
    assert metadata["response_types_supported"] == []
    assert (await http.get(AUTHORIZE)).status_code == 404
    assert (await http.get(LOGIN)).status_code == 404


# -- rule 4: response modes ----------------------------------------------------


async def test_fragment_response_mode(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    response = await approved(http, "alice", **pkce(public, state="xyz", response_mode="fragment"))
    params = redirect_params(response, REDIRECT_URI, mode="fragment")
    assert set(params) == {"code", "state", "iss"}


async def test_form_post_response_mode(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    response = await approved(
        http, "alice", **pkce(public, state='"><x', response_mode="form_post")
    )
    assert response.status_code == 200
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    page = parse_page(response.text)
    form = page.form
    assert form.action == REDIRECT_URI and form.method == "post"
    assert set(form.fields) == {"code", "state", "iss"}
    assert form.fields["state"] == '"><x' and form.fields["iss"] == ISSUER
    policy = csp(response)
    assert policy["form-action"] == "https://app.example"
    assert page.script_nonces and page.script_nonces[0]
    assert policy["script-src"] == f"'nonce-{page.script_nonces[0]}'"
    assert "document.forms[0].submit()" in response.text

    token = await exchange(http, form.fields["code"], client_id=public.client_id, verifier=VERIFIER)
    assert token.status_code == 200


async def test_form_post_carries_errors_too(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    response = await start(http, **pkce(public, state="xyz", response_mode="form_post", scope="x"))
    assert response.status_code == 200
    fields = parse_page(response.text).form.fields
    assert fields["error"] == "invalid_scope"
    assert fields["state"] == "xyz" and fields["iss"] == ISSUER


@pytest.mark.parametrize("settings", [IMPLICIT], ids=["implicit"])
async def test_tokens_are_never_put_in_a_query(
    http: httpx.AsyncClient, server: AuthorizationServer, storage: RecordingStorage
) -> None:
    registered = await server.register_client(
        name="SPA", redirect_uris=[REDIRECT_URI], grant_types=["implicit"], public=True
    )
    response = await start(
        http,
        client_id=registered.client.client_id,
        response_type="token",
        response_mode="query",
        state="xyz",
    )
    target = redirect_target(response)
    assert {**query_of(target), **fragment_of(target)}["error"] == "invalid_request"
    assert "access_token" not in target
    assert storage.tokens == []


@pytest.mark.parametrize("settings", [IMPLICIT], ids=["implicit"])
async def test_refused_query_mode_for_tokens_answers_in_the_fragment(
    http: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    registered = await server.register_client(
        name="SPA", redirect_uris=[REDIRECT_URI], grant_types=["implicit"], public=True
    )
    response = await start(
        http,
        client_id=registered.client.client_id,
        response_type="token",
        response_mode="query",
        state="xyz",
    )
    assert_redirect_error(response, "invalid_request", mode="fragment")


async def test_unknown_response_mode_is_invalid_request_in_the_default_mode(
    http: httpx.AsyncClient, public: Credentials
) -> None:
    response = await start(http, **pkce(public, state="xyz", response_mode="json"))
    assert_redirect_error(response, "invalid_request")


# -- rule 5: implicit and none -------------------------------------------------


@pytest.mark.parametrize("settings", [IMPLICIT], ids=["implicit"])
async def test_implicit_grant_puts_an_access_token_in_the_fragment(
    http: httpx.AsyncClient,
    server: AuthorizationServer,
    alice: User,
    resource_server: Credentials,
    storage: RecordingStorage,
) -> None:
    registered = await server.register_client(
        name="SPA",
        redirect_uris=[REDIRECT_URI],
        grant_types=["implicit"],
        scope=["read"],
        public=True,
    )
    response = await approved(
        http,
        "alice",
        client_id=registered.client.client_id,
        response_type="token",
        state="xyz",
    )
    params = redirect_params(response, REDIRECT_URI, mode="fragment")
    assert set(params) == {"access_token", "token_type", "expires_in", "scope", "state", "iss"}
    assert params["token_type"] == "Bearer" and params["scope"] == "read"
    assert [t.kind for t in storage.tokens] == ["access_token"]
    assert storage.codes == []
    introspected = await http.post(
        ISSUER + "/introspect", data={"token": params["access_token"]}, auth=resource_server.basic
    )
    assert introspected.json()["active"] is True
    assert introspected.json()["sub"] == alice.user_id


@pytest.mark.parametrize("settings", [IMPLICIT], ids=["implicit"])
async def test_implicit_needs_the_clients_implicit_grant(
    http: httpx.AsyncClient, public: Credentials
) -> None:
    response = await start(http, client_id=public.client_id, response_type="token", state="xyz")
    assert_redirect_error(response, "unauthorized_client", mode="fragment")


async def test_implicit_is_off_by_default(
    http: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    registered = await server.register_client(
        name="SPA", redirect_uris=[REDIRECT_URI], grant_types=["implicit"], public=True
    )
    response = await start(
        http, client_id=registered.client.client_id, response_type="token", state="xyz"
    )
    assert_redirect_error(response, "unsupported_response_type", mode="fragment")


@pytest.mark.parametrize(
    "settings", [Settings(issuer=ISSUER, allow_response_type_none=True)], ids=["none"]
)
async def test_response_type_none_redirects_with_only_state_and_iss(
    http: httpx.AsyncClient, public: Credentials, alice: User, storage: RecordingStorage
) -> None:
    response = await approved(
        http, "alice", client_id=public.client_id, response_type="none", state="xyz"
    )
    assert redirect_params(response, REDIRECT_URI) == {"state": "xyz", "iss": ISSUER}
    assert storage.codes == [] and storage.tokens == []


async def test_response_type_none_is_off_by_default(
    http: httpx.AsyncClient, public: Credentials
) -> None:
    response = await start(http, client_id=public.client_id, response_type="none", state="xyz")
    assert_redirect_error(response, "unsupported_response_type")


# -- rule 6: PKCE --------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"code_challenge": None, "code_challenge_method": None},
        {"code_challenge": None},
        {"code_challenge_method": "plain", "code_challenge": VERIFIER},
        {"code_challenge_method": None, "code_challenge": VERIFIER},  # plain by default
        {"code_challenge_method": "S512"},
        {"code_challenge": CHALLENGE[:-1]},
        {"code_challenge": CHALLENGE[:-1] + "="},
        {"code_challenge": CHALLENGE + "A"},
    ],
    ids=["none", "method-only", "plain", "implicit-plain", "unknown", "short", "bad-char", "long"],
)
async def test_pkce_challenge_refusals(
    http: httpx.AsyncClient, public: Credentials, change: dict[str, str | None]
) -> None:
    params = pkce(public, state="xyz")
    for name, value in change.items():
        if value is None:
            del params[name]
        else:
            params[name] = value
    assert_redirect_error(await start(http, **params), "invalid_request")


@pytest.mark.parametrize(
    "settings", [Settings(issuer=ISSUER, allow_plain_pkce=True)], ids=["plain"]
)
async def test_plain_pkce_when_allowed(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    response = await approved(
        http, "alice", **pkce(public, code_challenge=VERIFIER, code_challenge_method="plain")
    )
    code = redirect_params(response, REDIRECT_URI)["code"]
    wrong = await exchange(http, code, client_id=public.client_id, verifier=CHALLENGE)
    assert wrong.status_code == 400
    right = await exchange(http, code, client_id=public.client_id, verifier=VERIFIER)
    assert right.status_code == 200, right.text


async def test_confidential_client_may_skip_pkce_but_the_verifier_is_then_refused(
    http: httpx.AsyncClient, confidential: Credentials, alice: User
) -> None:
    response = await approved(http, "alice", client_id=confidential.client_id, response_type="code")
    code = redirect_params(response, REDIRECT_URI)["code"]
    assert confidential.client_secret is not None
    downgrade = await exchange(
        http,
        code,
        client_id=confidential.client_id,
        client_secret=confidential.client_secret,
        verifier=VERIFIER,
    )
    assert downgrade.json()["error"] == "invalid_grant"


async def test_the_verifier_is_enforced_at_the_token_endpoint(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    response = await approved(http, "alice", **pkce(public))
    code = redirect_params(response, REDIRECT_URI)["code"]
    for verifier in (None, "x" * 43, VERIFIER[:-1] + "A", CHALLENGE):
        refused = await exchange(http, code, client_id=public.client_id, verifier=verifier)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    accepted = await exchange(http, code, client_id=public.client_id, verifier=VERIFIER)
    assert accepted.status_code == 200, accepted.text


# -- rule 7: scope -------------------------------------------------------------


async def test_omitted_scope_is_the_clients_whole_scope(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    page = await consent_page(http, "alice", **pkce(public))
    assert "read" in parse_page(page.text).text and "write" in parse_page(page.text).text
    code = redirect_params(await decide(http, page, "approve"), REDIRECT_URI)["code"]
    token = await exchange(http, code, client_id=public.client_id, verifier=VERIFIER)
    assert token.json()["scope"] == "read write"


async def test_narrower_scope_is_what_is_granted(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    page = await consent_page(http, "alice", **pkce(public, scope="write"))
    assert "Use “write”" in page.text and "Use “read”" not in page.text
    code = redirect_params(await decide(http, page, "approve"), REDIRECT_URI)["code"]
    token = await exchange(http, code, client_id=public.client_id, verifier=VERIFIER)
    assert token.json()["scope"] == "write"


@pytest.mark.parametrize("scope", ["read admin", "admin", 'read "quoted"'])
async def test_scope_beyond_the_client_is_invalid_scope(
    http: httpx.AsyncClient, public: Credentials, scope: str
) -> None:
    response = await start(http, **pkce(public, state="xyz", scope=scope))
    assert_redirect_error(response, "invalid_scope")


# -- rule 8: the redirect URI --------------------------------------------------


def _query(pairs: list[tuple[str, str]]) -> str:
    return f"{AUTHORIZE}?{urlencode(pairs)}"


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/cb",
        "https://app.example/cb#frag",
        "/cb",
        "cb",
        "javascript:alert(1)",
        "https://app.example/cb?x=1",
        "https://app.example/cb/",
        "https://app.example:8443/cb",
        "https://app.example:443/cb",
        "http://app.example/cb",
        "https://APP.example/cb",
        "https://app.example/CB",
        "https://app.example@evil.example/cb",
        "https://app.example/cb ",
        " https://app.example/cb",
    ],
)
async def test_unregistered_redirect_uri_is_an_error_page(
    http: httpx.AsyncClient, public: Credentials, alice: User, redirect_uri: str
) -> None:
    await sign_in(http, "alice")
    # Invalid otherwise too: the redirect URI is checked first, nothing is redirected.
    response = await start(
        http, **pkce(public, redirect_uri=redirect_uri, scope="admin", state="xyz")
    )
    assert_error_page(response)
    assert "not registered" in parse_page(response.text).text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ([("response_type", "code")], "missing parameter: client_id"),
        ([("client_id", "nobody"), ("response_type", "code")], "unknown client"),
        ([("client_id", "")], "missing parameter: client_id"),
    ],
)
async def test_unknown_or_missing_client_is_an_error_page(
    http: httpx.AsyncClient, query: list[tuple[str, str]], message: str
) -> None:
    response = await http.get(_query([*query, ("redirect_uri", REDIRECT_URI)]))
    assert_error_page(response)
    assert message in parse_page(response.text).text


async def test_repeated_client_id_or_redirect_uri_is_an_error_page(
    http: httpx.AsyncClient, public: Credentials
) -> None:
    base = list(pkce(public, state="xyz").items())
    twice_client = [*base, ("client_id", public.client_id)]
    twice_redirect = [*base, ("redirect_uri", REDIRECT_URI), ("redirect_uri", REDIRECT_URI)]
    for pairs in (twice_client, twice_redirect):
        response = await http.get(_query(pairs))
        assert_error_page(response)
        assert "repeated parameter" in parse_page(response.text).text


async def test_redirect_uri_required_when_several_are_registered(
    http: httpx.AsyncClient, server: AuthorizationServer, alice: User
) -> None:
    registered = await server.register_client(
        name="Two", redirect_uris=[REDIRECT_URI, "https://app.example/other"], public=True
    )
    client = Credentials(registered.client.client_id, None)
    assert_error_page(await start(http, **pkce(client)))
    # Either one, named, is fine.
    other = await approved(http, "alice", **pkce(client, redirect_uri="https://app.example/other"))
    assert redirect_params(other, "https://app.example/other")["code"]


@pytest.fixture
async def native(server: AuthorizationServer) -> Credentials:
    registered = await server.register_client(
        name="Native", redirect_uris=[LOOPBACK], public=True, scope=["read"]
    )
    return Credentials(registered.client.client_id, None)


async def test_loopback_redirect_uri_may_use_any_port(
    http: httpx.AsyncClient, native: Credentials, alice: User
) -> None:
    uri = "http://127.0.0.1:51234/cb"
    response = await approved(http, "alice", **pkce(native, redirect_uri=uri, state="xyz"))
    code = redirect_params(response, uri)["code"]
    for other in (LOOPBACK, "http://127.0.0.1:51235/cb", None):
        refused = await exchange(
            http, code, client_id=native.client_id, redirect_uri=other, verifier=VERIFIER
        )
        assert refused.json()["error"] == "invalid_grant", other
    token = await exchange(
        http, code, client_id=native.client_id, redirect_uri=uri, verifier=VERIFIER
    )
    assert token.status_code == 200, token.text


async def test_loopback_with_the_registered_uri_itself(
    http: httpx.AsyncClient, native: Credentials, alice: User
) -> None:
    response = await approved(http, "alice", **pkce(native))
    code = redirect_params(response, LOOPBACK)["code"]
    token = await exchange(http, code, client_id=native.client_id, verifier=VERIFIER)
    assert token.status_code == 200, token.text


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://127.0.0.1:5000/other",
        "http://127.0.0.1:5000/cb?x=1",
        "http://127.0.0.1:5000/cb#x",
        "http://localhost:5000/cb",
        "http://[::1]:5000/cb",
        "https://127.0.0.1:5000/cb",
        "http://user@127.0.0.1:5000/cb",
        "http://127.0.0.1:99999/cb",
        "http://127.0.0.1:port/cb",
        "http://127.0.0.1.evil.example:5000/cb",
    ],
)
async def test_loopback_exception_is_for_the_port_only(
    http: httpx.AsyncClient, native: Credentials, redirect_uri: str
) -> None:
    assert_error_page(await start(http, **pkce(native, redirect_uri=redirect_uri)))


@pytest.mark.parametrize(
    "settings", [Settings(issuer=ISSUER, insecure_transport=True)], ids=["insecure"]
)
@pytest.mark.parametrize(
    ("registered", "requested"),
    [
        ("http://app.example/cb", "http://app.example:8080/cb"),
        ("http://localhost.example/cb", "http://localhost.example:8080/cb"),
        ("https://127.0.0.1/cb", "https://127.0.0.1:8080/cb"),
    ],
)
async def test_port_exception_is_for_http_loopback_only(
    http: httpx.AsyncClient, server: AuthorizationServer, registered: str, requested: str
) -> None:
    client = await server.register_client(name="Web", redirect_uris=[registered], public=True)
    credentials = Credentials(client.client.client_id, None)
    assert_error_page(await start(http, **pkce(credentials, redirect_uri=requested)))


# -- rule 9: other parameters --------------------------------------------------


@pytest.mark.parametrize("name", ["scope", "response_type", "code_challenge", "nonce"])
async def test_other_repeated_parameter_is_invalid_request_at_the_redirect_uri(
    http: httpx.AsyncClient, public: Credentials, name: str
) -> None:
    pairs = [*pkce(public, state="xyz", scope="read", nonce="n").items(), (name, "read")]
    response = await http.get(_query(pairs))
    params = assert_redirect_error(response, "invalid_request")
    assert name in params["error_description"]


async def test_repeated_state_is_refused_without_echoing_either(
    http: httpx.AsyncClient, public: Credentials
) -> None:
    pairs = [*pkce(public, state="one").items(), ("state", "two")]
    response = await http.get(_query(pairs))
    assert_redirect_error(response, "invalid_request", state=None)


async def test_missing_or_unsupported_response_type(
    http: httpx.AsyncClient, public: Credentials
) -> None:
    params = pkce(public, state="xyz")
    del params["response_type"]
    assert_redirect_error(await start(http, **params), "invalid_request")
    params["response_type"] = "id_token"
    assert_redirect_error(await start(http, **params), "unsupported_response_type", mode="fragment")


# -- rule 10: remembered consent -----------------------------------------------


async def test_remembered_consent_skips_the_page_for_the_same_or_less(
    http: httpx.AsyncClient, public: Credentials, alice: User, storage: RecordingStorage
) -> None:
    await decide(
        http,
        await consent_page(http, "alice", **pkce(public, scope="read write")),
        "approve",
        remember=True,
    )
    for scope in ("read write", "read", "write"):
        response = await start(http, **pkce(public, scope=scope, state="again"))
        params = redirect_params(response, REDIRECT_URI)
        assert params["state"] == "again" and params["code"]
    assert [c.scope for c in storage.codes[1:]] == [
        frozenset({"read", "write"}),
        frozenset({"read"}),
        frozenset({"write"}),
    ]


async def test_remembered_consent_asks_again_for_a_wider_scope(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    page = await consent_page(http, "alice", **pkce(public, scope="read"))
    await decide(http, page, "approve", remember=True)
    wider = await start(http, **pkce(public, scope="read write"))
    assert wider.status_code == 200
    assert parse_page(wider.text).title == "Authorize access"
    assert (await start(http, **pkce(public))).status_code == 200  # the default is wider too
    # Approving the wider one remembers the union.
    await decide(http, wider, "approve", remember=True)
    assert (await start(http, **pkce(public))).status_code == 303


async def test_consent_is_remembered_per_client(
    http: httpx.AsyncClient, public: Credentials, confidential: Credentials, alice: User
) -> None:
    await decide(http, await consent_page(http, "alice", **pkce(public)), "approve", remember=True)
    other = await start(http, client_id=confidential.client_id, response_type="code")
    assert other.status_code == 200


async def test_consent_is_remembered_per_user(
    http: httpx.AsyncClient,
    oauth_app: OAuth2App,
    server: AuthorizationServer,
    public: Credentials,
    alice: User,
) -> None:
    await decide(http, await consent_page(http, "alice", **pkce(public)), "approve", remember=True)
    await server.create_user("bob", PASSWORD)
    async with mounted(oauth_app) as bob:
        page = await consent_page(bob, "bob", **pkce(public))
        assert "signed in as bob" in parse_page(page.text).text


async def test_prompt_consent_forces_the_page(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    await decide(http, await consent_page(http, "alice", **pkce(public)), "approve", remember=True)
    page = await start(http, **pkce(public, prompt="consent", state="xyz"))
    assert page.status_code == 200
    response = await decide(http, page, "approve")
    assert redirect_params(response, REDIRECT_URI)["state"] == "xyz"


async def test_without_remember_it_asks_again(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    await decide(http, await consent_page(http, "alice", **pkce(public)), "approve")
    assert (await start(http, **pkce(public))).status_code == 200


# -- rule 11: prompt -----------------------------------------------------------


async def test_prompt_login_signs_in_again_then_continues(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    await sign_in(http, "alice")
    params = pkce(public, state="xyz", prompt="login consent")
    response = await start(http, **params)
    target = redirect_target(response)
    assert target.startswith(LOGIN + "?")
    next_path = query_of(target)["next"]
    assert "prompt=consent" in next_path and "login" not in next_path

    signed_in = await sign_in(http, "alice", next_url=target)
    back = await http.get(redirect_target(signed_in))
    assert back.status_code == 200, back.headers  # the consent page, not the login again
    assert parse_page(back.text).title == "Authorize access"
    assert redirect_params(await decide(http, back, "approve"), REDIRECT_URI)["code"]


async def test_prompt_none_when_signed_out_is_login_required(
    http: httpx.AsyncClient, public: Credentials
) -> None:
    response = await start(http, **pkce(public, prompt="none", state="xyz"))
    assert_redirect_error(response, "login_required")


async def test_prompt_none_without_consent_is_consent_required(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    await sign_in(http, "alice")
    response = await start(http, **pkce(public, prompt="none", state="xyz"))
    assert_redirect_error(response, "consent_required")


async def test_prompt_none_with_remembered_consent_gets_a_code(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    await decide(http, await consent_page(http, "alice", **pkce(public)), "approve", remember=True)
    response = await start(http, **pkce(public, prompt="none", state="xyz"))
    params = redirect_params(response, REDIRECT_URI)
    assert params["code"] and params["state"] == "xyz" and params["iss"] == ISSUER


async def test_a_native_apps_remembered_consent_still_asks(
    http: httpx.AsyncClient, native: Credentials, alice: User
) -> None:
    """RFC 8252 §8.6: a loopback redirect URI cannot prove which app is asking."""
    uri = "http://127.0.0.1:50000/cb"
    page = await consent_page(http, "alice", **pkce(native, redirect_uri=uri))
    assert redirect_params(await decide(http, page, "approve", remember=True), uri)["code"]
    again = await start(http, **pkce(native, redirect_uri=uri))
    assert again.status_code == 200 and parse_page(again.text).title == "Authorize access"
    silent = await start(http, **pkce(native, redirect_uri=uri, prompt="none", state="s"))
    assert redirect_params(silent, uri)["error"] == "consent_required"


async def test_prompt_none_cannot_be_combined(http: httpx.AsyncClient, public: Credentials) -> None:
    response = await start(http, **pkce(public, prompt="none login", state="xyz"))
    assert_redirect_error(response, "invalid_request")


# -- rule 12: CSRF on the consent form -----------------------------------------


@pytest.mark.parametrize("csrf", [None, "", "wrong", "x" * 43])
async def test_consent_post_without_the_sessions_csrf_token_is_refused(
    http: httpx.AsyncClient,
    public: Credentials,
    alice: User,
    storage: RecordingStorage,
    csrf: str | None,
) -> None:
    page = await consent_page(http, "alice", **pkce(public))
    form = parse_page(page.text).form
    response = await submit(http, form, {"csrf_token": csrf, "decision": "approve"})
    assert_error_page(response, 403)
    assert storage.codes == []
    # Nothing was remembered either.
    assert (await start(http, **pkce(public))).status_code == 200


async def test_csrf_token_of_another_session_is_refused(
    http: httpx.AsyncClient,
    oauth_app: OAuth2App,
    server: AuthorizationServer,
    public: Credentials,
    alice: User,
    storage: RecordingStorage,
) -> None:
    await server.create_user("mallory", PASSWORD)
    async with mounted(oauth_app) as mallory:
        theirs = parse_page((await consent_page(mallory, "mallory", **pkce(public))).text)
    page = await consent_page(http, "alice", **pkce(public))
    form = parse_page(page.text).form
    response = await submit(
        http, form, {"csrf_token": theirs.form.fields["csrf_token"], "decision": "approve"}
    )
    assert_error_page(response, 403)
    assert storage.codes == []


async def test_get_with_a_decision_approves_nothing(
    http: httpx.AsyncClient, public: Credentials, alice: User, storage: RecordingStorage
) -> None:
    page = await consent_page(http, "alice", **pkce(public))
    csrf = parse_page(page.text).form.fields["csrf_token"]
    response = await start(
        http, **pkce(public, decision="approve", remember="yes", csrf_token=csrf, state="xyz")
    )
    assert response.status_code == 200
    assert parse_page(response.text).title == "Authorize access"
    assert storage.codes == []
    # The page does not carry the decision fields back either.
    fields = parse_page(response.text).form.fields
    assert "decision" not in fields
    assert (await start(http, **pkce(public))).status_code == 200  # nothing remembered


async def test_post_without_a_decision_only_shows_the_page(
    http: httpx.AsyncClient, public: Credentials, alice: User, storage: RecordingStorage
) -> None:
    page = await consent_page(http, "alice", **pkce(public))
    response = await submit(http, parse_page(page.text).form, {"remember": None})
    assert response.status_code == 200
    assert parse_page(response.text).title == "Authorize access"
    assert storage.codes == []


async def test_consent_post_without_a_session_is_refused(
    http: httpx.AsyncClient, public: Credentials, alice: User, storage: RecordingStorage
) -> None:
    page = await consent_page(http, "alice", **pkce(public))
    # A cross-site form post: SameSite=Lax keeps the cookie at home.
    http.cookies.clear()
    response = await decide(http, page, "approve")
    assert_error_page(response, 403)
    assert storage.codes == []


# -- rule 15: the host application's own sign-in -------------------------------

HOST_LOGIN = "https://app.example/login"


def hook_app(server: AuthorizationServer, subject: str | None) -> OAuth2App:
    async def current_user(request: Request) -> ResourceOwner | None:
        assert isinstance(request, Request)
        if subject is None or request.cookies.get("host_session") != "yes":
            return None
        return ResourceOwner(subject=subject, name="Alice Example")

    return OAuth2App(server, current_user=current_user, login_url=HOST_LOGIN)


async def test_hook_mode_sends_the_signed_out_to_the_hosts_login(
    server: AuthorizationServer, public: Credentials
) -> None:
    async with mounted(hook_app(server, None)) as http:
        params = pkce(public, state="xyz")
        response = await start(http, **params)
        target = redirect_target(response)
        assert target.startswith(HOST_LOGIN + "?")
        assert query_of(target) == {"next": authorize_url(**params)}
        assert (await http.get(LOGIN)).status_code == 404


async def test_hook_mode_keeps_the_login_urls_own_query(
    server: AuthorizationServer, public: Credentials
) -> None:
    app = OAuth2App(
        server,
        current_user=lambda request: _none(),
        login_url="https://app.example/login?tenant=1",
    )
    async with mounted(app) as http:
        target = redirect_target(await start(http, **pkce(public)))
    assert target.startswith("https://app.example/login?tenant=1&next=")


async def _none() -> ResourceOwner | None:
    return None


async def test_hook_mode_consent_and_code_for_the_hooks_subject(
    server: AuthorizationServer, public: Credentials, resource_server: Credentials
) -> None:
    async with mounted(hook_app(server, "host-user-42")) as http:
        http.cookies.set("host_session", "yes", domain="as.example")
        page = await start(http, **pkce(public, state="xyz"))
        assert page.status_code == 200
        assert "signed in as Alice Example" in parse_page(page.text).text
        response = await decide(http, page, "approve")
        code = redirect_params(response, REDIRECT_URI)["code"]
        token = await exchange(http, code, client_id=public.client_id, verifier=VERIFIER)
        introspected = await http.post(
            ISSUER + "/introspect",
            data={"token": token.json()["access_token"]},
            auth=resource_server.basic,
        )
    assert introspected.json()["sub"] == "host-user-42"


async def test_hook_mode_consent_post_still_needs_the_csrf_token(
    server: AuthorizationServer, public: Credentials, storage: RecordingStorage
) -> None:
    async with mounted(hook_app(server, "host-user-42")) as http:
        http.cookies.set("host_session", "yes", domain="as.example")
        page = await start(http, **pkce(public))
        form = parse_page(page.text).form
        response = await submit(http, form, {"decision": "approve", "csrf_token": "forged"})
    assert_error_page(response, 403)
    assert storage.codes == []


async def test_current_user_and_login_url_go_together(server: AuthorizationServer) -> None:
    with pytest.raises(ValueError, match="go together"):
        OAuth2App(server, current_user=lambda request: _none())
    with pytest.raises(ValueError, match="go together"):
        OAuth2App(server, login_url=HOST_LOGIN)


# -- storage reached through the endpoint --------------------------------------


async def test_code_records_what_the_request_named(
    http: httpx.AsyncClient, public: Credentials, alice: User, storage: RecordingStorage
) -> None:
    response = await approved(
        http, "alice", **pkce(public, scope="read", redirect_uri=REDIRECT_URI, nonce="n-1")
    )
    assert redirect_params(response, REDIRECT_URI)["code"]
    (code,) = storage.codes
    assert code.client_id == public.client_id and code.subject == alice.user_id
    assert code.scope == frozenset({"read"}) and code.redirect_uri == REDIRECT_URI
    assert code.code_challenge == CHALLENGE and code.code_challenge_method == "S256"
    assert code.nonce == "n-1"


async def test_fragment_of_an_error_keeps_the_query_empty(
    http: httpx.AsyncClient, public: Credentials
) -> None:
    response = await start(http, **pkce(public, response_mode="fragment", scope="x", state="s"))
    target = redirect_target(response)
    assert fragment_of(target)["error"] == "invalid_scope"
    assert "?" not in target
