"""Client authentication (RFC 6749 §2.3): one method per request, throttled guessing."""

from __future__ import annotations

import base64

import pytest

from asgi_oauth import (
    AuthorizationServer,
    InvalidClientError,
    InvalidRequestError,
    OAuthRequest,
)

from .conftest import Credentials
from .helpers import basic_header

pytestmark = pytest.mark.anyio

CC = {"grant_type": "client_credentials"}


async def test_client_secret_basic(server: AuthorizationServer, confidential: Credentials) -> None:
    assert confidential.client_secret is not None
    header = basic_header(confidential.client_id, confidential.client_secret)
    assert (await server.token(OAuthRequest(CC, header))).access_token


async def test_client_secret_post(server: AuthorizationServer, confidential: Credentials) -> None:
    assert confidential.client_secret is not None
    form = {**CC, "client_id": confidential.client_id, "client_secret": confidential.client_secret}
    assert (await server.token(OAuthRequest(form))).access_token


async def test_basic_with_matching_client_id_in_body_is_accepted(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    assert confidential.client_secret is not None
    header = basic_header(confidential.client_id, confidential.client_secret)
    form = {**CC, "client_id": confidential.client_id}
    assert (await server.token(OAuthRequest(form, header))).access_token


async def test_two_methods_at_once_is_invalid_request(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    assert confidential.client_secret is not None
    header = basic_header(confidential.client_id, confidential.client_secret)
    form = {**CC, "client_id": confidential.client_id, "client_secret": confidential.client_secret}
    with pytest.raises(InvalidRequestError, match="one client authentication method"):
        await server.token(OAuthRequest(form, header))
    with pytest.raises(InvalidRequestError, match="does not match"):
        await server.token(OAuthRequest({**CC, "client_id": "someone-else"}, header))


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b":secret").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        "Bearer abc",
        "Basic",
    ],
)
async def test_malformed_authorization_header_is_invalid_client_with_challenge(
    server: AuthorizationServer, header: str
) -> None:
    with pytest.raises(InvalidClientError) as failure:
        await server.token(OAuthRequest(CC, header))
    assert failure.value.status == 401
    assert failure.value.headers["WWW-Authenticate"].startswith("Basic")


async def test_wrong_secret_in_header_has_basic_challenge_and_in_body_has_none(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    with pytest.raises(InvalidClientError) as via_header:
        await server.token(OAuthRequest(CC, basic_header(confidential.client_id, "wrong")))
    assert "WWW-Authenticate" in via_header.value.headers
    form = {**CC, "client_id": confidential.client_id, "client_secret": "wrong"}
    with pytest.raises(InvalidClientError) as via_body:
        await server.token(OAuthRequest(form))
    assert via_body.value.headers == {}


async def test_confidential_client_without_secret_is_refused(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    with pytest.raises(InvalidClientError):
        await server.token(OAuthRequest({**CC, "client_id": confidential.client_id}))


async def test_public_client_sending_a_secret_is_refused(
    server: AuthorizationServer, public: Credentials
) -> None:
    form = {"grant_type": "refresh_token", "client_id": public.client_id, "client_secret": "x"}
    with pytest.raises(InvalidClientError):
        await server.token(OAuthRequest(form))


async def test_no_credentials_at_all_is_invalid_client(server: AuthorizationServer) -> None:
    with pytest.raises(InvalidClientError, match="required"):
        await server.token(OAuthRequest(CC))


async def test_percent_encoded_credentials_are_decoded(server: AuthorizationServer) -> None:
    # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
    registered = await server.register_client(
        name="odd", grant_types=["client_credentials"], client_id="id with:colon+plus"
    )
    assert registered.client_secret is not None
    header = basic_header("id+with%3Acolon%2Bplus", registered.client_secret)
    assert (await server.token(OAuthRequest(CC, header))).access_token


async def test_wrong_secrets_past_the_limit_are_told_to_wait(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    limit = server.settings.max_failed_attempts
    wrong = basic_header(confidential.client_id, "guess")
    for _ in range(limit):
        with pytest.raises(InvalidClientError) as failure:
            await server.token(OAuthRequest(CC, wrong))
        assert failure.value.status == 401
    with pytest.raises(InvalidClientError) as blocked:
        await server.token(OAuthRequest(CC, wrong))
    assert blocked.value.status == 429
    assert int(blocked.value.headers["Retry-After"]) > 0


async def test_the_right_secret_passes_however_many_wrong_ones_came_first(
    server: AuthorizationServer, confidential: Credentials
) -> None:
    assert confidential.client_secret is not None
    wrong = basic_header(confidential.client_id, "guess")
    for _ in range(server.settings.max_failed_attempts * 3):
        with pytest.raises(InvalidClientError):
            await server.token(OAuthRequest(CC, wrong, client_address="198.51.100.7"))
    right = basic_header(confidential.client_id, confidential.client_secret)
    # From the very address the guesses came from (behind one proxy, everyone's).
    assert (await server.token(OAuthRequest(CC, right, client_address="198.51.100.7"))).access_token
    assert (await server.token(OAuthRequest(CC, right, client_address="192.0.2.1"))).access_token
