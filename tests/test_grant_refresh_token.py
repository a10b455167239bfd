"""Refresh tokens (RFC 6749 §6): rotation, narrowing, reuse detection (RFC 9700 §4.14.2)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from asgi_oauth import (
    AuthorizationServer,
    InvalidGrantError,
    InvalidScopeError,
    OAuthRequest,
    Settings,
    TokenResponse,
)
from asgi_oauth.crypto import Sealer, hash_token
from asgi_oauth.storage import MemoryStorage

from .conftest import ISSUER, REDIRECT_URI, Credentials, FakeClock
from .dpop_helpers import DPoPKey
from .helpers import request
from .test_grant_authorization_code import exchange, issue_code

pytestmark = pytest.mark.anyio


async def first_pair(server: AuthorizationServer, creds: Credentials) -> TokenResponse:
    code = await issue_code(server, creds, scope="read write")
    return await server.token(request(creds, **exchange(creds, code)))


async def refresh(
    server: AuthorizationServer, creds: Credentials, token: str | None, **extra: str
) -> TokenResponse:
    assert token is not None
    form = {"grant_type": "refresh_token", "refresh_token": token, **extra}
    return await server.token(request(creds, **form))


async def active(server: AuthorizationServer, token: str | None) -> bool:
    assert token is not None
    return (await server.introspect_token(token)).active


async def test_refresh_rotates_the_refresh_token(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    pair = await first_pair(server, confidential)
    new = await refresh(server, confidential, pair.refresh_token)
    assert new.refresh_token not in (None, pair.refresh_token)
    assert await active(server, new.access_token)
    assert await active(server, new.refresh_token)
    assert not await active(server, pair.refresh_token)
    info = await server.introspect_token(new.access_token)
    assert info.sub == "user-1" and info.scope == {"read", "write"}


async def test_public_client_can_refresh(server: AuthorizationServer, public: Credentials) -> None:
    pair = await first_pair(server, public)
    assert (await refresh(server, public, pair.refresh_token)).access_token


async def test_scope_can_only_narrow(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    pair = await first_pair(server, confidential)
    narrowed = await refresh(server, confidential, pair.refresh_token, scope="read")
    assert narrowed.scope == {"read"}
    # §6: the new refresh token keeps the original scope, so a later refresh may widen back.
    again = await refresh(server, confidential, narrowed.refresh_token)
    assert again.scope == {"read", "write"}
    with pytest.raises(InvalidScopeError):
        await refresh(server, confidential, again.refresh_token, scope="read admin")


async def test_reused_refresh_token_revokes_the_family(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    pair = await first_pair(server, confidential)
    second = await refresh(server, confidential, pair.refresh_token)
    with pytest.raises(InvalidGrantError, match="already used"):
        await refresh(server, confidential, pair.refresh_token)
    for token in (pair.access_token, second.access_token, second.refresh_token):
        assert not await active(server, token)
    with pytest.raises(InvalidGrantError, match="revoked"):
        await refresh(server, confidential, second.refresh_token)


async def test_concurrent_refresh_gives_one_new_pair(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    pair = await first_pair(server, confidential)
    outcomes = await asyncio.gather(
        *(refresh(server, confidential, pair.refresh_token) for _ in range(10)),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if isinstance(o, TokenResponse)]
    assert len(winners) == 1
    assert all(isinstance(o, InvalidGrantError) for o in outcomes if o is not winners[0])
    # The losers presented a rotated-out token: reuse, whatever the timing (RFC 9700 §4.14.2).
    assert not await active(server, winners[0].access_token)
    assert not await active(server, winners[0].refresh_token)


async def test_concurrent_retries_in_the_grace_period_all_get_the_one_pair(
    grace_server: AuthorizationServer, grace_client: Credentials
) -> None:
    pair = await first_pair(grace_server, grace_client)
    outcomes = await asyncio.gather(
        *(refresh(grace_server, grace_client, pair.refresh_token) for _ in range(10))
    )
    assert len(set(outcomes)) == 1
    assert await active(grace_server, outcomes[0].refresh_token)


async def test_refresh_token_of_another_client_is_invalid_grant(
    server: AuthorizationServer, confidential: Credentials, public: Credentials
) -> None:
    pair = await first_pair(server, public)
    with pytest.raises(InvalidGrantError, match="invalid refresh token"):
        await refresh(server, confidential, pair.refresh_token)


async def test_access_token_is_not_a_refresh_token(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    pair = await first_pair(server, confidential)
    with pytest.raises(InvalidGrantError, match="invalid refresh token"):
        await refresh(server, confidential, pair.access_token)


async def test_expired_refresh_token_is_invalid_grant(
    server: AuthorizationServer, confidential: Credentials, clock: FakeClock
) -> None:
    pair = await first_pair(server, confidential)
    clock.advance(server.settings.refresh_token_lifetime)
    with pytest.raises(InvalidGrantError, match="expired"):
        await refresh(server, confidential, pair.refresh_token)


async def test_revoked_refresh_token_is_invalid_grant(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    pair = await first_pair(server, confidential)
    await server.revoke(request(confidential, token=pair.refresh_token or ""))
    with pytest.raises(InvalidGrantError, match="revoked"):
        await refresh(server, confidential, pair.refresh_token)


@pytest.fixture
async def grace_server(clock: FakeClock) -> AuthorizationServer:
    settings = Settings(issuer=ISSUER, refresh_token_grace_period=10)
    return AuthorizationServer(MemoryStorage(), settings, clock=clock)


@pytest.fixture
async def grace_client(grace_server: AuthorizationServer) -> Credentials:
    registered = await grace_server.register_client(
        name="g", redirect_uris=[REDIRECT_URI], scope=["read", "write"]
    )
    return Credentials(registered.client.client_id, registered.client_secret)


async def test_retry_within_grace_period_gets_the_lost_response_again(
    grace_server: AuthorizationServer, grace_client: Credentials, clock: FakeClock
) -> None:
    pair = await first_pair(grace_server, grace_client)
    lost = await refresh(grace_server, grace_client, pair.refresh_token)
    clock.advance(5)
    retried = await refresh(grace_server, grace_client, pair.refresh_token)
    # The very tokens the lost response carried, with the lifetime they have left.
    assert retried == replace(lost, expires_in=lost.expires_in - 5)
    assert await active(grace_server, lost.refresh_token)
    assert await active(grace_server, lost.access_token)
    assert (await refresh(grace_server, grace_client, retried.refresh_token)).access_token


async def test_the_store_cannot_read_the_response_kept_for_retries(
    grace_server: AuthorizationServer, grace_client: Credentials
) -> None:
    pair = await first_pair(grace_server, grace_client)
    lost = await refresh(grace_server, grace_client, pair.refresh_token)
    assert pair.refresh_token is not None and lost.refresh_token is not None
    stored = await grace_server.storage.get_token(hash_token(pair.refresh_token))
    assert stored is not None and stored.sealed_response is not None
    assert lost.access_token not in stored.sealed_response
    assert lost.refresh_token not in stored.sealed_response
    # Sealed under the old token itself: no other value opens it.
    with pytest.raises(ValueError, match="cannot open"):
        Sealer(lost.refresh_token, purpose=b"asgi_oauth refresh retry").open(
            stored.sealed_response, context=stored.token_hash
        )


async def test_without_a_grace_period_nothing_is_kept_for_retries(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    pair = await first_pair(server, confidential)
    await refresh(server, confidential, pair.refresh_token)
    assert pair.refresh_token is not None
    stored = await server.storage.get_token(hash_token(pair.refresh_token))
    assert stored is not None and stored.sealed_response is None


async def test_a_retry_with_another_dpop_key_is_refused(
    grace_server: AuthorizationServer, grace_client: Credentials, clock: FakeClock
) -> None:
    pair = await first_pair(grace_server, grace_client)
    first_key, other_key = DPoPKey(), DPoPKey()

    def with_proof(key: DPoPKey) -> OAuthRequest:
        plain = request(
            grace_client, grant_type="refresh_token", refresh_token=pair.refresh_token or ""
        )
        return replace(plain, dpop=key.proof(ISSUER + "/token", iat=int(clock.now)))

    lost = await grace_server.token(with_proof(first_key))
    assert lost.token_type == "DPoP"
    with pytest.raises(InvalidGrantError, match="DPoP key"):
        await grace_server.token(with_proof(other_key))
    with pytest.raises(InvalidGrantError, match="DPoP key"):
        await refresh(grace_server, grace_client, pair.refresh_token)  # no proof at all
    assert await grace_server.token(with_proof(first_key)) == replace(
        lost, expires_in=lost.expires_in
    )


async def test_reuse_after_grace_period_revokes_the_family(
    grace_server: AuthorizationServer, grace_client: Credentials, clock: FakeClock
) -> None:
    pair = await first_pair(grace_server, grace_client)
    second = await refresh(grace_server, grace_client, pair.refresh_token)
    clock.advance(11)
    with pytest.raises(InvalidGrantError, match="already used"):
        await refresh(grace_server, grace_client, pair.refresh_token)
    assert not await active(grace_server, second.refresh_token)


async def test_grace_does_not_apply_once_the_successor_was_used(
    grace_server: AuthorizationServer, grace_client: Credentials
) -> None:
    pair = await first_pair(grace_server, grace_client)
    second = await refresh(grace_server, grace_client, pair.refresh_token)
    third = await refresh(grace_server, grace_client, second.refresh_token)
    with pytest.raises(InvalidGrantError, match="already used"):
        await refresh(grace_server, grace_client, pair.refresh_token)
    assert not await active(grace_server, third.refresh_token)
