"""The authorization code grant on the core, without HTTP (RFC 6749 §4.1, RFC 7636)."""

from __future__ import annotations

import asyncio

import pytest

from asgi_oauth import (
    AuthorizationServer,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    Settings,
    UnauthorizedClientError,
)
from asgi_oauth.pkce import s256_challenge
from asgi_oauth.storage import MemoryStorage

from .conftest import ISSUER, REDIRECT_URI, Credentials, FakeClock
from .helpers import request

pytestmark = pytest.mark.anyio

VERIFIER = "v" * 43 + "-._~0123456789"
CHALLENGE = s256_challenge(VERIFIER)


async def issue_code(server: AuthorizationServer, creds: Credentials, **kw: str | None) -> str:
    params: dict[str, str | None] = {
        "redirect_uri": REDIRECT_URI,
        "scope": "read",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    params.update(kw)
    return await server.create_authorization_code(
        client_id=creds.client_id,
        subject="user-1",
        redirect_uri=params["redirect_uri"],
        scope=params["scope"],
        code_challenge=params["code_challenge"],
        code_challenge_method=params["code_challenge_method"],  # type: ignore[arg-type]
    )


def exchange(creds: Credentials, code: str, **extra: str) -> dict[str, str]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": VERIFIER,
    }
    form.update(extra)
    return form


