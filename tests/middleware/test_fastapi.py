"""FastAPI: ``Security(OAuth2Scopes(...), scopes=[...])`` behind BearerTokenMiddleware."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI, Security
from fastapi.openapi.models import OAuth2 as OAuth2Model

from asgi_oauth import AuthorizationServer
from asgi_oauth.middleware import BearerTokenMiddleware, BearerUser
from asgi_oauth.middleware.fastapi import OAuth2Scopes

from ..conftest import ISSUER, Credentials
from .test_bearer import access_token, bearer, challenge, connect, no_token

pytestmark = pytest.mark.anyio

SCOPES = {"read": "Read your things", "admin": "Administer everything"}
oauth2 = OAuth2Scopes(issuer=ISSUER + "/", scopes=SCOPES)


def api(server: AuthorizationServer) -> FastAPI:
    api = FastAPI()
    api.add_middleware(
        BearerTokenMiddleware,
        introspector=server,
        protect={"/": ""},
        public=["/openapi.json", "/open"],
    )

    @api.get("/me")
    async def me(
        user: Annotated[BearerUser, Security(oauth2, scopes=["read"])],
    ) -> dict[str, object]:
        return {
            "client_id": user.client_id,
            "subject": user.subject,
            "scope": sorted(user.introspection.scope),
        }

    @api.get("/open/admin")
    async def admin(user: Annotated[BearerUser, Security(oauth2, scopes=["admin"])]) -> str:
        return user.identity

    return api


@pytest.fixture
async def client(server: AuthorizationServer) -> AsyncIterator[httpx.AsyncClient]:
    async with connect(api(server)) as client:
        yield client


async def test_route_gets_the_bearer_user(
    client: httpx.AsyncClient, server: AuthorizationServer, caller: Credentials
) -> None:
    token = await access_token(server, caller, "read write")
    response = await client.get("/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {
        "client_id": caller.client_id,
        "subject": None,
        "scope": ["read", "write"],
    }


async def test_missing_scope_is_403_with_the_challenge(
    client: httpx.AsyncClient, server: AuthorizationServer, caller: Credentials
) -> None:
    token = await access_token(server, caller, "write")
    response = await client.get("/me", headers=bearer(token))
    assert response.status_code == 403
    assert challenge(response) == {
        "realm": "api",
        "error": "insufficient_scope",
        "error_description": "the access token lacks scope",
        "scope": "read write",  # with the token's own (MCP SEP-835)
    }
    # FastAPI wraps an HTTPException's detail: the RFC 6750 body sits under "detail".
    assert response.json() == {
        "detail": {
            "error": "insufficient_scope",
            "error_description": "the access token lacks scope",
        }
    }


async def test_public_path_without_a_token_is_401_without_error(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/open/admin")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == no_token(scope="admin")


async def test_public_path_with_the_scope_reaches_the_route(
    client: httpx.AsyncClient, server: AuthorizationServer, caller: Credentials
) -> None:
    token = await access_token(server, caller, "admin")
    response = await client.get("/open/admin", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == caller.client_id


async def test_openapi_shows_the_authorization_code_flow(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["components"]["securitySchemes"]["OAuth2Scopes"] == {
        "type": "oauth2",
        "flows": {
            "authorizationCode": {
                "authorizationUrl": ISSUER + "/authorize",
                "tokenUrl": ISSUER + "/token",
                "scopes": SCOPES,
            }
        },
    }
    assert document["paths"]["/me"]["get"]["security"] == [{"OAuth2Scopes": ["read"]}]


async def test_without_the_middleware_the_dependency_answers_401() -> None:
    bare = FastAPI()

    @bare.get("/me")
    async def me(user: Annotated[BearerUser, Security(oauth2, scopes=["read"])]) -> str:
        return user.identity

    async with connect(bare) as client:
        response = await client.get("/me", headers=bearer("whatever"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api", scope="read"'


def test_realm_and_description_are_kept() -> None:
    scheme = OAuth2Scopes(issuer=ISSUER, realm="photos", description="Our login")
    assert scheme.realm == "photos"
    model = scheme.model
    assert isinstance(model, OAuth2Model)
    assert model.description == "Our login"
    assert model.flows.authorizationCode is not None
    assert model.flows.authorizationCode.scopes == {}
