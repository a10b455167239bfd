"""``Settings.error_uri``: a page explaining errors, named in every error response
(RFC 6749 §4.1.2.1, §5.2; RFC 6750 §3) with the error code as the fragment, linked
from the error page; absent exactly when it is not configured."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, Router

from asgi_oauth import AuthorizationServer, Settings, SettingsError
from asgi_oauth.app import OAuth2App
from asgi_oauth.middleware import BearerTokenMiddleware
from asgi_oauth.storage import MemoryStorage

from .browser_helpers import fragment_of, query_of, redirect_target
from .conftest import ISSUER, REDIRECT_URI

pytestmark = pytest.mark.anyio

ERRORS = "https://docs.example/oauth/errors"
KEK = "a-key-encryption-key-of-32-characters-at-least"


async def ok(request: Request) -> JSONResponse:
    return JSONResponse({})


class Site:
    def __init__(self, http: httpx.AsyncClient, client: tuple[str, str], public_id: str) -> None:
        self.http, self.client, self.public_id = http, client, public_id


async def site(error_uri: str | None) -> AsyncIterator[Site]:
    settings = Settings(
        issuer=ISSUER,
        error_uri=error_uri,
        key_encryption_key=KEK,
        client_registration="open",
        enabled_grants=frozenset({"authorization_code", "client_credentials", "implicit"}),
    )
    server = AuthorizationServer(MemoryStorage(), settings)
    registered = await server.register_client(
        name="app",
        redirect_uris=[REDIRECT_URI],
        grant_types=["authorization_code", "client_credentials", "implicit"],
        scope=["read"],
    )
    assert registered.client_secret is not None
    api = BearerTokenMiddleware(Router([Route("/", ok)]), introspector=server)
    app = Starlette(routes=[Mount("/oauth2", app=OAuth2App(server)), Mount("/api", app=api)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://as.example") as http:
        client = (registered.client.client_id, registered.client_secret)
        yield Site(http, client, registered.client.client_id)
    await server.close()


@pytest.fixture(params=[ERRORS, None], ids=["configured", "not-configured"])
async def configured(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Site, str | None]]:
    async for s in site(request.param):
        yield s, request.param


def expected(base: str | None, code: str) -> str | None:
    return None if base is None else f"{base}#{code}"


async def test_json_errors_name_the_page_with_their_code(
    configured: tuple[Site, str | None],
) -> None:
    s, base = configured
    bad_client = await s.http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=("nobody", "x")
    )
    bad_grant = await s.http.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": "nope", "redirect_uri": REDIRECT_URI},
        auth=s.client,
    )
    introspection = await s.http.post("/oauth2/introspect", data={"token": "t"})
    unsupported = await s.http.post("/oauth2/token", data={"grant_type": "magic"}, auth=s.client)
    registration = await s.http.post("/oauth2/register", json={"redirect_uris": ["nope"]})
    for response, code in (
        (bad_client, "invalid_client"),
        (bad_grant, "invalid_grant"),
        (introspection, "invalid_client"),
        (unsupported, "unsupported_grant_type"),
        (registration, "invalid_redirect_uri"),
    ):
        body = response.json()
        assert body["error"] == code, body
        assert body.get("error_uri") == expected(base, code), body
        assert ("error_uri" in body) is (base is not None)


async def test_error_redirects_carry_it_in_the_query_and_the_fragment(
    configured: tuple[Site, str | None],
) -> None:
    s, base = configured
    common = f"/oauth2/authorize?client_id={s.public_id}&redirect_uri={quote(REDIRECT_URI)}"
    query = redirect_target(await s.http.get(f"{common}&response_type=code&state=s1&scope=admin"))
    params = query_of(query)
    assert params["error"] == "invalid_scope" and params["state"] == "s1"
    assert params.get("error_uri") == expected(base, "invalid_scope")
    assert ("error_uri" in params) is (base is not None)
    fragment = redirect_target(await s.http.get(f"{common}&response_type=token&scope=admin"))
    assert "?" not in fragment
    params = fragment_of(fragment)
    assert params["error"] == "invalid_scope" and params["iss"] == ISSUER
    assert params.get("error_uri") == expected(base, "invalid_scope")


async def test_bearer_challenges_name_it(configured: tuple[Site, str | None]) -> None:
    s, base = configured
    for path in ("/api/", "/oauth2/userinfo"):
        response = await s.http.get(path, headers={"authorization": "Bearer not-a-token"})
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        assert 'error="invalid_token"' in challenge
        if base is None:
            assert "error_uri" not in challenge
        else:
            assert f'error_uri="{base}#invalid_token"' in challenge
    # No token, no error: nothing to explain (RFC 6750 §3.1).
    assert "error_uri" not in (await s.http.get("/api/")).headers["www-authenticate"]


async def test_the_error_page_links_to_it_in_the_persons_language(
    configured: tuple[Site, str | None],
) -> None:
    s, base = configured
    page = await s.http.get("/oauth2/authorize?client_id=nobody&response_type=code")
    assert page.status_code == 400
    if base is None:
        assert "error_uri" not in page.text and "More about this error" not in page.text
    else:
        assert f'<a href="{base}#invalid_request">More about this error</a>' in page.text
        french = await s.http.get(
            "/oauth2/authorize?client_id=nobody", headers={"accept-language": "fr"}
        )
        assert f'<a href="{base}#invalid_request">En savoir plus sur cette erreur</a>' in (
            french.text
        )


async def test_a_query_in_the_setting_is_kept() -> None:
    async for s in site("https://docs.example/errors?lang=en"):
        body = (await s.http.post("/oauth2/token", data={"grant_type": "magic"})).json()
        assert body["error_uri"] == "https://docs.example/errors?lang=en#unsupported_grant_type"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("http://docs.example/errors", "absolute https URL"),
        ("/errors", "absolute https URL"),
        ("javascript:alert(1)", "absolute https URL"),
        ("https://docs.example/errors#top", "no fragment"),
        ('https://docs.example/e"rrors', "no fragment, quote"),
        ("https://docs.example/e\\rrors", "backslash"),
        ("https://docs.example/an error", "absolute https URL"),
    ],
)
def test_a_bad_error_uri_is_refused_at_construction(value: str, message: str) -> None:
    with pytest.raises(SettingsError, match="error_uri") as refused:
        Settings(issuer=ISSUER, error_uri=value)
    assert message in str(refused.value)


def test_settings_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "ASGI_OAUTH_ISSUER": ISSUER,
            "ASGI_OAUTH_ERROR_URI": ERRORS,
            "ASGI_OAUTH_AVAILABLE": "false",
            "ASGI_OAUTH_MAINTENANCE_RETRY_AFTER": "120",
        }
    )
    assert settings.error_uri == ERRORS
    assert settings.available is False
    assert settings.maintenance_retry_after == 120
    defaults = Settings.from_env({"ASGI_OAUTH_ISSUER": ISSUER})
    assert defaults.error_uri is None and defaults.available is True
    assert defaults.maintenance_retry_after == 60
    http = Settings(issuer=ISSUER, insecure_transport=True, error_uri="http://localhost/e")
    assert http.error_uri == "http://localhost/e"
    with pytest.raises(SettingsError, match="ASGI_OAUTH_AVAILABLE"):
        Settings.from_env({"ASGI_OAUTH_ISSUER": ISSUER, "ASGI_OAUTH_AVAILABLE": "maybe"})
    with pytest.raises(SettingsError, match="maintenance_retry_after must be positive"):
        Settings(issuer=ISSUER, maintenance_retry_after=0)
