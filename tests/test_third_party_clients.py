"""Unmodified third-party OAuth client libraries against a real uvicorn server process.

Authlib (its httpx client), requests-oauthlib and aiohttp-oauth2-client run
their own flows against ``tests.servers.app`` on 127.0.0.1, driven only by the
server's RFC 8414 metadata. The person at the browser is ``tests.user_agent``:
it signs in and approves (or denies) on the built-in pages. One server serves
the whole module; tests that deny use ``prompt=consent`` so an earlier
remembered approval does not answer for them.

Authlib's client does not check RFC 9207 ``iss`` on the callback (it only
validates the metadata flag), so the tests check it themselves.
"""

from __future__ import annotations

import re
import secrets
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.to_thread
import httpx
import pytest
from aiohttp_oauth2_client.grant.client_credentials import ClientCredentialsGrant  # type: ignore[import-untyped]
from aiohttp_oauth2_client.grant.device_code import DeviceCodeGrant  # type: ignore[import-untyped]
from aiohttp_oauth2_client.models.errors import OAuth2Error as AiohttpOAuth2Error  # type: ignore[import-untyped]
from authlib.oauth2 import rfc8414, rfc9207
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE
from oauthlib.oauth2 import InvalidClientError  # type: ignore[import-untyped]
from requests_oauthlib import OAuth2Session  # type: ignore[import-untyped]

from asgi_oauth import AuthorizationServer
from tests.servers.process import (
    REDIRECT_URI,
    Deployment,
    deploy,
    run_on_store,
    serve,
)
from tests.user_agent import Decision, Person

with warnings.catch_warnings():
    # Authlib's httpx integration wants the ``httpx2`` fork and warns, at import,
    # that falling back to httpx is deprecated.
    warnings.filterwarnings("ignore", "The httpx module is deprecated", DeprecationWarning)
    from authlib.integrations.httpx_client import (
        AsyncOAuth2Client,
        OAuthError,
    )

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

METADATA_URL = "/.well-known/oauth-authorization-server/oauth2"
#: Long enough for a device flow polled every second; a hang fails instead of blocking CI.
FLOW_TIMEOUT = 30


@dataclass(frozen=True)
class Running:
    """The server process's deployment, its published metadata, and the user's ``sub``."""

    deployment: Deployment
    metadata: dict[str, Any]
    subject: str

    def endpoint(self, name: str) -> str:
        url: str = self.metadata[name]
        return url


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    deployment = deploy(tmp_path_factory.mktemp("clients"))
    subject = run_on_store(
        deployment.db, deployment.issuer, lambda server: _user_id(server, deployment.username)
    )
    with serve("uvicorn", deployment) as server:
        response = httpx.get(server.url + METADATA_URL, timeout=10)
        assert response.status_code == 200, response.text
        yield Running(deployment, response.json(), subject)


async def _user_id(server: AuthorizationServer, username: str) -> str:
    user = await server.storage.get_user(username)
    assert user is not None
    return user.user_id


@pytest.fixture
async def person(running: Running) -> AsyncIterator[Person]:
    """A fresh browser (no cookies) for the deployment's user."""
    deployment = running.deployment
    async with httpx.AsyncClient(timeout=10) as browser:
        yield Person(browser, deployment.username, deployment.password)


async def introspect(running: Running, token: str) -> dict[str, object]:
    deployment = running.deployment
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            running.endpoint("introspection_endpoint"),
            data={"token": token},
            auth=deployment.resource_server,
        )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def callback_params(callback: str, running: Running) -> dict[str, str]:
    """The callback's query, checked to be at the redirect URI and from our issuer (RFC 9207)."""
    assert callback.partition("?")[0] == REDIRECT_URI
    params = {name: values[0] for name, values in parse_qs(urlsplit(callback).query).items()}
    assert params["iss"] == running.deployment.issuer
    return params


def authlib_client(running: Running, *, confidential: bool) -> AsyncOAuth2Client:
    deployment = running.deployment
    client_id = deployment.client.client_id if confidential else deployment.public_client_id
    return AsyncOAuth2Client(
        client_id=client_id,
        client_secret=deployment.client.secret if confidential else None,
        scope="read write",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        # Authlib keeps extra keywords as metadata and falls back on this one.
        token_endpoint=running.endpoint("token_endpoint"),
        timeout=10,
    )


# -- Authlib: authorization code + PKCE, refresh rotation ---------------------


def test_authlib_accepts_the_metadata_with_rfc9207(running: Running) -> None:
    metadata = rfc8414.AuthorizationServerMetadata(running.metadata)
    metadata.validate(metadata_classes=[rfc9207.AuthorizationServerMetadata])
    assert metadata["issuer"] == running.deployment.issuer
    assert metadata["authorization_response_iss_parameter_supported"] is True


