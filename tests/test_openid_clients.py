"""An unmodified third-party relying party against a real uvicorn server process.

Authlib's httpx client (``AsyncOAuth2Client``) is configured only with the
provider's discovery URL (OpenID Connect Discovery 1.0 §4): every endpoint, the
keys and the algorithms come from the document. Authlib's ``parse_id_token``
lives in its framework-neutral ``base_client`` mixins, which its Starlette,
Flask and Django apps compose with their own request handling; ``RelyingParty``
composes the same mixins with the httpx client and no framework. The ID token
is also checked with PyJWT, a JOSE implementation neither the server nor Authlib
uses (both use joserfc), against the JWK Set at the discovered ``jwks_uri``.

The person at the browser is ``tests.user_agent``: they sign in and approve on
the built-in pages. One server serves the whole module.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from authlib.integrations.base_client import BaseApp
from authlib.integrations.base_client.async_app import (
    AsyncOAuth2Mixin,
)
from authlib.integrations.base_client.async_openid import (
    AsyncOpenIDMixin,
)
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc.errors import JoseError

from asgi_oauth import AuthorizationServer
from asgi_oauth.types import SigningAlgorithm
from tests.openid_helpers import KEK, decode, half_hash
from tests.servers.process import REDIRECT_URI, Deployment, deploy, run_on_store, serve
from tests.user_agent import Person

with warnings.catch_warnings():
    # Authlib's httpx integration wants the ``httpx2`` fork and warns, at import,
    # that falling back to httpx is deprecated.
    warnings.filterwarnings("ignore", "The httpx module is deprecated", DeprecationWarning)
    from authlib.integrations.httpx_client import (
        AsyncOAuth2Client,
    )

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

DISCOVERY = "/.well-known/openid-configuration"


class RelyingParty(AsyncOAuth2Mixin, AsyncOpenIDMixin, BaseApp):  # type: ignore[misc]
    """Authlib's OAuth 2.0 and OpenID Connect client logic on its httpx client."""

    client_cls = AsyncOAuth2Client


@dataclass(frozen=True)
class Client:
    client_id: str
    secret: str | None
    alg: SigningAlgorithm


@dataclass(frozen=True)
class Provider:
    """The server process's deployment, its discovery URL, the user's ``sub``, the RPs."""

    deployment: Deployment
    discovery_url: str
    subject: str
    clients: dict[str, Client]


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    deployment = replace(deploy(tmp_path_factory.mktemp("openid")), key_encryption_key=KEK)

    async def prepare(server: AuthorizationServer) -> tuple[str, dict[str, Client]]:
        web = await server.register_client(
            name="Web RP",
            redirect_uris=[REDIRECT_URI],
            scope=["openid", "profile", "read"],
        )
        native = await server.register_client(
            name="Native RP",
            redirect_uris=[REDIRECT_URI],
            scope=["openid", "profile"],
            public=True,
            id_token_signed_response_alg="ES256",
        )
        user = await server.storage.get_user(deployment.username)
        assert user is not None
        clients = {
            "confidential-RS256": Client(web.client.client_id, web.client_secret, "RS256"),
            "public-ES256": Client(native.client.client_id, None, "ES256"),
        }
        return user.user_id, clients

    subject, clients = run_on_store(deployment.db, deployment.issuer, prepare)
    with serve("uvicorn", deployment):
        yield Provider(deployment, deployment.issuer + DISCOVERY, subject, clients)


@pytest.fixture
async def person(provider: Provider) -> AsyncIterator[Person]:
    """A fresh browser (no cookies) for the deployment's user."""
    deployment = provider.deployment
    async with httpx.AsyncClient(timeout=10) as browser:
        yield Person(browser, deployment.username, deployment.password)


def relying_party(provider: Provider, client: Client) -> RelyingParty:
    """Configured with nothing about the provider but its discovery URL."""
    return RelyingParty(
        None,
        client_id=client.client_id,
        client_secret=client.secret,
        server_metadata_url=provider.discovery_url,
        client_kwargs={"scope": "openid profile", "code_challenge_method": "S256", "timeout": 10},
    )


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


