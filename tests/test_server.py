"""Introspection (RFC 7662), revocation (RFC 7009), metadata (RFC 8414) and failures."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from asgi_oauth import (
    AuthorizationServer,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    OAuthRequest,
    Settings,
    StorageError,
    TemporarilyUnavailableError,
    Token,
    UnsupportedGrantTypeError,
)
from asgi_oauth.crypto import hash_token
from asgi_oauth.storage import MemoryStorage

from .conftest import ISSUER, Credentials, FakeClock
from .helpers import request
from .test_grant_refresh_token import first_pair

pytestmark = pytest.mark.anyio


async def client_token(server: AuthorizationServer, creds: Credentials) -> str:
    return (await server.token(request(creds, grant_type="client_credentials"))).access_token


async def test_introspection_of_own_token_is_active_with_rfc_7662_fields(
    server: AuthorizationServer, confidential: Credentials, clock: FakeClock
) -> None:
    pair = await first_pair(server, confidential)
    info = await server.introspect(request(confidential, token=pair.access_token))
    assert info.to_dict() == {
        "active": True,
        "scope": "read write",
        "client_id": confidential.client_id,
        "token_type": "Bearer",
        "exp": int(clock.now) + 3600,
        "iat": int(clock.now),
        "iss": ISSUER,
        "sub": "user-1",
    }


async def test_resource_server_may_introspect_other_clients_tokens(
    server: AuthorizationServer, confidential: Credentials, resource_server: Credentials
) -> None:
    token = await client_token(server, confidential)
    info = await server.introspect(request(resource_server, token=token))
    assert info.active and info.client_id == confidential.client_id


async def test_other_clients_learn_only_inactive(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    token = await client_token(server, confidential)
    other = await server.register_client(name="other", grant_types=["client_credentials"])
    creds = Credentials(other.client.client_id, other.client_secret)
    info = await server.introspect(request(creds, token=token))
    assert info.to_dict() == {"active": False}


async def test_public_clients_cannot_introspect(
    server: AuthorizationServer, confidential: Credentials, public: Credentials
) -> None:
    token = await client_token(server, confidential)
    with pytest.raises(InvalidClientError):
        await server.introspect(request(public, token=token))


async def test_introspection_requires_client_authentication(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    token = await client_token(server, confidential)
    with pytest.raises(InvalidClientError):
        await server.introspect(request(None, token=token))
    with pytest.raises(InvalidRequestError, match="missing parameter: token"):
        await server.introspect(request(confidential))


@pytest.mark.parametrize("state", ["unknown", "expired", "revoked"])
async def test_inactive_tokens_say_nothing_else(
    server: AuthorizationServer,
    confidential: Credentials,
    clock: FakeClock,
    state: str,
) -> None:
    token = await client_token(server, confidential)
    if state == "unknown":
        token = "not-a-token"
    elif state == "expired":
        clock.advance(3600)
    else:
        await server.revoke(request(confidential, token=token))
    info = await server.introspect(request(confidential, token=token))
    assert info.to_dict() == {"active": False}


async def test_refresh_tokens_introspect_as_refresh_tokens(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    pair = await first_pair(server, confidential)
    assert pair.refresh_token is not None
    info = await server.introspect(request(confidential, token=pair.refresh_token))
    assert info.active and info.token_type == "refresh_token"


async def test_revoking_an_access_token_leaves_the_refresh_token(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    pair = await first_pair(server, confidential)
    assert pair.refresh_token is not None
    await server.revoke(request(confidential, token=pair.access_token))
    assert not (await server.introspect_token(pair.access_token)).active
    assert (await server.introspect_token(pair.refresh_token)).active


async def test_revoking_a_refresh_token_revokes_its_access_tokens(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    pair = await first_pair(server, confidential)
    assert pair.refresh_token is not None
    # RFC 7009 §2.1: a wrong hint must not stop the revocation.
    await server.revoke(
        request(confidential, token=pair.refresh_token, token_type_hint="access_token")
    )
    assert not (await server.introspect_token(pair.refresh_token)).active
    assert not (await server.introspect_token(pair.access_token)).active


async def test_revoking_unknown_or_foreign_tokens_is_silent(
    server: AuthorizationServer, confidential: Credentials, public: Credentials
) -> None:
    token = await client_token(server, confidential)
    await server.revoke(request(confidential, token="unknown", token_type_hint="made_up"))
    await server.revoke(request(public, token=token))
    assert (await server.introspect_token(token)).active


async def test_metadata_urls_come_from_the_issuer(server: AuthorizationServer) -> None:
    metadata = server.metadata()
    assert metadata["issuer"] == ISSUER
    for name, path in (
        ("token_endpoint", "/token"),
        ("introspection_endpoint", "/introspect"),
        ("revocation_endpoint", "/revoke"),
    ):
        assert metadata[name] == ISSUER + path
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert "scopes_supported" not in metadata


async def test_metadata_lists_configured_scopes(clock: FakeClock) -> None:
    server = AuthorizationServer(
        MemoryStorage(), Settings(issuer=ISSUER, scopes_supported=("read",)), clock=clock
    )
    assert server.metadata()["scopes_supported"] == ["read"]


async def test_unknown_and_missing_grant_type(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    with pytest.raises(UnsupportedGrantTypeError):
        await server.token(request(confidential, grant_type="urn:made:up"))
    with pytest.raises(InvalidRequestError, match="grant_type"):
        await server.token(request(confidential))


class BrokenStorage(MemoryStorage):
    """A store whose database has gone away for writes, or for everything."""

    def __init__(self) -> None:
        super().__init__()
        self.reads_fail = False

    async def save_tokens(self, tokens: Sequence[Token]) -> None:
        raise StorageError("disk full")

    async def get_token(self, token_hash: str) -> Token | None:
        if self.reads_fail:
            raise StorageError("connection lost")
        return await super().get_token(token_hash)


async def test_storage_failure_is_temporarily_unavailable(clock: FakeClock) -> None:
    storage = BrokenStorage()
    server = AuthorizationServer(storage, Settings(issuer=ISSUER), clock=clock)
    registered = await server.register_client(name="c", grant_types=["client_credentials"])
    creds = Credentials(registered.client.client_id, registered.client_secret)
    with pytest.raises(TemporarilyUnavailableError) as failure:
        await server.token(request(creds, grant_type="client_credentials"))
    assert failure.value.status == 503
    assert storage._tokens == {}  # nothing half-written
    storage.reads_fail = True
    with pytest.raises(TemporarilyUnavailableError):
        await server.introspect(request(creds, token="x"))
    with pytest.raises(TemporarilyUnavailableError):
        await server.introspect_token("x")
    with pytest.raises(TemporarilyUnavailableError):
        await server.revoke(request(creds, token="x"))


async def test_expired_rows_are_purged_in_the_background(
    clock: FakeClock,
) -> None:
    storage = MemoryStorage()
    settings = Settings(issuer=ISSUER, access_token_lifetime=5, purge_interval=10)
    server = AuthorizationServer(storage, settings, clock=clock)
    registered = await server.register_client(name="c", grant_types=["client_credentials"])
    creds = Credentials(registered.client.client_id, registered.client_secret)
    for _ in range(5):
        await server.token(request(creds, grant_type="client_credentials"))
    assert len(storage._tokens) == 5
    clock.advance(11)
    await server.token(request(creds, grant_type="client_credentials"))
    await server.close()  # waits for the background purge
    assert len(storage._tokens) == 1


async def test_explicit_purge_keeps_live_tokens(
    server: AuthorizationServer, confidential: Credentials, clock: FakeClock
) -> None:
    old = await client_token(server, confidential)
    clock.advance(3000)
    new = await client_token(server, confidential)
    clock.advance(700)
    assert await server.purge_expired() == 1
    assert (await server.introspect_token(new)).active
    assert await server.storage.get_token(hash_token(old)) is None
    assert await server.storage.get_token(hash_token(new)) is not None


async def test_registering_a_taken_client_id_is_refused(server: AuthorizationServer) -> None:
    first = await server.register_client(
        name="a", grant_types=["client_credentials"], client_id="x"
    )
    with pytest.raises(ValueError, match="already registered"):
        await server.register_client(name="b", grant_types=["client_credentials"], client_id="x")
    stored = await server.storage.get_client("x")
    assert stored == first.client


async def test_create_user_refuses_a_taken_username_and_replaces_nothing(
    server: AuthorizationServer,
) -> None:
    alice = await server.create_user("alice", "first password")
    with pytest.raises(ValueError, match="already taken"):
        await server.create_user("alice", "second password")
    signed_in = await server.authenticate_user(OAuthRequest(), "alice", "first password")
    assert signed_in == alice
    with pytest.raises(InvalidGrantError):
        await server.authenticate_user(OAuthRequest(), "alice", "second password")


@pytest.mark.parametrize("username", ["al\x00ice", " alice", "alice\n", ""])
async def test_create_user_refuses_a_username_that_is_not_printable(
    server: AuthorizationServer, username: str
) -> None:
    with pytest.raises(ValueError, match="username"):
        await server.create_user(username, "password")
    assert await server.storage.list_users() == []