@pytest.mark.parametrize("confidential", [False, True], ids=["public", "confidential"])
async def test_authlib_code_flow_then_refresh_rotation_and_reuse_detection(
    running: Running, person: Person, confidential: bool
) -> None:
    async with authlib_client(running, confidential=confidential) as client:
        assert client.token_endpoint_auth_method == (
            "client_secret_basic" if confidential else "none"
        )
        verifier = secrets.token_urlsafe(48)
        url, state = client.create_authorization_url(
            running.endpoint("authorization_endpoint"), code_verifier=verifier
        )
        callback = await person.authorize(url)
        assert person.pages[0] == "Sign in"
        assert callback_params(callback, running)["state"] == state

        token = await client.fetch_token(
            authorization_response=callback, state=state, code_verifier=verifier
        )
        assert token["token_type"] == "Bearer"
        assert token["scope"] == "read write"
        first_access, first_refresh = token["access_token"], token["refresh_token"]
        described = await introspect(running, first_access)
        assert described["active"] is True
        assert described["sub"] == running.subject
        assert described["client_id"] == client.client_id

        refreshed = await client.refresh_token()
        second_access, second_refresh = refreshed["access_token"], refreshed["refresh_token"]
        assert second_refresh != first_refresh
        assert (await introspect(running, second_access))["active"] is True

        # Reusing the rotated-out refresh token (RFC 9700 §4.14.2) revokes the family.
        with pytest.raises(OAuthError) as reused:
            await client.refresh_token(refresh_token=first_refresh)
        assert reused.value.error == "invalid_grant"
    for revoked in (first_access, second_access, second_refresh):
        assert await introspect(running, revoked) == {"active": False}


async def test_authlib_revokes_and_introspects_through_its_own_methods(
    running: Running, person: Person
) -> None:
    """RFC 7009 from a public client (auth method none), RFC 7662 from the resource server."""
    resource_server = running.deployment.resource_server
    async with (
        authlib_client(running, confidential=False) as client,
        AsyncOAuth2Client(
            client_id=resource_server.client_id, client_secret=resource_server.secret, timeout=10
        ) as api,
    ):
        verifier = secrets.token_urlsafe(48)
        url, state = client.create_authorization_url(
            running.endpoint("authorization_endpoint"), code_verifier=verifier
        )
        callback = await person.authorize(url)
        token = await client.fetch_token(
            authorization_response=callback, state=state, code_verifier=verifier
        )

        async def active(token_value: str) -> bool:
            response = await api.introspect_token(
                running.endpoint("introspection_endpoint"), token=token_value
            )
            assert response.status_code == 200, response.text
            body: dict[str, object] = response.json()
            return body["active"] is True

        assert await active(token["access_token"])
        revoked = await client.revoke_token(
            running.endpoint("revocation_endpoint"),
            token=token["refresh_token"],
            token_type_hint="refresh_token",
        )
        assert revoked.status_code == 200, revoked.text
        # §2.1: revoking the refresh token also ends the access tokens of its grant.
        assert not await active(token["refresh_token"])
        assert not await active(token["access_token"])


async def test_authlib_sees_a_denial_with_iss_and_state(running: Running, person: Person) -> None:
    async with authlib_client(running, confidential=False) as client:
        url, state = client.create_authorization_url(
            running.endpoint("authorization_endpoint"),
            code_verifier=secrets.token_urlsafe(48),
            prompt="consent",
        )
        callback = await person.authorize(url, decision="deny")
    assert person.pages == ["Sign in", "Authorize access"]
    params = callback_params(callback, running)
    assert params["state"] == state
    assert params["error"] == "access_denied"
    assert "code" not in params


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_authlib_wrong_secret_is_invalid_client(running: Running, method: str) -> None:
    async with AsyncOAuth2Client(
        client_id=running.deployment.client.client_id,
        client_secret="not-the-secret",
        token_endpoint_auth_method=method,
        timeout=10,
    ) as client:
        with pytest.raises(OAuthError) as refused:
            await client.fetch_token(
                running.endpoint("token_endpoint"), grant_type="client_credentials"
            )
    assert refused.value.error == "invalid_client"


async def test_authlib_drives_the_device_grant_for_a_confidential_client(
    running: Running, person: Person
) -> None:
    """Authlib has no device-flow client: its generic token request polls (RFC 8628 §3.4)."""
    deployment = running.deployment
    async with AsyncOAuth2Client(
        client_id=deployment.client.client_id,
        client_secret=deployment.client.secret,
        scope="read",
        timeout=10,
    ) as client:
        # ``withhold_token`` goes through ``request`` only; ``post`` does not take it.
        started = await client.request(
            "POST",
            running.endpoint("device_authorization_endpoint"),
            data={"scope": "read"},
            auth=client.client_auth(client.token_endpoint_auth_method),
            withhold_token=True,
        )
        assert started.status_code == 200, started.text
        device = started.json()
        with anyio.fail_after(FLOW_TIMEOUT):
            with pytest.raises(OAuthError) as pending:
                await _authlib_poll(client, running, device["device_code"])
            assert pending.value.error == "authorization_pending"
            # The person types the code on the bare verification URI.
            title = await person.verify_device(device["verification_uri"], device["user_code"])
            assert title == "Device connected"
            assert person.pages == [
                "Sign in",
                "Connect a device",
                "Authorize a device",
                "Device connected",
            ]
            token = await _authlib_poll(client, running, device["device_code"])
    described = await introspect(running, token["access_token"])
    assert described["active"] is True
    assert described["scope"] == "read"
    assert described["sub"] == running.subject


