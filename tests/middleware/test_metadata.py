"""Protected resource metadata (RFC 9728): the document, its URL, and challenges naming it."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.types import Message

from asgi_oauth import AuthorizationServer
from asgi_oauth.middleware import BearerError, BearerTokenMiddleware
from asgi_oauth.middleware.metadata import metadata_document, metadata_path, metadata_url
from asgi_oauth.types import DPOP_SIGNING_ALGORITHMS

from ..conftest import ISSUER, Credentials
from .conftest import register_caller
from .test_bearer import (
    Called,
    Unavailable,
    access_token,
    bearer,
    challenge,
    connect,
    echo,
    no_token,
)

pytestmark = pytest.mark.anyio

RESOURCE = "https://api.example/v1"
WELL_KNOWN = "/.well-known/oauth-protected-resource/v1"
METADATA_URL = "https://api.example" + WELL_KNOWN


async def document(server: AuthorizationServer, **options: Any) -> dict[str, Any]:
    app = BearerTokenMiddleware(echo, introspector=server, resource=RESOURCE, **options)
    async with connect(app) as client:
        response = await client.get(WELL_KNOWN)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "public, max-age=3600"
    body: dict[str, Any] = response.json()
    return body


async def test_metadata_document_is_served_without_a_token(server: AuthorizationServer) -> None:
    assert await document(server) == {
        "resource": RESOURCE,
        "authorization_servers": [ISSUER],
        "bearer_methods_supported": ["header"],
        "dpop_signing_alg_values_supported": list(DPOP_SIGNING_ALGORITHMS),
    }


async def test_scopes_supported_come_from_the_rules_and_the_option(
    server: AuthorizationServer,
) -> None:
    body = await document(
        server,
        protect={"/": "read", "/admin": ["admin", "write"]},
        public=["/health"],
        scopes_supported=["profile", "read"],
    )
    assert body["scopes_supported"] == ["admin", "profile", "read", "write"]


@pytest.mark.parametrize(
    ("options", "methods"),
    [
        ({}, ["header"]),
        ({"allow_form_token": True}, ["header", "body"]),
        ({"allow_query_token": True}, ["header", "query"]),
        ({"allow_form_token": True, "allow_query_token": True}, ["header", "body", "query"]),
    ],
)
async def test_bearer_methods_follow_the_allow_flags(
    server: AuthorizationServer, options: dict[str, bool], methods: list[str]
) -> None:
    assert (await document(server, **options))["bearer_methods_supported"] == methods


async def test_explicit_authorization_servers_and_resource_name(
    server: AuthorizationServer,
) -> None:
    body = await document(
        server, authorization_servers=["https://idp.example"], resource_name="Photos API"
    )
    assert body["authorization_servers"] == ["https://idp.example"]
    assert body["resource_name"] == "Photos API"


async def test_a_custom_introspector_names_no_authorization_server_by_default() -> None:
    app = BearerTokenMiddleware(echo, introspector=Unavailable(), resource=RESOURCE)
    async with connect(app) as client:
        body = (await client.get(WELL_KNOWN)).json()
    assert body["authorization_servers"] == []


@pytest.mark.parametrize(
    ("path", "authorization", "status", "error"),
    [
        ("/photos", None, 401, None),
        ("/photos", "Bearer garbage", 401, "invalid_token"),
        ("/photos", "Bearer a b", 400, "invalid_request"),
        ("/admin", "read-token", 403, "insufficient_scope"),
    ],
)
async def test_every_challenge_names_the_metadata_url(
    server: AuthorizationServer,
    path: str,
    authorization: str | None,
    status: int,
    error: str | None,
) -> None:
    if authorization == "read-token":
        token = await access_token(server, await register_caller(server), "read")
        authorization = f"Bearer {token}"
    headers = {} if authorization is None else {"authorization": authorization}
    app = BearerTokenMiddleware(
        echo, introspector=server, resource=RESOURCE, protect={"/": "", "/admin": "admin"}
    )
    async with connect(app) as client:
        response = await client.get(path, headers=headers)
    assert response.status_code == status
    attributes = challenge(response)
    assert attributes["resource_metadata"] == METADATA_URL
    assert attributes.get("error") == error


async def test_503_challenge_names_the_metadata_url() -> None:
    app = BearerTokenMiddleware(Called(), introspector=Unavailable(), resource=RESOURCE)
    async with connect(app) as client:
        response = await client.get("/", headers=bearer("t"))
    assert response.status_code == 503
    assert challenge(response) == {"realm": "api", "resource_metadata": METADATA_URL}


async def test_middleware_challenge_method_is_what_it_sends(server: AuthorizationServer) -> None:
    middleware = BearerTokenMiddleware(echo, introspector=server, resource=RESOURCE)
    assert middleware.challenge(BearerError.missing()) == no_token(metadata=METADATA_URL)


async def test_without_resource_no_metadata_path_is_served(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    app = Called()
    async with connect(BearerTokenMiddleware(app, introspector=server)) as client:
        refused = await client.get(WELL_KNOWN)
        token = await access_token(server, confidential, "read")
        passed = await client.get(WELL_KNOWN, headers=bearer(token))
    assert refused.status_code == 401
    assert "resource_metadata" not in challenge(refused)
    assert passed.status_code == 204  # the app answered: an ordinary path
    assert app.calls == 1


async def test_metadata_path_is_not_served_to_websockets(server: AuthorizationServer) -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    app = Called()
    middleware = BearerTokenMiddleware(app, introspector=server, resource=RESOURCE)
    scope = {"type": "websocket", "path": WELL_KNOWN, "headers": [], "query_string": b""}
    await middleware(scope, receive, send)
    assert [m["type"] for m in sent] == ["websocket.close"]
    assert app.calls == 0


@pytest.mark.parametrize(
    "resource",
    [
        "api.example/v1",
        "ftp://api.example/v1",
        "https:///v1",
        "https://api.example/v1?x=1",
        "https://api.example/v1#top",
    ],
)
async def test_bad_resource_url_is_a_value_error_at_construction(
    server: AuthorizationServer, resource: str
) -> None:
    with pytest.raises(ValueError, match="resource must be an absolute URL"):
        BearerTokenMiddleware(echo, introspector=server, resource=resource)


@pytest.mark.parametrize(
    ("resource", "path", "url"),
    [
        ("https://api.example", "/.well-known/oauth-protected-resource", None),
        ("https://api.example/", "/.well-known/oauth-protected-resource", None),
        ("https://api.example/v1/", WELL_KNOWN, METADATA_URL),
        (
            "http://localhost:8000/a/b",
            "/.well-known/oauth-protected-resource/a/b",
            "http://localhost:8000/.well-known/oauth-protected-resource/a/b",
        ),
    ],
)
def test_metadata_url_inserts_the_well_known_path_before_the_resource_path(
    resource: str, path: str, url: str | None
) -> None:
    assert metadata_path(resource) == path
    assert metadata_url(resource) == (url or "https://api.example" + path)


def test_metadata_document_leaves_out_empty_optional_fields() -> None:
    assert metadata_document(
        RESOURCE, authorization_servers=[], scopes_supported=[], bearer_methods_supported=[]
    ) == {"resource": RESOURCE, "authorization_servers": [], "bearer_methods_supported": []}