async def test_code_exchange_issues_access_and_refresh_token(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    code = await issue_code(server, confidential)
    response = await server.token(request(confidential, **exchange(confidential, code)))
    assert response.refresh_token is not None
    assert response.scope == {"read"}
    info = await server.introspect_token(response.access_token)
    assert info.active and info.sub == "user-1" and info.client_id == confidential.client_id


async def test_public_client_exchanges_with_pkce(
    server: AuthorizationServer, public: Credentials
) -> None:
    code = await issue_code(server, public)
    response = await server.token(request(public, **exchange(public, code)))
    assert (await server.introspect_token(response.access_token)).active


async def test_public_client_must_send_code_challenge(
    server: AuthorizationServer, public: Credentials
) -> None:
    with pytest.raises(InvalidRequestError, match="code_challenge required"):
        await issue_code(server, public, code_challenge=None, code_challenge_method=None)


async def test_confidential_client_may_skip_pkce_unless_required(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    code = await issue_code(server, confidential, code_challenge=None, code_challenge_method=None)
    form = exchange(confidential, code)
    del form["code_verifier"]
    assert (await server.token(request(confidential, **form))).access_token


async def test_require_pkce_setting_applies_to_confidential_clients(
    clock: FakeClock,
) -> None:
    server = AuthorizationServer(
        MemoryStorage(), Settings(issuer=ISSUER, require_pkce=True), clock=clock
    )
    registered = await server.register_client(
        name="c", redirect_uris=[REDIRECT_URI], scope=["read"]
    )
    creds = Credentials(registered.client.client_id, registered.client_secret)
    with pytest.raises(InvalidRequestError, match="code_challenge required"):
        await issue_code(server, creds, code_challenge=None, code_challenge_method=None)


async def test_wrong_code_verifier_is_invalid_grant(
    server: AuthorizationServer, public: Credentials
) -> None:
    code = await issue_code(server, public)
    with pytest.raises(InvalidGrantError, match="code_verifier"):
        await server.token(request(public, **exchange(public, code, code_verifier="w" * 43)))


async def test_missing_code_verifier_is_invalid_grant(
    server: AuthorizationServer, public: Credentials
) -> None:
    code = await issue_code(server, public)
    form = exchange(public, code)
    del form["code_verifier"]
    with pytest.raises(InvalidGrantError):
        await server.token(request(public, **form))


async def test_verifier_without_challenge_is_refused_as_downgrade(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    code = await issue_code(server, confidential, code_challenge=None, code_challenge_method=None)
    with pytest.raises(InvalidGrantError, match="no code_challenge"):
        await server.token(request(confidential, **exchange(confidential, code)))


async def test_plain_pkce_refused_by_default(
    server: AuthorizationServer, public: Credentials
) -> None:
    with pytest.raises(InvalidRequestError, match="transform algorithm"):
        await issue_code(server, public, code_challenge=VERIFIER, code_challenge_method="plain")
    # RFC 7636 §4.3: no method means plain.
    with pytest.raises(InvalidRequestError, match="transform algorithm"):
        await issue_code(server, public, code_challenge=VERIFIER, code_challenge_method=None)


async def test_plain_pkce_when_allowed(clock: FakeClock) -> None:
    server = AuthorizationServer(
        MemoryStorage(), Settings(issuer=ISSUER, allow_plain_pkce=True), clock=clock
    )
    registered = await server.register_client(
        name="p", redirect_uris=[REDIRECT_URI], scope=["read"], public=True
    )
    creds = Credentials(registered.client.client_id, None)
    code = await issue_code(server, creds, code_challenge=VERIFIER, code_challenge_method="plain")
    assert (await server.token(request(creds, **exchange(creds, code)))).access_token
    assert server.metadata()["code_challenge_methods_supported"] == ["S256", "plain"]


async def test_malformed_code_challenge_is_refused(
    server: AuthorizationServer, public: Credentials
) -> None:
    with pytest.raises(InvalidRequestError, match="malformed code_challenge"):
        await issue_code(server, public, code_challenge="short")


async def test_redirect_uri_must_match_when_sent_with_authorization_request(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    code = await issue_code(server, confidential)
    other = exchange(confidential, code, redirect_uri=REDIRECT_URI + "/other")
    with pytest.raises(InvalidGrantError, match="redirect_uri"):
        await server.token(request(confidential, **other))
    missing = exchange(confidential, code)
    del missing["redirect_uri"]
    with pytest.raises(InvalidGrantError, match="redirect_uri"):
        await server.token(request(confidential, **missing))


async def test_redirect_uri_optional_when_omitted_from_authorization_request(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    code = await issue_code(server, confidential, redirect_uri=None)
    form = exchange(confidential, code)
    del form["redirect_uri"]
    assert (await server.token(request(confidential, **form))).access_token


async def test_redirect_uri_sent_only_at_token_endpoint_must_be_registered(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    code = await issue_code(server, confidential, redirect_uri=None)
    form = exchange(confidential, code, redirect_uri="https://evil.example/cb")
    with pytest.raises(InvalidGrantError, match="not registered"):
        await server.token(request(confidential, **form))


async def test_unregistered_redirect_uri_refused_when_issuing(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    with pytest.raises(InvalidRequestError, match="not registered"):
        await issue_code(server, confidential, redirect_uri="https://app.example/cb/")


async def test_code_issued_to_another_client_is_invalid_grant(
    server: AuthorizationServer, confidential: Credentials, public: Credentials
) -> None:
    code = await issue_code(server, public)
    with pytest.raises(InvalidGrantError, match="invalid authorization code"):
        await server.token(request(confidential, **exchange(confidential, code)))


async def test_unknown_code_is_invalid_grant(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    with pytest.raises(InvalidGrantError):
        await server.token(request(confidential, **exchange(confidential, "nope")))


async def test_expired_code_is_invalid_grant(
    server: AuthorizationServer, confidential: Credentials, clock: FakeClock
) -> None:
    code = await issue_code(server, confidential)
    clock.advance(61)
    with pytest.raises(InvalidGrantError, match="expired"):
        await server.token(request(confidential, **exchange(confidential, code)))


async def test_replayed_code_is_refused_and_revokes_what_it_issued(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    code = await issue_code(server, confidential)
    first = await server.token(request(confidential, **exchange(confidential, code)))
    with pytest.raises(InvalidGrantError, match="already used"):
        await server.token(request(confidential, **exchange(confidential, code)))
    assert not (await server.introspect_token(first.access_token)).active
    assert first.refresh_token is not None
    assert not (await server.introspect_token(first.refresh_token)).active


async def test_concurrent_redemption_gives_one_token_set(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    code = await issue_code(server, confidential)
    outcomes = await asyncio.gather(
        *(server.token(request(confidential, **exchange(confidential, code))) for _ in range(20)),
        return_exceptions=True,
    )
    successes = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(successes) == 1
    assert all(isinstance(o, InvalidGrantError) for o in outcomes if o not in successes)


async def test_scope_narrowed_to_client_scope(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    with pytest.raises(InvalidScopeError, match="admin"):
        await issue_code(server, confidential, scope="read admin")
    code = await issue_code(server, confidential, scope=None)
    response = await server.token(request(confidential, **exchange(confidential, code)))
    assert response.scope == {"read", "write"}


async def test_client_without_the_grant_cannot_get_codes(
    server: AuthorizationServer,
) -> None:
    registered = await server.register_client(
        name="m2m", grant_types=["client_credentials"], redirect_uris=[REDIRECT_URI]
    )
    with pytest.raises(UnauthorizedClientError):
        await server.create_authorization_code(client_id=registered.client.client_id, subject="u")
    with pytest.raises(InvalidRequestError, match="unknown client"):
        await server.create_authorization_code(client_id="ghost", subject="u")


async def test_redirect_uri_required_when_several_registered(
    server: AuthorizationServer,
) -> None:
    registered = await server.register_client(
        name="two", redirect_uris=[REDIRECT_URI, REDIRECT_URI + "2"]
    )
    with pytest.raises(InvalidRequestError, match="redirect_uri required"):
        await server.create_authorization_code(
            client_id=registered.client.client_id,
            subject="u",
            code_challenge=CHALLENGE,
            code_challenge_method="S256",
        )


async def test_no_refresh_token_when_client_may_not_refresh(
    server: AuthorizationServer,
) -> None:
    registered = await server.register_client(
        name="norefresh", redirect_uris=[REDIRECT_URI], grant_types=["authorization_code"]
    )
    creds = Credentials(registered.client.client_id, registered.client_secret)
    code = await issue_code(server, creds, scope=None)
    response = await server.token(request(creds, **exchange(creds, code)))
    assert response.refresh_token is None
    assert "refresh_token" not in response.to_dict()
