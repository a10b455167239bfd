"""Dynamic client registration (RFC 7591) and its management (RFC 7592), over HTTP."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.crypto import hash_token, verify_secret
from asgi_oauth.endpoints.registration import Registrar
from asgi_oauth.errors import StorageError, TemporarilyUnavailableError
from asgi_oauth.models import Client
from asgi_oauth.storage import MemoryStorage

from .browser_helpers import CHALLENGE, PASSWORD, VERIFIER, approved, exchange, redirect_params
from .conftest import ISSUER, REDIRECT_URI, FakeClock

pytestmark = pytest.mark.anyio

REGISTER = ISSUER + "/register"
TOKEN = ISSUER + "/token"
INITIAL_ACCESS_TOKEN = "initial-access-token-" + "x" * 32
OPEN = Settings(
    issuer=ISSUER,
    client_registration="open",
    scopes_supported=("read", "write", "admin"),
    registration_scopes=("read", "write"),
    registration_grant_types=frozenset(
        {"authorization_code", "refresh_token", "client_credentials"}
    ),
)
GATED = Settings(
    issuer=ISSUER,
    client_registration="initial_access_token",
    initial_access_token=INITIAL_ACCESS_TOKEN,
)
OFF = Settings(issuer=ISSUER)
WEB = {"redirect_uris": [REDIRECT_URI], "client_name": "Web App"}
SERVICE = {"grant_types": ["client_credentials"], "client_name": "Service"}
#: RFC 7592 §2.2: set by the server only.
SERVER_FIELDS = (
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
)


@pytest.fixture
def settings() -> Settings:
    return OPEN


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(http: httpx.AsyncClient, document: object, **headers: str) -> dict[str, Any]:
    response = await http.post(REGISTER, json=document, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def update_document(registered: dict[str, Any], **changes: object) -> dict[str, Any]:
    """What RFC 7592 §2.2 has a client send: its metadata as registered, changed."""
    document = {k: v for k, v in registered.items() if k not in SERVER_FIELDS}
    document.pop("client_secret", None)
    return {**document, **changes}


def assert_no_store(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_token"
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert_no_store(response)


# -- registering ---------------------------------------------------------------


async def test_confidential_registration_answers_with_the_client_information(
    http: httpx.AsyncClient, server: AuthorizationServer, clock: FakeClock
) -> None:
    response = await http.post(REGISTER, json={**WEB, "example_extension_parameter": "x"})
    assert response.status_code == 201, response.text
    assert_no_store(response)
    body = response.json()
    client_id = body["client_id"]
    assert body == {
        "client_id": client_id,
        "client_secret": body["client_secret"],
        "client_id_issued_at": int(clock.now),
        "client_secret_expires_at": 0,
        "registration_access_token": body["registration_access_token"],
        "registration_client_uri": f"{ISSUER}/register/{client_id}",
        # Omitted, and implied by an https redirect URI (OpenID Connect Registration §2).
        "application_type": "web",
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "client_name": "Web App",
        "scope": "read write",
        "require_pushed_authorization_requests": False,
        "dpop_bound_access_tokens": False,
        "id_token_signed_response_alg": "RS256",
    }
    stored = await server.storage.get_client(client_id)
    assert stored is not None and stored.name == "Web App" and not stored.is_public
    assert verify_secret(body["client_secret"], stored.secret_hash)


async def test_secrets_are_stored_only_as_hashes(
    http: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    body = await register(http, WEB)
    stored = await server.storage.get_client(body["client_id"])
    assert stored is not None
    assert stored.registration_access_token_hash == hash_token(body["registration_access_token"])
    assert body["registration_access_token"] not in repr(stored)
    assert body["client_secret"] not in repr(stored)


async def test_registered_confidential_client_gets_tokens_with_client_credentials(
    http: httpx.AsyncClient,
) -> None:
    body = await register(http, {**SERVICE, "token_endpoint_auth_method": "client_secret_post"})
    assert body["response_types"] == [] and body["redirect_uris"] == []
    assert body["token_endpoint_auth_method"] == "client_secret_post"
    for auth in ("basic", "post"):
        data = {"grant_type": "client_credentials", "scope": "read"}
        if auth == "post":
            data |= {"client_id": body["client_id"], "client_secret": body["client_secret"]}
            token = await http.post(TOKEN, data=data)
        else:
            token = await http.post(
                TOKEN, data=data, auth=(body["client_id"], body["client_secret"])
            )
        assert token.status_code == 200, token.text
        assert token.json()["scope"] == "read"


async def test_registered_public_client_completes_the_code_flow(
    http: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    redirect_uri = "http://127.0.0.1:8123/cb"
    body = await register(
        http,
        {
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": "Native App",
        },
    )
    assert "client_secret" not in body and "client_secret_expires_at" not in body
    stored = await server.storage.get_client(body["client_id"])
    assert stored is not None and stored.is_public
    await server.create_user("alice", PASSWORD)
    response = await approved(
        http,
        "alice",
        client_id=body["client_id"],
        response_type="code",
        redirect_uri=redirect_uri,
        code_challenge=CHALLENGE,
        code_challenge_method="S256",
        scope="read",
        state="xyz",
    )
    code = redirect_params(response, redirect_uri)["code"]
    token = await exchange(
        http, code, client_id=body["client_id"], redirect_uri=redirect_uri, verifier=VERIFIER
    )
    assert token.status_code == 200, token.text
    assert "refresh_token" in token.json()


async def test_loopback_and_private_use_redirect_uris_are_accepted(
    http: httpx.AsyncClient,
) -> None:
    uris = [
        "http://127.0.0.1:9000/cb",
        "http://[::1]/cb",
        "http://localhost/cb",
        "com.example.app:/cb",
        "cursor://anysphere.cursor-retrieval/oauth/callback",
    ]
    body = await register(http, {"redirect_uris": uris, "token_endpoint_auth_method": "none"})
    assert body["redirect_uris"] == uris
    # OpenID Connect Registration §2 would default to web; the URIs say native (SEP-837).
    assert body["application_type"] == "native"


async def test_flags_and_human_metadata_are_kept_and_echoed(
    http: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    human = {
        "client_uri": "https://app.example",
        "logo_uri": "https://app.example/logo.png",
        "tos_uri": "https://app.example/tos",
        "policy_uri": "http://localhost:8080/policy",
        "contacts": ["ops@app.example", "ops@app.example", "dev@app.example"],
        "software_id": "4NRB1-0XZABZI9E6-5SM3R",
        "software_version": "2.1",
    }
    flags = {
        "require_pushed_authorization_requests": True,
        "dpop_bound_access_tokens": True,
        "id_token_signed_response_alg": "ES256",
    }
    body = await register(http, {**WEB, **human, **flags, "client_name": None})
    assert "client_name" not in body  # null is omitted (RFC 7592 §2.2)
    assert body["contacts"] == ["ops@app.example", "dev@app.example"]
    assert {k: body[k] for k in human if k != "contacts"} == {
        k: v for k, v in human.items() if k != "contacts"
    }
    assert {k: body[k] for k in flags} == flags
    stored = await server.storage.get_client(body["client_id"])
    assert stored is not None
    assert stored.require_pushed_authorization_requests and stored.dpop_bound_access_tokens
    assert stored.id_token_signed_response_alg == "ES256"


@pytest.mark.parametrize(
    ("asked", "granted"),
    [(None, "read write"), ("read", "read"), ("read admin unknown", "read"), ("admin", None)],
)
async def test_scope_is_narrowed_to_the_registration_policy(
    http: httpx.AsyncClient, asked: str | None, granted: str | None
) -> None:
    document = dict(SERVICE) if asked is None else {**SERVICE, "scope": asked}
    body = await register(http, document)
    assert body.get("scope") == granted


@pytest.mark.parametrize(
    "settings",
    [Settings(issuer=ISSUER, client_registration="open", scopes_supported=("a", "b"))],
)
async def test_without_a_scope_policy_the_supported_scopes_are_allowed(
    http: httpx.AsyncClient,
) -> None:
    assert (await register(http, WEB))["scope"] == "a b"


# -- refusals -----------------------------------------------------------------

LONG = "https://app.example/" + "a" * 2000
REFUSALS: list[tuple[object, str, str]] = [
    ([WEB], "invalid_client_metadata", "JSON object"),
    ({"redirect_uris": REDIRECT_URI}, "invalid_client_metadata", "redirect_uris"),
    ({"redirect_uris": [7]}, "invalid_client_metadata", "redirect_uris"),
    ({"redirect_uris": [LONG]}, "invalid_client_metadata", "redirect_uris"),
    (
        {"redirect_uris": [f"https://app.example/{i}" for i in range(11)]},
        "invalid_client_metadata",
        "redirect_uris",
    ),
    ({"redirect_uris": ["http://app.example/cb"]}, "invalid_redirect_uri", "loopback"),
    ({"redirect_uris": ["https://app.example/cb#x"]}, "invalid_redirect_uri", "fragment"),
    ({"redirect_uris": ["/cb"]}, "invalid_redirect_uri", "absolute"),
    ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri", "private-use"),
    ({"redirect_uris": ["data:text/html,x"]}, "invalid_redirect_uri", "private-use"),
    (
        {"redirect_uris": ["http://127.0.0.1/cb"], "application_type": "web"},
        "invalid_redirect_uri",
        "web application",
    ),
    ({**WEB, "application_type": "desktop"}, "invalid_client_metadata", "application_type"),
    ({"client_name": "No redirect"}, "invalid_redirect_uri", "redirect_uris"),
    (
        {**WEB, "token_endpoint_auth_method": "private_key_jwt"},
        "invalid_client_metadata",
        "token_endpoint_auth_method",
    ),
    ({**WEB, "grant_types": "authorization_code"}, "invalid_client_metadata", "grant_types"),
    (
        {**WEB, "grant_types": ["urn:example:unknown"]},
        "invalid_client_metadata",
        "unsupported grant type",
    ),
    (
        {**WEB, "grant_types": ["authorization_code", "password"]},
        "invalid_client_metadata",
        "password",
    ),
    ({**WEB, "grant_types": ["implicit"]}, "invalid_client_metadata", "implicit"),
    ({**WEB, "grant_types": []}, "invalid_client_metadata", "grant_types"),
    ({**WEB, "response_types": ["token"]}, "invalid_client_metadata", "response_types"),
    ({**WEB, "response_types": ["code id_token"]}, "invalid_client_metadata", "response type"),
    ({**WEB, "response_types": []}, "invalid_client_metadata", "response_types"),
    ({**SERVICE, "response_types": ["code"]}, "invalid_client_metadata", "response_types"),
    ({**WEB, "response_types": "code"}, "invalid_client_metadata", "response_types"),
    (
        {**SERVICE, "token_endpoint_auth_method": "none"},
        "invalid_client_metadata",
        "client_credentials",
    ),
    ({**WEB, "client_name": 5}, "invalid_client_metadata", "client_name"),
    ({**WEB, "client_name": ""}, "invalid_client_metadata", "client_name"),
    ({**WEB, "client_name": "a\nb"}, "invalid_client_metadata", "client_name"),
    ({**WEB, "client_uri": "http://app.example"}, "invalid_client_metadata", "client_uri"),
    ({**WEB, "logo_uri": "javascript:alert(1)"}, "invalid_client_metadata", "logo_uri"),
    ({**WEB, "tos_uri": "terms"}, "invalid_client_metadata", "tos_uri"),
    ({**WEB, "policy_uri": 7}, "invalid_client_metadata", "policy_uri"),
    ({**WEB, "contacts": "ops@app.example"}, "invalid_client_metadata", "contacts"),
    (
        {**WEB, "contacts": [f"{i}@app.example" for i in range(11)]},
        "invalid_client_metadata",
        "contacts",
    ),
    ({**WEB, "software_id": 1}, "invalid_client_metadata", "software_id"),
    ({**WEB, "software_version": ["1"]}, "invalid_client_metadata", "software_version"),
    ({**WEB, "scope": ["read"]}, "invalid_client_metadata", "scope"),
    ({**WEB, "scope": "read  write"}, "invalid_client_metadata", "scope"),
    ({**WEB, "scope": 'read "write"'}, "invalid_client_metadata", "scope"),
    (
        {**WEB, "require_pushed_authorization_requests": "yes"},
        "invalid_client_metadata",
        "require_pushed",
    ),
    ({**WEB, "dpop_bound_access_tokens": 1}, "invalid_client_metadata", "dpop_bound_access_tokens"),
    ({**WEB, "id_token_signed_response_alg": "none"}, "invalid_client_metadata", "id_token_signed"),
    (
        {**WEB, "id_token_signed_response_alg": "HS256"},
        "invalid_client_metadata",
        "id_token_signed",
    ),
]


@pytest.mark.parametrize(("document", "error", "named"), REFUSALS)
async def test_invalid_metadata_is_refused_and_nothing_is_stored(
    http: httpx.AsyncClient, server: AuthorizationServer, document: object, error: str, named: str
) -> None:
    response = await http.post(REGISTER, json=document)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error
    assert named in response.json()["error_description"]
    assert_no_store(response)
    assert await server.storage.list_clients() == []


@pytest.mark.parametrize(
    "settings",
    [
        Settings(
            issuer="http://as.example/oauth2", insecure_transport=True, client_registration="open"
        )
    ],
)
async def test_insecure_transport_gives_registered_redirect_uris_no_leniency(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(REGISTER, json={"redirect_uris": ["http://app.example/cb"]})
    assert response.json()["error"] == "invalid_redirect_uri"


@pytest.mark.parametrize(
    ("content", "headers", "status", "error"),
    [
        (
            b"redirect_uris=x",
            {"content-type": "application/x-www-form-urlencoded"},
            415,
            "invalid_request",
        ),
        (b'{"client_name": "x"}', {"content-type": "text/plain"}, 415, "invalid_request"),
        (b'{"client_name": "x"}', {}, 415, "invalid_request"),
        (b"{not json", {"content-type": "application/json"}, 400, "invalid_client_metadata"),
        (b'{"a": 1, "a": 2}', {"content-type": "application/json"}, 400, "invalid_client_metadata"),
        (b'{"a": NaN}', {"content-type": "application/json"}, 400, "invalid_client_metadata"),
        (b'{"a": "\xff"}', {"content-type": "application/json"}, 400, "invalid_client_metadata"),
        (b"[" * 100_000, {"content-type": "application/json"}, 413, "invalid_request"),
        (b"[" * 60_000, {"content-type": "application/json"}, 400, "invalid_client_metadata"),
    ],
    ids=["form", "text", "no-type", "junk", "repeated", "nan", "not-utf8", "too-large", "deep"],
)
async def test_the_body_must_be_bounded_json(
    http: httpx.AsyncClient,
    server: AuthorizationServer,
    content: bytes,
    headers: dict[str, str],
    status: int,
    error: str,
) -> None:
    response = await http.post(REGISTER, content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert await server.storage.list_clients() == []


async def test_other_methods_and_paths(http: httpx.AsyncClient) -> None:
    get = await http.get(REGISTER)
    assert get.status_code == 405 and get.headers["allow"] == "POST"
    post = await http.post(REGISTER + "/abc", json=WEB)
    assert post.status_code == 405 and post.headers["allow"] == "GET, PUT, DELETE"
    assert (await http.get(REGISTER + "/")).status_code == 404
    assert (await http.get(ISSUER + "/registered")).status_code == 404


# -- who may register ---------------------------------------------------------


@pytest.mark.parametrize("settings", [GATED])
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token",
        f"Basic {INITIAL_ACCESS_TOKEN}",
        f"Bearer {INITIAL_ACCESS_TOKEN}x",
    ],
)
async def test_gated_registration_needs_the_initial_access_token(
    http: httpx.AsyncClient, server: AuthorizationServer, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    assert_invalid_token(await http.post(REGISTER, json=WEB, headers=headers))
    assert await server.storage.list_clients() == []


@pytest.mark.parametrize("settings", [GATED])
async def test_gated_registration_with_the_initial_access_token(http: httpx.AsyncClient) -> None:
    body = await register(http, WEB, **bearer(INITIAL_ACCESS_TOKEN))
    # The registration access token, not the initial one, manages the client.
    assert_invalid_token(
        await http.get(body["registration_client_uri"], headers=bearer(INITIAL_ACCESS_TOKEN))
    )
    read = await http.get(
        body["registration_client_uri"], headers=bearer(body["registration_access_token"])
    )
    assert read.status_code == 200


@pytest.mark.parametrize("settings", [OFF])
async def test_registration_off_is_no_endpoint(
    http: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    assert (await http.post(REGISTER, json=WEB)).status_code == 404
    assert (await http.get(REGISTER + "/abc", headers=bearer("x"))).status_code == 404
    assert "registration_endpoint" not in server.metadata()
    with pytest.raises(Exception, match="no such endpoint"):
        await Registrar(server.storage, OFF).register(WEB, initial_access_token=None)


async def test_metadata_advertises_the_registration_endpoint(http: httpx.AsyncClient) -> None:
    metadata = (await http.get("/.well-known/oauth-authorization-server/oauth2")).json()
    assert metadata["registration_endpoint"] == REGISTER


# -- reading, updating, deleting ---------------------------------------------


async def test_read_returns_the_metadata_and_the_same_registration_access_token(
    http: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    body = await register(http, {**WEB, "contacts": ["ops@app.example"], "scope": "read"})
    before = await server.storage.get_client(body["client_id"])
    response = await http.get(
        body["registration_client_uri"], headers=bearer(body["registration_access_token"])
    )
    assert response.status_code == 200, response.text
    assert_no_store(response)
    read = response.json()
    assert "client_secret" not in read
    # RFC 7592 §3: the response carries the token; a read changes nothing stored.
    assert read == {k: v for k, v in body.items() if k != "client_secret"}
    assert await server.storage.get_client(body["client_id"]) == before
    again = await http.get(
        body["registration_client_uri"], headers=bearer(body["registration_access_token"])
    )
    assert again.status_code == 200


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_management_refuses_any_other_token_with_401(
    http: httpx.AsyncClient, server: AuthorizationServer, method: str
) -> None:
    mine = await register(http, WEB)
    other = await register(http, WEB)
    uri, document = mine["registration_client_uri"], update_document(mine)
    cases: list[tuple[str, dict[str, str]]] = [
        (uri, {}),
        (uri, bearer("not-the-token")),
        (uri, {"Authorization": f"Basic {mine['registration_access_token']}"}),
        (uri, bearer(other["registration_access_token"])),
        (f"{REGISTER}/unknown-client", bearer(mine["registration_access_token"])),
    ]
    for url, headers in cases:
        response = await http.request(method, url, json=document, headers=headers)
        assert_invalid_token(response)
    assert len(await server.storage.list_clients()) == 2


async def test_a_client_registered_otherwise_cannot_be_managed(
    http: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    registered = await server.register_client(name="Admin-made", redirect_uris=[REDIRECT_URI])
    client_id = registered.client.client_id
    assert_invalid_token(await http.get(f"{REGISTER}/{client_id}", headers=bearer("x")))


async def test_update_replaces_the_metadata_and_keeps_id_and_secret(
    http: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    body = await register(
        http,
        {
            **WEB,
            "grant_types": ["authorization_code", "client_credentials"],
            "logo_uri": "https://app.example/logo.png",
        },
    )
    document = update_document(
        body, client_name="Renamed", redirect_uris=["https://app.example/new"], scope="read"
    )
    del document["logo_uri"]  # RFC 7592 §2.2: an omitted field is deleted
    response = await http.put(
        body["registration_client_uri"],
        json={**document, "client_secret": body["client_secret"]},
        headers=bearer(body["registration_access_token"]),
    )
    assert response.status_code == 200, response.text
    assert_no_store(response)
    updated = response.json()
    assert updated["client_id"] == body["client_id"] and "client_secret" not in updated
    assert updated["client_name"] == "Renamed" and "logo_uri" not in updated
    assert updated["redirect_uris"] == ["https://app.example/new"]
    assert updated["registration_access_token"] == body["registration_access_token"]
    stored = await server.storage.get_client(body["client_id"])
    assert stored is not None and stored.name == "Renamed" and stored.scope == {"read"}
    assert stored.created_at == body["client_id_issued_at"]
    token = await http.post(
        TOKEN,
        data={"grant_type": "client_credentials"},
        auth=(body["client_id"], body["client_secret"]),
    )
    assert token.status_code == 200, token.text
    assert token.json()["scope"] == "read"


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"client_id": "another"}, "invalid_request"),
        ({"client_id": None}, "invalid_request"),
        ({"client_secret": "wrong"}, "invalid_request"),
        ({"client_secret": 5}, "invalid_request"),
        *(({name: 1}, "invalid_request") for name in SERVER_FIELDS),
        ({"token_endpoint_auth_method": "none"}, "invalid_client_metadata"),
        ({"redirect_uris": ["http://app.example/cb"]}, "invalid_redirect_uri"),
        ({"grant_types": ["password"]}, "invalid_client_metadata"),
    ],
)
async def test_refused_update_changes_nothing(
    http: httpx.AsyncClient, server: AuthorizationServer, changes: dict[str, object], error: str
) -> None:
    body = await register(http, WEB)
    before = await server.storage.get_client(body["client_id"])
    document = {k: v for k, v in update_document(body, **changes).items() if v is not None}
    response = await http.put(
        body["registration_client_uri"],
        json=document,
        headers=bearer(body["registration_access_token"]),
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error
    assert await server.storage.get_client(body["client_id"]) == before


async def test_update_needs_a_json_object(http: httpx.AsyncClient) -> None:
    body = await register(http, WEB)
    headers = bearer(body["registration_access_token"])
    uri = body["registration_client_uri"]
    not_json = await http.put(uri, content=b"client_id=x", headers=headers)
    assert not_json.status_code == 415
    array = await http.put(uri, json=[], headers=headers)
    assert array.status_code == 400 and array.json()["error"] == "invalid_client_metadata"


async def test_delete_removes_the_client_and_its_tokens(
    http: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    body = await register(http, SERVICE)
    credentials = (body["client_id"], body["client_secret"])
    issued = await http.post(TOKEN, data={"grant_type": "client_credentials"}, auth=credentials)
    access_token = issued.json()["access_token"]
    uri, headers = body["registration_client_uri"], bearer(body["registration_access_token"])
    response = await http.delete(uri, headers=headers)
    assert response.status_code == 204 and response.content == b""
    assert_no_store(response)
    assert await server.storage.list_clients() == []
    assert not (await server.introspect_token(access_token)).active
    assert_invalid_token(await http.get(uri, headers=headers))
    assert_invalid_token(await http.delete(uri, headers=headers))
    again = await http.post(TOKEN, data={"grant_type": "client_credentials"}, auth=credentials)
    assert again.status_code == 401 and again.json()["error"] == "invalid_client"


# -- what leaves the server ---------------------------------------------------


async def test_events_name_the_client_and_no_secret_is_logged(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        body = await register(http, WEB)
        uri = body["registration_client_uri"]
        read = await http.get(uri, headers=bearer(body["registration_access_token"]))
        token = read.json()["registration_access_token"]
        updated = await http.put(uri, json=update_document(body), headers=bearer(token))
        token = updated.json()["registration_access_token"]
        await http.get(uri, headers=bearer("wrong"))
        await http.delete(uri, headers=bearer(token))
    events = [(getattr(r, "event", None), getattr(r, "fields", None)) for r in caplog.records]
    client = {"client_id": body["client_id"]}
    assert ("client_registered", client) in events
    assert ("client_registration_updated", client) in events
    assert ("client_registration_deleted", client) in events
    secrets = [
        body["client_secret"],
        body["registration_access_token"],
        read.json()["registration_access_token"],
        token,
    ]
    for record in caplog.records:
        logged = record.getMessage() + repr(getattr(record, "fields", ""))
        assert not any(secret in logged for secret in secrets), logged


class FailingStorage(MemoryStorage):
    async def add_client(self, client: Client) -> bool:
        raise StorageError("database is down")


async def test_a_failing_store_is_temporarily_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registrar = Registrar(FailingStorage(), OPEN)
    with caplog.at_level(logging.ERROR), pytest.raises(TemporarilyUnavailableError):
        await registrar.register(WEB, initial_access_token=None)
    assert "database is down" in caplog.text
