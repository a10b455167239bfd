"""The password grant (RFC 6749 §4.3): off by default, throttled when on."""

from __future__ import annotations

import dataclasses

import pytest

from asgi_oauth import (
    AuthorizationServer,
    InvalidGrantError,
    Settings,
    UnsupportedGrantTypeError,
)
from asgi_oauth.storage import MemoryStorage

from .conftest import ISSUER, Credentials, FakeClock
from .helpers import request

pytestmark = pytest.mark.anyio


async def test_password_grant_is_off_by_default(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    await server.create_user("alice", "correct horse")
    with pytest.raises(UnsupportedGrantTypeError):
        await server.token(
            request(confidential, grant_type="password", username="alice", password="x")
        )
    assert "password" not in server.metadata()["grant_types_supported"]  # type: ignore[operator]


@pytest.fixture
async def password_server(clock: FakeClock) -> AuthorizationServer:
    settings = Settings(
        issuer=ISSUER,
        enabled_grants=frozenset({"password", "refresh_token"}),
        max_failed_attempts=3,
    )
    return AuthorizationServer(MemoryStorage(), settings, clock=clock)


@pytest.fixture
async def password_client(password_server: AuthorizationServer) -> Credentials:
    registered = await password_server.register_client(
        name="legacy", grant_types=["password", "refresh_token"], scope=["read"]
    )
    return Credentials(registered.client.client_id, registered.client_secret)


async def test_password_grant_when_enabled(
    password_server: AuthorizationServer, password_client: Credentials
) -> None:
    user = await password_server.create_user("alice", "correct horse")
    stored = await password_server.storage.get_user("alice")
    assert stored is not None and "correct horse" not in stored.password_hash
    response = await password_server.token(
        request(password_client, grant_type="password", username="alice", password="correct horse")
    )
    assert response.refresh_token is not None
    info = await password_server.introspect_token(response.access_token)
    assert info.sub == user.user_id


async def test_wrong_password_and_unknown_user_are_invalid_grant(
    password_server: AuthorizationServer, password_client: Credentials
) -> None:
    await password_server.create_user("alice", "correct horse")
    for username, password in (("alice", "wrong"), ("bob", "correct horse")):
        with pytest.raises(InvalidGrantError, match="invalid username or password"):
            await password_server.token(
                request(
                    password_client, grant_type="password", username=username, password=password
                )
            )


async def test_password_guessing_is_throttled(
    password_server: AuthorizationServer, password_client: Credentials
) -> None:
    await password_server.create_user("alice", "correct horse")
    for _ in range(3):
        with pytest.raises(InvalidGrantError):
            await password_server.token(
                request(password_client, grant_type="password", username="alice", password="no")
            )
    with pytest.raises(InvalidGrantError) as blocked:
        await password_server.token(
            request(
                password_client, grant_type="password", username="alice", password="correct horse"
            )
        )
    assert blocked.value.status == 429
    assert int(blocked.value.headers["Retry-After"]) > 0


async def test_user_with_unknown_hash_scheme_cannot_sign_in(
    password_server: AuthorizationServer, password_client: Credentials
) -> None:
    user = await password_server.create_user("alice", "correct horse")
    broken = dataclasses.replace(user, password_hash="md5$a$b$c$d$e")
    await password_server.storage.save_user(broken)
    with pytest.raises(InvalidGrantError):
        await password_server.token(
            request(
                password_client, grant_type="password", username="alice", password="correct horse"
            )
        )


async def test_create_user_refuses_empty_credentials(password_server: AuthorizationServer) -> None:
    with pytest.raises(ValueError, match="empty"):
        await password_server.create_user("", "pw")