async def test_authlib_accepts_the_discovery_document(provider: Provider) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(provider.discovery_url)
    assert response.status_code == 200, response.text
    metadata = OpenIDProviderMetadata(response.json())
    metadata.validate()
    assert metadata["issuer"] == provider.deployment.issuer
    assert metadata["jwks_uri"].startswith(provider.deployment.issuer + "/")


@pytest.mark.parametrize("kind", ["confidential-RS256", "public-ES256"])
async def test_authlib_signs_in_with_code_pkce_and_nonce_and_verifies_the_id_token(
    provider: Provider, person: Person, kind: str
) -> None:
    client = provider.clients[kind]
    issuer = provider.deployment.issuer
    rp = relying_party(provider, client)
    started = await rp.create_authorization_url(REDIRECT_URI)
    assert {"url", "state", "nonce", "code_verifier"} <= set(started)
    metadata = await rp.load_server_metadata()
    assert started["url"].startswith(metadata["authorization_endpoint"] + "?")
    sent = query(started["url"])
    assert sent["nonce"] == started["nonce"]
    assert sent["code_challenge_method"] == "S256"
    assert sent["scope"] == "openid profile"

    callback = await person.authorize(started["url"])
    assert person.pages == ["Sign in", "Authorize access"]
    answered = query(callback)
    assert callback.partition("?")[0] == REDIRECT_URI
    assert answered["state"] == started["state"] and answered["iss"] == issuer

    signed_in_by = int(time.time())
    token = await rp.fetch_access_token(
        redirect_uri=REDIRECT_URI,
        authorization_response=callback,
        state=started["state"],
        code_verifier=started["code_verifier"],
    )
    assert token["token_type"] == "Bearer"
    assert set(token["scope"].split()) == {"openid", "profile"}
    assert "id_token" in token

    # Authlib: signature against the discovered jwks_uri, iss, aud, exp, nonce, at_hash.
    user = await rp.parse_id_token(token, nonce=started["nonce"])
    assert user["sub"] == provider.subject
    assert user["iss"] == issuer and user["aud"] == client.client_id
    with pytest.raises(JoseError, match="nonce"):
        await rp.parse_id_token(token, nonce="not-the-nonce")

    # PyJWT, independently, against the JWK Set at the discovered jwks_uri.
    async with httpx.AsyncClient(timeout=10) as http:
        jwks = (await http.get(metadata["jwks_uri"])).json()
    header_alg = [k["alg"] for k in jwks["keys"] if k["kid"] == _kid(token["id_token"])]
    assert header_alg == [client.alg]
    claims = decode(token["id_token"], jwks, audience=client.client_id, issuer=issuer)
    assert claims["sub"] == provider.subject
    assert claims["nonce"] == started["nonce"]
    assert claims["at_hash"] == half_hash(token["access_token"])
    assert claims["amr"] == ["pwd"]
    assert signed_in_by - 60 <= claims["auth_time"] <= claims["iat"] < claims["exp"]

    info = await rp.userinfo(token=token)
    assert dict(info) == {"sub": provider.subject, "preferred_username": "alice"}
    assert metadata["userinfo_endpoint"] == issuer + "/userinfo"


def _kid(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


async def test_a_refreshed_access_token_still_reaches_userinfo_for_the_same_user(
    provider: Provider, person: Person
) -> None:
    """Core §12.2: refreshing keeps the grant's user and its openid scope."""
    client = provider.clients["confidential-RS256"]
    rp = relying_party(provider, client)
    started = await rp.create_authorization_url(REDIRECT_URI, prompt="consent")
    callback = await person.authorize(started["url"])
    token = await rp.fetch_access_token(
        redirect_uri=REDIRECT_URI,
        authorization_response=callback,
        state=started["state"],
        code_verifier=started["code_verifier"],
    )
    metadata = await rp.load_server_metadata()
    async with AsyncOAuth2Client(
        client_id=client.client_id, client_secret=client.secret, token=token, timeout=10
    ) as session:
        refreshed: dict[str, Any] = await session.refresh_token(metadata["token_endpoint"])
    assert refreshed["access_token"] != token["access_token"]
    assert set(refreshed["scope"].split()) == {"openid", "profile"}
    assert dict(await rp.userinfo(token=refreshed)) == dict(await rp.userinfo(token=token))
    assert (await rp.userinfo(token=refreshed))["sub"] == provider.subject
