"""The pages as a product: the service's name, logo and way back (``Settings.service_name``,
``logo_uri``, ``service_uri``), a page at the issuer's URL, scopes said in sentences,
"Remember this decision" offered only where it is kept, and error pages with a way back.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from asgi_oauth import AuthorizationServer, Settings, SettingsError, User
from asgi_oauth.app import OAuth2App
from asgi_oauth.app.pages.scopes import describe_scope
from asgi_oauth.storage import MemoryStorage

from .browser_helpers import (
    AUTHORIZE,
    CHALLENGE,
    PASSWORD,
    consent_page,
    csp,
    decide,
    mounted,
    parse_page,
    redirect_target,
    start,
)
from .conftest import ISSUER, REDIRECT_URI, Credentials

pytestmark = pytest.mark.anyio

ACME = {
    "service_name": "Acme <Corp>",
    "logo_uri": "https://cdn.acme.example/logo.png?v=2",
    "service_uri": "https://acme.example/",
}
HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
NATIVE_REDIRECT = "http://127.0.0.1/cb"


@pytest.fixture
async def alice(server: AuthorizationServer) -> User:
    return await server.create_user("alice", PASSWORD)


async def branded(
    **settings: object,
) -> AsyncIterator[tuple[AuthorizationServer, httpx.AsyncClient]]:
    server = AuthorizationServer(MemoryStorage(), Settings(issuer=ISSUER, **settings))  # type: ignore[arg-type]
    try:
        async with mounted(OAuth2App(server)) as http:
            yield server, http
    finally:
        await server.close()


@pytest.fixture
async def acme() -> AsyncIterator[tuple[AuthorizationServer, httpx.AsyncClient]]:
    async for pair in branded(**ACME, client_registration="open"):
        yield pair


def pkce(client_id: str, **params: str) -> dict[str, str]:
    return {
        "client_id": client_id,
        "response_type": "code",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        **params,
    }


# -- settings ---------------------------------------------------------------


def test_brand_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "ASGI_OAUTH_ISSUER": ISSUER,
            "ASGI_OAUTH_SERVICE_NAME": "Acme",
            "ASGI_OAUTH_LOGO_URI": "https://acme.example/logo.svg",
            "ASGI_OAUTH_SERVICE_URI": "https://acme.example",
        }
    )
    assert settings.service_name == "Acme"
    assert settings.logo_uri == "https://acme.example/logo.svg"
    assert settings.service_uri == "https://acme.example"


@pytest.mark.parametrize("name", ["logo_uri", "service_uri"])
@pytest.mark.parametrize(
    "value",
    [
        "http://acme.example/logo.png",  # http without insecure_transport
        "javascript:alert(1)",
        "/logo.png",
        "https://acme.example;script-src/x.png",  # CSP syntax in the host
        "https://acme.example/a b.png",
        "https://acme.example:port/logo.png",
    ],
)
def test_page_urls_must_be_absolute_https(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings(issuer=ISSUER, **{name: value})  # type: ignore[arg-type]


def test_http_logo_only_with_insecure_transport() -> None:
    settings = Settings(
        issuer="http://127.0.0.1:8000", insecure_transport=True, logo_uri="http://127.0.0.1:9/l.png"
    )
    assert settings.logo_uri == "http://127.0.0.1:9/l.png"


# -- name, logo and Content-Security-Policy ----------------------------------


async def test_login_page_names_the_service_and_shows_the_logo(
    acme: tuple[AuthorizationServer, httpx.AsyncClient],
) -> None:
    _, http = acme
    response = await http.get(ISSUER + "/login")
    page = parse_page(response.text)
    assert page.title == "Sign in to Acme <Corp>"
    assert "<h1>Sign in to Acme &lt;Corp&gt;</h1>" in response.text
    assert '<img src="https://cdn.acme.example/logo.png?v=2" alt="">' in response.text
    assert '<span class="service">Acme &lt;Corp&gt;</span>' in response.text


async def test_csp_allows_images_from_the_logo_origin_only(
    acme: tuple[AuthorizationServer, httpx.AsyncClient],
) -> None:
    _, http = acme
    response = await http.get(ISSUER + "/login")
    policy = csp(response)
    assert policy["img-src"] == "https://cdn.acme.example"
    assert policy["default-src"] == "'none'"


async def test_without_a_logo_no_image_is_allowed(http: httpx.AsyncClient) -> None:
    response = await http.get(ISSUER + "/login")
    assert "img-src" not in csp(response)
    assert "<img" not in response.text
    assert parse_page(response.text).title == "Sign in"


async def test_other_pages_carry_the_service_in_their_title(
    acme: tuple[AuthorizationServer, httpx.AsyncClient],
) -> None:
    _, http = acme
    response = await http.get(ISSUER + "/authorize")
    page = parse_page(response.text)
    assert page.title == "This request cannot be completed · Acme <Corp>"
    assert "<h1>This request cannot be completed</h1>" in response.text


# -- the issuer's own URL ----------------------------------------------------


async def test_a_browser_at_the_issuer_gets_a_page(
    acme: tuple[AuthorizationServer, httpx.AsyncClient],
) -> None:
    _, http = acme
    response = await http.get(ISSUER + "/", headers=HTML)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-frame-options"] == "DENY"
    page = parse_page(response.text)
    assert page.title == "Acme <Corp>"
    assert f'href="{ISSUER}/login"' in response.text
    metadata = f"{ISSUER}/.well-known/oauth-authorization-server"
    assert f'<a href="{metadata}">{metadata}</a>' in response.text
    assert "For developers" in page.text
    assert '<a href="https://acme.example/">Back to Acme &lt;Corp&gt;</a>' in response.text


async def test_issuer_without_slash_gets_the_page_too(http: httpx.AsyncClient) -> None:
    # Starlette's Mount sends /oauth2 on to /oauth2/ first.
    response = await http.get(ISSUER, headers={"accept": "text/html"}, follow_redirects=True)
    assert response.status_code == 200
    assert parse_page(response.text).title == "Sign-in service"


@pytest.mark.parametrize(
    "headers",
    [{}, {"accept": "application/json"}, {"accept": "*/*"}, {"accept": "text/html;q=0"}],
)
async def test_anything_but_a_browser_keeps_the_json_404(
    http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await http.get(ISSUER + "/", headers=headers)
    assert response.status_code == 404
    assert response.json()["error"] == "invalid_request"


async def test_a_post_to_the_issuer_keeps_the_json_404(http: httpx.AsyncClient) -> None:
    response = await http.post(ISSUER + "/", headers=HTML, data={"a": "b"})
    assert response.status_code == 404
    assert response.json()["error"] == "invalid_request"


async def test_the_page_links_to_the_hosts_own_sign_in(server: AuthorizationServer) -> None:
    async def nobody(request: object) -> None:
        return None

    app = OAuth2App(server, current_user=nobody, login_url="https://acme.example/login")
    async with mounted(app) as http:
        response = await http.get(ISSUER + "/", headers=HTML)
    assert 'href="https://acme.example/login"' in response.text
    assert f'href="{ISSUER}/login"' not in response.text


async def test_the_page_links_to_the_account_page_when_there_is_one(
    http: httpx.AsyncClient, oauth_app: OAuth2App
) -> None:
    response = await http.get(ISSUER + "/", headers=HTML)
    has_account = oauth_app.route_of("/account") == "/account"
    assert (f'href="{ISSUER}/account"' in response.text) == has_account


# -- scopes in sentences -----------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "sentence"),
    [
        ("openid", "Confirm who you are"),
        ("profile", "See your name, username and picture"),
        ("email", "See your e-mail address"),
        ("address", "See your postal address"),
        ("phone", "See your phone number"),
        ("offline_access", "Keep access while you are away"),
        ("read", "Use “read”"),
    ],
)
def test_each_scope_is_a_sentence(scope: str, sentence: str) -> None:
    assert describe_scope(scope, {}) == sentence


def test_configured_descriptions_win() -> None:
    assert describe_scope("email", {"email": "Read your mail"}) == "Read your mail"
    assert describe_scope("read", {"read": "Read your files"}) == "Read your files"


async def test_consent_page_says_scopes_in_sentences(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    response = await consent_page(http, "alice", **pkce(public.client_id, scope="read write"))
    text = parse_page(response.text).text
    assert "Use “read”" in text
    assert "Use “write”" in text
    assert "<code>" not in response.text


async def test_consent_page_uses_the_configured_description_first() -> None:
    async for server, http in branded(scope_descriptions={"write": "Change your files"}):
        await server.create_user("alice", PASSWORD)
        registered = await server.register_client(
            name="Public", redirect_uris=[REDIRECT_URI], scope=["read", "write"], public=True
        )
        params = pkce(registered.client.client_id, scope="read write")
        response = await consent_page(http, "alice", **params)
    text = parse_page(response.text).text
    assert "Change your files" in text
    assert "Use “write”" not in text
    assert "Use “read”" in text


# -- "Remember this decision" -------------------------------------------------


def offers_remember(response: httpx.Response) -> bool:
    return ("remember", "checkbox", "") in parse_page(response.text).form.inputs


async def native_client(server: AuthorizationServer) -> str:
    registered = await server.register_client(
        name="Native", redirect_uris=[NATIVE_REDIRECT], scope=["read"], public=True
    )
    return registered.client.client_id


async def test_native_app_on_loopback_is_not_offered_to_remember(
    http: httpx.AsyncClient, server: AuthorizationServer, alice: User
) -> None:
    client_id = await native_client(server)
    params = pkce(client_id, scope="read", redirect_uri="http://127.0.0.1:5000/cb")
    page = await consent_page(http, "alice", **params)
    assert not offers_remember(page)
    # And indeed it would be ignored: approving, then asking again, asks again.
    approved = await decide(http, page, "approve", remember=True)
    assert redirect_target(approved).startswith("http://127.0.0.1:5000/cb?code=")
    again = await start(http, **params)
    assert again.status_code == 200
    assert parse_page(again.text).title == "Authorize access"


async def test_web_client_is_offered_to_remember_and_it_is_kept(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    params = pkce(public.client_id, scope="read")
    page = await consent_page(http, "alice", **params)
    assert offers_remember(page)
    await decide(http, page, "approve", remember=True)
    again = await start(http, **params)
    assert redirect_target(again).startswith(REDIRECT_URI + "?code=")


async def test_prompt_consent_still_offers_to_remember_for_later_requests(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    """``prompt=consent`` asks this time; the decision it remembers spares the next request
    that does not say ``prompt=consent``, so the offer stands."""
    page = await consent_page(
        http, "alice", **pkce(public.client_id, scope="read", prompt="consent")
    )
    assert offers_remember(page)
    await decide(http, page, "approve", remember=True)
    again = await start(http, **pkce(public.client_id, scope="read"))
    assert redirect_target(again).startswith(REDIRECT_URI + "?code=")


# -- error pages with a way back ---------------------------------------------


async def register(http: httpx.AsyncClient, **metadata: object) -> str:
    response = await http.post(
        ISSUER + "/register",
        json={"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none", **metadata},
    )
    assert response.status_code == 201, response.text
    client_id: str = response.json()["client_id"]
    return client_id


async def test_error_page_links_back_to_the_clients_own_site(
    acme: tuple[AuthorizationServer, httpx.AsyncClient],
) -> None:
    _, http = acme
    client_id = await register(http, client_name="Photos", client_uri="https://photos.example/")
    evil = "https://evil.example/cb"
    response = await start(http, **pkce(client_id, redirect_uri=evil))
    assert response.status_code == 400
    assert '<a href="https://photos.example/">Back to Photos</a>' in response.text
    assert re.findall(r'href="([^"]*)"', response.text) == ["https://photos.example/"]


async def test_error_page_falls_back_to_the_service(
    acme: tuple[AuthorizationServer, httpx.AsyncClient],
) -> None:
    _, http = acme
    client_id = await register(http, client_name="Photos")  # no client_uri
    response = await start(http, **pkce(client_id, redirect_uri="https://evil.example/cb"))
    assert response.status_code == 400
    links = re.findall(r'href="([^"]*)"', response.text)
    assert links == ["https://acme.example/"]
    assert "Back to Acme &lt;Corp&gt;" in response.text


async def test_unknown_client_gets_the_service_link_only(
    acme: tuple[AuthorizationServer, httpx.AsyncClient],
) -> None:
    _, http = acme
    response = await start(http, **pkce("nobody", redirect_uri="https://evil.example/cb"))
    assert response.status_code == 400
    assert re.findall(r'href="([^"]*)"', response.text) == ["https://acme.example/"]


async def test_error_page_without_any_way_back_has_no_link(
    http: httpx.AsyncClient, public: Credentials
) -> None:
    response = await start(http, **pkce(public.client_id, redirect_uri="https://evil.example/cb"))
    assert response.status_code == 400
    assert "<a " not in response.text


# -- the device's user code --------------------------------------------------


def test_the_user_code_never_wraps() -> None:
    from asgi_oauth.app.pages import DeviceConsentPage, Pages

    html = Pages().render(
        DeviceConsentPage(
            action=AUTHORIZE,
            csrf_token="t",
            client_name="TV",
            user_name="a",
            user_code="WDJB-MJHT",
            scopes=(),
        )
    )
    assert '<code class="user-code">WDJB-MJHT</code>' in html
    assert ".user-code{white-space:nowrap}" in html
