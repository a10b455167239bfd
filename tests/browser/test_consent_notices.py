"""The consent page's notices about who is asking, in Chromium: readable, legible and
within the Content-Security-Policy, on a desktop and on a phone.

A dynamically registered client goes through the whole flow against uvicorn. A
client ID metadata document's variant is the page the server renders for such a
client (its headers included), served to the browser as it would be, until a
test with a real document server covers the whole flow.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import httpx
import pytest

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.app.browser import Browser
from asgi_oauth.app.pages import ConsentPage, Pages
from asgi_oauth.pkce import s256_challenge
from asgi_oauth.storage import MemoryStorage
from tests.servers.process import ServerProcess, deploy, serve

from .conftest import PHONE, NewTab, User, assert_fits_a_phone, off_this_thread, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

pytestmark = pytest.mark.slow

WARNING = "this app runs on your computer. Approve only if you started it yourself."
#: WCAG 2.x 1.4.3: normal text needs a contrast ratio of at least 4.5:1.
MINIMUM_CONTRAST = 4.5
#: The text's colour against the first opaque background behind it (WCAG relative luminance).
CONTRAST = """
(element) => {
    const rgb = (css) => {
        const [r, g, b, a = 1] = css.match(/[\\d.]+/g).map(Number);
        return { r, g, b, a };
    };
    const background = (node) => {
        for (; node; node = node.parentElement) {
            const color = rgb(getComputedStyle(node).backgroundColor);
            if (color.a > 0) return color;
        }
        return { r: 255, g: 255, b: 255, a: 1 };
    };
    const luminance = ({ r, g, b }) => {
        const linear = (v) => {
            v /= 255;
            return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
        };
        return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
    };
    const text = luminance(rgb(getComputedStyle(element).color));
    const [a, b] = [text, luminance(background(element))];
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The test server, with dynamic registration open."""
    directory = tmp_path_factory.mktemp("notices")
    settings = {"client_registration": "open", "scopes_supported": ["read", "write"]}
    deployment = replace(
        off_this_thread(lambda: deploy(directory)), settings_json=json.dumps(settings)
    )
    with serve("uvicorn", deployment) as running:
        yield running


def register(server: ServerProcess, redirect_uri: str) -> str:
    response = httpx.post(
        server.deployment.issuer + "/register",
        json={
            "client_name": "Self-made tool",
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        },
        timeout=10,
    )
    assert response.status_code == 201, response.text
    client_id: str = response.json()["client_id"]
    return client_id


def authorization_url(server: ServerProcess, client_id: str, redirect_uri: str) -> str:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "read",
        "code_challenge": s256_challenge("v" * 43),
        "code_challenge_method": "S256",
    }
    return f"{server.deployment.issuer}/authorize?{urlencode(query)}"


def assert_legible(page: Page, selector: str) -> None:
    """Every element ``selector`` finds is visible and contrasts enough with its background."""
    found = page.locator(selector)
    assert found.count() > 0, selector
    for index in range(found.count()):
        element = found.nth(index)
        assert element.is_visible()
        ratio = element.evaluate(CONTRAST)
        assert ratio >= MINIMUM_CONTRAST, (selector, element.inner_text(), ratio)


def assert_notices_read_well(page: Page) -> None:
    assert_legible(page, ".notice p")
    assert_legible(page, ".notice .host")
    assert_legible(page, ".warning")
    # The warning says so in words, not by its colour alone.
    assert page.locator(".warning strong").inner_text() == "Warning:"


def test_a_self_registered_local_app_is_shown_as_such_and_can_be_approved(
    server: ServerProcess, new_tab: NewTab, user: User
) -> None:
    tab = new_tab()
    page = tab.page
    client_id = register(server, "http://127.0.0.1/cb")
    page.goto(authorization_url(server, client_id, tab.redirect_uri))
    sign_in(page, user)
    page.get_by_role("heading", name="Authorize access").wait_for()

    notice = page.locator(".notice").inner_text()
    assert "This app registered itself with this server: its name is not verified." in notice
    assert "After you decide, your browser is sent to 127.0.0.1" in notice
    assert WARNING in notice
    assert_notices_read_well(page)
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(tab.redirect_uri + "?**")
    assert "code" in tab.arrival().params
    assert tab.csp_errors == []


def test_the_notices_fit_a_phone(server: ServerProcess, new_tab: NewTab, user: User) -> None:
    tab = new_tab(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = tab.page
    client_id = register(server, "http://127.0.0.1/cb")
    page.goto(authorization_url(server, client_id, tab.redirect_uri))
    sign_in(page, user)
    page.get_by_role("heading", name="Authorize access").wait_for()
    assert_fits_a_phone(page, "Approve")
    assert_fits_a_phone(page, "Deny")
    assert tab.csp_errors == []


# -- a client ID metadata document's client -----------------------------------------

CONSENT_URL = "https://as.example/oauth2/authorize?client_id=doc"
#: A long host name must wrap, not push the page sideways on a phone.
LONG_HOST = "a-client-with-a-rather-long-host-name.tools.example.com"


def rendered_consent(client_host: str) -> tuple[dict[str, str], bytes]:
    """The consent page the server answers for a metadata-document client: its headers
    (Content-Security-Policy with this response's nonce) and body."""
    server = AuthorizationServer(MemoryStorage(), Settings(issuer="https://as.example"))
    response = Browser(server, Pages()).page(
        ConsentPage(
            action="https://as.example/oauth2/authorize",
            csrf_token="token",
            client_name="Tools",
            user_name="alice",
            scopes=(("write", "Change your data"),),
            allowed=(("read", "Read your data"),),
            client_kind="metadata_document",
            client_host=client_host,
            redirect_host="127.0.0.1",
            local_only=True,
        )
    )
    return dict(response.headers), bytes(response.body)


def serve_consent(page: Page, client_host: str) -> None:
    headers, body = rendered_consent(client_host)

    def answer(route: Route) -> None:
        route.fulfill(status=200, headers=headers, body=body)

    page.route(CONSENT_URL, answer)
    page.goto(CONSENT_URL)


@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_a_metadata_document_client_shows_its_host_first_and_reads_well(
    new_tab: NewTab, viewport: dict[str, int] | None
) -> None:
    tab = new_tab(viewport=viewport) if viewport else new_tab()
    page = tab.page
    serve_consent(page, LONG_HOST)
    hosts = page.locator(".notice .host")
    assert hosts.nth(0).inner_text() == LONG_HOST
    assert hosts.nth(1).inner_text() == "127.0.0.1"
    # Shown larger than the text around it: the host is what vouches for the app.
    sizes = page.locator(".notice p").first.evaluate(
        "p => [getComputedStyle(p).fontSize, getComputedStyle(p.querySelector('.host')).fontSize]"
    )
    assert float(sizes[1].removesuffix("px")) > float(sizes[0].removesuffix("px"))
    notice = page.locator(".notice").inner_text()
    assert "This app is not registered with this server." in notice
    assert WARNING in notice
    text = " ".join(page.locator("main").inner_text().split())
    assert "It asks to: Change your data You already allowed it to: Read your data" in text
    assert_notices_read_well(page)
    if viewport:
        assert_fits_a_phone(page, "Approve")
    assert tab.csp_errors == []