async def _authlib_poll(
    client: AsyncOAuth2Client, running: Running, device_code: str
) -> dict[str, Any]:
    token: dict[str, Any] = await client.fetch_token(
        running.endpoint("token_endpoint"),
        grant_type=DEVICE_CODE_GRANT_TYPE,
        device_code=device_code,
    )
    return token


# -- requests-oauthlib ----------------------------------------------------------


async def test_requests_oauthlib_code_flow_with_pkce_and_refresh(
    running: Running, person: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    credentials = running.deployment.client
    token_endpoint = running.endpoint("token_endpoint")
    session = OAuth2Session(
        credentials.client_id, redirect_uri=REDIRECT_URI, scope=["read", "write"], pkce="S256"
    )
    with session:
        url, state = session.authorization_url(running.endpoint("authorization_endpoint"))
        assert "code_challenge=" in url
        callback = await person.authorize(url)
        assert callback_params(callback, running)["state"] == state

        # A wrong secret is refused before the code is looked at: the code survives.
        with pytest.raises(InvalidClientError):
            await anyio.to_thread.run_sync(
                lambda: session.fetch_token(
                    token_endpoint, authorization_response=callback, client_secret="wrong"
                )
            )
        token = await anyio.to_thread.run_sync(
            lambda: session.fetch_token(
                token_endpoint, authorization_response=callback, client_secret=credentials.secret
            )
        )
        assert token["scope"] == ["read", "write"]
        assert (await introspect(running, token["access_token"]))["sub"] == running.subject

        refreshed = await anyio.to_thread.run_sync(
            lambda: session.refresh_token(token_endpoint, auth=tuple(credentials))
        )
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert (await introspect(running, refreshed["access_token"]))["active"] is True
    # Rotation: the old refresh token is spent, though its access token lives on.
    assert await introspect(running, token["refresh_token"]) == {"active": False}


# -- aiohttp-oauth2-client: the device grant -------------------------------------

#: What DeviceCodeGrant prints for the person: "Visit <verification_uri_complete> ...".
VISIT = re.compile(r"Visit (\S+) to authenticate")


async def _device_flow(
    running: Running,
    person: Person,
    capsys: pytest.CaptureFixture[str],
    decision: Decision,
    *,
    pkce: bool = False,
) -> DeviceCodeGrant:
    """The library fetches a token while the person reads its printout and decides.

    The library's error (if any) is raised after the task group, unwrapped.
    """
    grant = DeviceCodeGrant(
        token_url=running.endpoint("token_endpoint"),
        device_authorization_url=running.endpoint("device_authorization_endpoint"),
        client_id=running.deployment.public_client_id,
        pkce=pkce,
        scope="read",
    )
    refused: list[AiohttpOAuth2Error] = []

    async def fetch() -> None:
        try:
            await grant.fetch_token()
        except AiohttpOAuth2Error as exc:
            refused.append(exc)

    capsys.readouterr()
    async with grant:
        with anyio.fail_after(FLOW_TIMEOUT):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(fetch)
                url = await _printed_url(capsys)
                title = await person.verify_device(url, decision=decision)
                assert title == ("Device connected" if decision == "approve" else "Request denied")
                # verification_uri_complete filled the code in: the person just submits it.
                assert person.pages[:3] == ["Sign in", "Connect a device", "Authorize a device"]
    if refused:
        raise refused[0]
    return grant


async def _printed_url(capsys: pytest.CaptureFixture[str]) -> str:
    while True:
        match = VISIT.search(capsys.readouterr().out)
        if match:
            return match.group(1)
        await anyio.sleep(0.02)


@pytest.mark.parametrize("pkce", [False, True], ids=["plain", "pkce"])
async def test_aiohttp_oauth2_client_device_grant_approved(
    running: Running, person: Person, capsys: pytest.CaptureFixture[str], pkce: bool
) -> None:
    grant = await _device_flow(running, person, capsys, "approve", pkce=pkce)
    assert grant.token is not None
    assert grant.token.token_type == "Bearer"
    assert grant.token.scope == "read"
    described = await introspect(running, grant.token.access_token)
    assert described["active"] is True
    assert described["scope"] == "read"
    assert described["sub"] == running.subject
    assert described["client_id"] == running.deployment.public_client_id


async def test_aiohttp_oauth2_client_device_grant_denied(
    running: Running, person: Person, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(AiohttpOAuth2Error) as refused:
        await _device_flow(running, person, capsys, "deny")
    assert refused.value.response.error == "access_denied"


async def test_aiohttp_oauth2_client_wrong_secret_is_invalid_client(running: Running) -> None:
    async with ClientCredentialsGrant(
        token_url=running.endpoint("token_endpoint"),
        client_id=running.deployment.client.client_id,
        client_secret="not-the-secret",
    ) as grant:
        with pytest.raises(AiohttpOAuth2Error) as refused:
            await grant.fetch_token()
    assert refused.value.response.error == "invalid_client"
