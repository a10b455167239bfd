"""The client credentials grant (RFC 6749 §4.4)."""

from __future__ import annotations

import pytest

from asgi_oauth import (
    AuthorizationServer,
    InvalidClientError,
    InvalidScopeError,
    UnauthorizedClientError,
)

from .conftest import Credentials
from .helpers import request

pytestmark = pytest.mark.anyio


async def test_issues_an_access_token_and_no_refresh_token(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    response = await server.token(request(confidential, grant_type="client_credentials"))
    assert response.refresh_token is None  # §4.4.3
    assert response.scope == {"read", "write"}
    assert response.expires_in == server.settings.access_token_lifetime
    info = await server.introspect_token(response.access_token)
    assert info.active and info.sub is None and info.client_id == confidential.client_id


async def test_requested_scope_is_granted_when_allowed(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    response = await server.token(
        request(confidential, grant_type="client_credentials", scope="read")
    )
    assert response.scope == {"read"}
    with pytest.raises(InvalidScopeError):
        await server.token(request(confidential, grant_type="client_credentials", scope="admin"))
    with pytest.raises(InvalidScopeError, match="malformed"):
        await server.token(request(confidential, grant_type="client_credentials", scope='a"b'))


async def test_public_client_cannot_use_it(server: AuthorizationServer) -> None:
    registered = await server.register_client(
        name="p", redirect_uris=["https://a.example/cb"], public=True
    )
    with pytest.raises(UnauthorizedClientError):
        await server.token(
            request(Credentials(registered.client.client_id, None), grant_type="client_credentials")
        )


async def test_unknown_client_and_wrong_secret_are_invalid_client(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    with pytest.raises(InvalidClientError):
        await server.token(request(Credentials("ghost", "x"), grant_type="client_credentials"))
    with pytest.raises(InvalidClientError):
        await server.token(
            request(Credentials(confidential.client_id, "wrong"), grant_type="client_credentials")
        )
