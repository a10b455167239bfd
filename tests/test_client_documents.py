"""Client ID metadata documents read as clients, cached, and found by every endpoint.

The fetcher's own rules (SSRF, redirects, size, time) are in
``test_client_document_fetch.py``; here a scripted fetcher stands in for the
network where the point is what is done with a document, and a real TLS server
on loopback where the point is the whole flow.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.client_documents.directory import FAILURE_TTL, ClientDocuments
from asgi_oauth.client_documents.document import InvalidClientDocumentError, client_from_document
from asgi_oauth.client_documents.fetch import (
    DocumentFetcher,
    DocumentFetchError,
    FetchedDocument,
    FetchPolicy,
)
from asgi_oauth.storage import SQLiteStorage

from .https_helpers import HTTPSServer, Reply, serve_https, shared_ca
from .test_consent_notices import hosts, notice
from .user_agent import Person

pytestmark = pytest.mark.anyio

URL = "https://app.example/oauth/client.json"
REDIRECT = "http://127.0.0.1/callback"


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "issuer": "https://as.example",
        "scopes_supported": ("read", "write"),
        "client_id_metadata_documents": True,
    }
    return Settings(**{**values, **overrides})


def document(**overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "client_id": URL,
        "client_name": "Example App",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
    }
    doc.update(overrides)
    return {name: value for name, value in doc.items() if value is not None}


# -- a document read as a client --------------------------------------------------------------


def test_a_document_is_a_public_client_known_by_its_url() -> None:
    client = client_from_document(URL, document(scope="read admin"), settings())
    assert client.client_id == URL
    assert client.metadata_document
    assert client.is_public
    assert client.name == "Example App"
    assert client.redirect_uris == (REDIRECT,)
    assert client.grant_types == {"authorization_code", "refresh_token"}
    # Narrowed to what this server lets clients have, as for registration.
    assert client.scope == {"read"}


def test_a_document_without_a_method_is_public() -> None:
    client = client_from_document(URL, document(token_endpoint_auth_method=None), settings())
    assert client.is_public


@pytest.mark.parametrize(
    "named",
    [
        URL + "/",
        URL.upper(),
        "https://APP.example/oauth/client.json",
        "https://app.example:443/oauth/client.json",
        "https://app.example/oauth/./client.json",
        None,
    ],
)
def test_the_document_must_name_its_own_url_exactly(named: str | None) -> None:
    # §4.1: compared as strings, with no normalisation.
    with pytest.raises(InvalidClientDocumentError, match="client_id is not its URL"):
        client_from_document(URL, document(client_id=named), settings())


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"client_name": None}, "no client_name"),
        ({"client_name": "  "}, "no client_name"),
        ({"client_name": 7}, "no client_name"),
        ({"redirect_uris": None}, "no redirect_uris"),
        ({"redirect_uris": []}, "no redirect_uris"),
        ({"client_secret": "s3cret"}, "must not carry a secret"),
        ({"client_secret_expires_at": 0}, "must not carry a secret"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "shared secret"),
        ({"token_endpoint_auth_method": "client_secret_post"}, "shared secret"),
        ({"token_endpoint_auth_method": "client_secret_jwt"}, "shared secret"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "private_key_jwt is not supported"),
        ({"token_endpoint_auth_method": "tls_client_auth"}, "token_endpoint_auth_method"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "javascript"),
        ({"redirect_uris": ["https://app.example/cb#frag"]}, "fragment"),
        ({"redirect_uris": "https://app.example/cb"}, "redirect_uris"),
        ({"grant_types": ["client_credentials"]}, "grant type"),
        ({"client_name": "App\x00"}, "control characters"),
    ],
)
def test_a_document_that_cannot_describe_a_client_is_refused(
    overrides: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidClientDocumentError, match=reason):
        client_from_document(URL, document(**overrides), settings())


# -- the cache ------------------------------------------------------------------------------


class ScriptedFetcher(DocumentFetcher):
    """Answers from a script and counts what it was asked, slowly enough to overlap."""

    def __init__(self, answers: Mapping[str, FetchedDocument | DocumentFetchError]) -> None:
        super().__init__(FetchPolicy())
        self.answers = dict(answers)
        self.fetched: list[str] = []

    async def fetch(self, url: str) -> FetchedDocument:
        self.fetched.append(url)
        await asyncio.sleep(0.01)
        answer = self.answers[url]
        if isinstance(answer, DocumentFetchError):
            raise answer
        return answer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_document_is_fetched_once_while_its_cache_lifetime_lasts() -> None:
    fetcher = ScriptedFetcher({URL: FetchedDocument(document(), max_age=300)})
    clock = Clock()
    documents = ClientDocuments(settings(), fetcher=fetcher, clock=clock)
    first = await documents.client(URL)
    clock.now += 299
    assert await documents.client(URL) == first
    assert fetcher.fetched == [URL]
    clock.now += 2
    await documents.client(URL)
    assert fetcher.fetched == [URL, URL]


async def test_concurrent_requests_for_one_document_share_one_fetch() -> None:
    fetcher = ScriptedFetcher({URL: FetchedDocument(document(), max_age=300)})
    documents = ClientDocuments(settings(), fetcher=fetcher)
    clients = await asyncio.gather(*(documents.client(URL) for _ in range(20)))
    assert {c.client_id for c in clients} == {URL}
    assert fetcher.fetched == [URL]


async def test_a_failure_is_remembered_briefly_then_tried_again() -> None:
    fetcher = ScriptedFetcher({URL: DocumentFetchError("the host did not answer in time")})
    clock = Clock()
    documents = ClientDocuments(settings(), fetcher=fetcher, clock=clock)
    for _ in range(3):
        with pytest.raises(DocumentFetchError, match="did not answer in time"):
            await documents.client(URL)
    assert fetcher.fetched == [URL]
    fetcher.answers[URL] = FetchedDocument(document(), max_age=300)
    clock.now += FAILURE_TTL
    assert (await documents.client(URL)).client_id == URL
    assert len(fetcher.fetched) == 2


async def test_an_invalid_document_is_a_failure_with_its_reason() -> None:
    fetcher = ScriptedFetcher({URL: FetchedDocument(document(client_id=URL + "x"), 300)})
    documents = ClientDocuments(settings(), fetcher=fetcher)
    with pytest.raises(DocumentFetchError, match="client_id is not its URL"):
        await documents.client(URL)


async def test_the_policy_hook_refuses_before_anything_is_fetched() -> None:
    fetcher = ScriptedFetcher({URL: FetchedDocument(document(), max_age=300)})
    asked: list[str] = []

    async def policy(url: str) -> bool:
        asked.append(url)
        return False

    documents = ClientDocuments(settings(), fetcher=fetcher, policy=policy)
    with pytest.raises(DocumentFetchError, match="does not accept"):
        await documents.client(URL)
    assert asked == [URL]
    assert fetcher.fetched == []


async def test_a_request_that_goes_away_does_not_cancel_the_shared_fetch() -> None:
    fetcher = ScriptedFetcher({URL: FetchedDocument(document(), max_age=300)})
    documents = ClientDocuments(settings(), fetcher=fetcher)
    first = asyncio.ensure_future(documents.client(URL))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(documents.client(URL))
    await asyncio.sleep(0)
    first.cancel()
    assert (await second).client_id == URL
    assert fetcher.fetched == [URL]


# -- every endpoint, with documents on a real TLS server ---------------------------------------

USERNAME, PASSWORD = "alice", "correct horse battery"


@dataclass
class Deployment:
    server: AuthorizationServer
    http: httpx.AsyncClient
    host: HTTPSServer

    def publish(self, path: str = "/app.json", **overrides: object) -> str:
        url = self.host.url(path)
        body = {**document(**overrides), "client_id": overrides.get("client_id", url)}
        self.host.routes[path] = Reply.json({k: v for k, v in body.items() if v is not None})
        return url

    def fetches(self, url: str) -> int:
        return sum(request.path == urlsplit(url).path for request in self.host.requests)

    async def code(self, client_id: str, verifier: str, request_uri: str | None = None) -> str:
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": "read",
            "state": "s",
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
        }
        if request_uri is not None:  # RFC 9126 §4: the pushed parameters, and only those
            query = {"client_id": client_id, "request_uri": request_uri}
        location = await Person(self.http, USERNAME, PASSWORD).authorize(
            "http://as.test/oauth2/authorize?" + urlencode(query)
        )
        params = dict(parse_qsl(urlsplit(location).query))
        assert location.startswith(REDIRECT + "?") and "code" in params, location
        if request_uri is None:
            assert params["state"] == "s"
        return params["code"]

    async def tokens(self, client_id: str) -> dict[str, Any]:
        verifier = secrets.token_urlsafe(48)
        code = await self.code(client_id, verifier)
        response = await self.http.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "client_id": client_id,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
        )
        assert response.status_code == 200, response.text
        return dict(response.json())


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture
async def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Deployment]:
    ca = shared_ca()
    # The fetcher trusts the system's store, which honours SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.write_pem(tmp_path)))
    server = AuthorizationServer(
        SQLiteStorage(str(tmp_path / "oauth.db")),
        settings(
            insecure_transport=True,
            issuer="http://as.test/oauth2",
            client_id_metadata_document_private_addresses=True,  # the host is on loopback
        ),
    )
    await server.create_user(USERNAME, PASSWORD)
    app = Starlette(routes=[Mount("/oauth2", OAuth2App(server))])
    with serve_https(ca) as host:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://as.test") as http:
            yield Deployment(server, http, host)
    await server.close()


async def test_the_metadata_says_documents_are_supported(deployment: Deployment) -> None:
    metadata = (await deployment.http.get("/oauth2/.well-known/oauth-authorization-server")).json()
    assert metadata["client_id_metadata_document_supported"] is True
    assert "none" in metadata["token_endpoint_auth_methods_supported"]


async def test_a_document_client_gets_a_code_tokens_and_a_refresh(deployment: Deployment) -> None:
    url = deployment.publish()
    tokens = await deployment.tokens(url)
    # Asked again (signed in by now), the consent page names the document's host and the
    # redirect URI's, and says that nothing vouches for the client.
    again = {"response_type": "code", "client_id": url, "redirect_uri": REDIRECT}
    again |= {"scope": "read", "prompt": "consent", "code_challenge_method": "S256"}
    again["code_challenge"] = s256("v" * 43)
    page = await deployment.http.get("/oauth2/authorize?" + urlencode(again))
    assert page.status_code == 200, page.headers.get("location")
    assert hosts(page) == ["localhost", "127.0.0.1"]
    assert "This app is not registered with this server." in notice(page)
    assert "Its name and details come from localhost." in notice(page)
    info = await deployment.server.introspect_token(tokens["access_token"])
    assert info.active and info.client_id == url and info.scope == {"read"}
    # Nothing was registered: the document is the registration.
    assert await deployment.server.storage.get_client(url) is None
    refreshed = await deployment.http.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": url,
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    # One fetch served the authorization request, the code exchange and the refresh.
    assert deployment.fetches(url) == 1


async def test_a_document_taken_down_stops_the_client_at_its_next_fetch(
    deployment: Deployment,
) -> None:
    url = deployment.publish()
    tokens = await deployment.tokens(url)
    del deployment.host.routes["/app.json"]
    documents = deployment.server.clients.documents
    assert documents is not None
    documents.forget(url)  # as when its cache lifetime ends
    refreshed = await deployment.http.post(
        "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": url,
        },
    )
    assert refreshed.status_code == 401
    assert refreshed.json()["error"] == "invalid_client"
    assert "HTTP 404" in refreshed.json()["error_description"]


async def test_a_secret_with_a_document_url_is_refused_without_fetching(
    deployment: Deployment,
) -> None:
    url = deployment.publish()
    for auth in ({"auth": (url, "guessed")}, {"data": {"client_id": url, "client_secret": "x"}}):
        data = {"grant_type": "client_credentials", **auth.get("data", {})}  # type: ignore[dict-item]
        response = await deployment.http.post(
            "/oauth2/token",
            data=data,
            auth=auth.get("auth"),  # type: ignore[arg-type]
        )
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_client"
    introspect = await deployment.http.post(
        "/oauth2/introspect", data={"token": "x", "client_id": url}
    )
    assert introspect.status_code == 401
    assert deployment.fetches(url) == 0


async def test_an_unusable_document_is_an_error_page_never_a_redirect(
    deployment: Deployment,
) -> None:
    url = deployment.publish(client_id=deployment.host.url("/elsewhere.json"))
    query = urlencode(
        {"response_type": "code", "client_id": url, "redirect_uri": REDIRECT, "state": "s"}
    )
    page = await deployment.http.get("/oauth2/authorize?" + query)
    assert page.status_code == 400
    assert "location" not in page.headers
    assert "client_id is not its URL" in page.text
    token = await deployment.http.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": "x", "client_id": url},
    )
    assert token.status_code == 401
    assert token.json()["error"] == "invalid_client"
    assert "client_id is not its URL" in token.json()["error_description"]


async def test_a_document_client_pushes_its_request_and_revokes_its_token(
    deployment: Deployment,
) -> None:
    url = deployment.publish()
    verifier = secrets.token_urlsafe(48)
    pushed = await deployment.http.post(
        "/oauth2/par",
        data={
            "client_id": url,
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "scope": "read",
            "state": "s",
            "code_challenge": s256(verifier),
            "code_challenge_method": "S256",
        },
    )
    assert pushed.status_code == 201, pushed.text
    code = await deployment.code(url, verifier, request_uri=pushed.json()["request_uri"])
    tokens = await deployment.http.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": url,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    assert tokens.status_code == 200, tokens.text
    access = tokens.json()["access_token"]
    revoked = await deployment.http.post("/oauth2/revoke", data={"token": access, "client_id": url})
    assert revoked.status_code == 200
    assert not (await deployment.server.introspect_token(access)).active


async def test_without_the_setting_a_url_client_id_is_unknown_and_nothing_is_fetched(
    tmp_path: Path,
) -> None:
    server = AuthorizationServer(
        SQLiteStorage(str(tmp_path / "oauth.db")),
        Settings(issuer="https://as.example", scopes_supported=("read",)),
    )
    ca = shared_ca()
    with serve_https(ca) as host:
        url = host.url("/app.json")
        host.routes["/app.json"] = Reply.json(document(client_id=url))
        app = Starlette(routes=[Mount("/oauth2", OAuth2App(server))])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://as.example") as http:
            metadata = (await http.get("/oauth2/.well-known/oauth-authorization-server")).json()
            page = await http.get(
                "/oauth2/authorize?"
                + urlencode({"response_type": "code", "client_id": url, "redirect_uri": REDIRECT})
            )
            token = await http.post(
                "/oauth2/token",
                data={"grant_type": "authorization_code", "code": "c", "client_id": url},
            )
        assert host.requests == []
    await server.close()
    assert "client_id_metadata_document_supported" not in metadata
    assert page.status_code == 400 and "unknown client" in page.text
    assert token.status_code == 401
