"""Every page people see, in Chromium at a desktop's and a phone's width, branded
(``service_name``, ``logo_uri``, ``service_uri``): a screenshot of each for a person
to look at, and the checks a person would make first: nothing scrolls sideways on
the phone, the logo loads under the strict Content-Security-Policy, nothing is
blocked, and the device's user code stays on one line.

Screenshots go to ``$ASGI_OAUTH_TEST_ARTIFACTS`` (default ``test-artifacts/screenshots``
in the repository), named ``<page>-<desktop|phone>.png``.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import httpx
import pytest

from asgi_oauth.pkce import s256_challenge
from tests.servers.process import REPO_ROOT, ServerProcess, deploy, serve

from .conftest import LoopbackSite, NewTab, PageHandler, User, off_this_thread, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

#: axe-core, from the npm packages ``scripts/node-setup`` installs; without it, no axe check.
AXE = REPO_ROOT / "tests" / "node" / "node_modules" / "axe-core" / "axe.min.js"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
#: A long name, to see that it wraps rather than pushes the page sideways.
SERVICE_NAME = "Acme Cloud Services for Extraordinarily Long Names"
LOGO = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="96" height="32" viewBox="0 0 96 32">'
    b'<rect width="96" height="32" rx="6" fill="#1d4ed8"/>'
    b'<text x="48" y="22" font-family="sans-serif" font-size="16" fill="#fff" '
    b'text-anchor="middle">ACME</text></svg>'
)


def artifacts() -> Path:
    default = REPO_ROOT / "test-artifacts" / "screenshots"
    directory = Path(os.environ.get("ASGI_OAUTH_TEST_ARTIFACTS") or default)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


class LogoSite(LoopbackSite):
    """Where the logo is served from: an origin of its own, as a CDN would be."""

    def __init__(self) -> None:
        class Handler(PageHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "image/svg+xml")
                self.send_header("Content-Length", str(len(LOGO)))
                self.end_headers()
                self.wfile.write(LOGO)

        super().__init__(Handler)
        self.logo_uri = self.base + "/logo.svg"


@pytest.fixture(scope="module")
def logo_site() -> Iterator[LogoSite]:
    site = LogoSite()
    yield site
    site.close()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, logo_site: LogoSite
) -> Iterator[ServerProcess]:
    """The browser tests' server, branded."""
    directory = tmp_path_factory.mktemp("screenshots")
    deployment = off_this_thread(lambda: deploy(directory))
    brand = {
        "service_name": SERVICE_NAME,
        "logo_uri": logo_site.logo_uri,
        "service_uri": "https://acme.example/",
    }
    with serve("uvicorn", replace(deployment, settings_json=json.dumps(brand))) as running:
        yield running


class Shooter:
    """Takes each page's screenshot and checks it as it goes."""

    def __init__(self, page: Page, viewport: str, csp_errors: list[str]) -> None:
        self.page = page
        self.viewport = viewport
        self.width = VIEWPORTS[viewport]["width"]
        self.csp_errors = csp_errors
        self.directory = artifacts()

    def shoot(self, name: str, heading: str) -> None:
        page = self.page
        page.get_by_role("heading", name=heading).wait_for()
        page.wait_for_load_state("load")
        logo = page.locator("header.brand img")
        assert logo.evaluate("img => img.complete && img.naturalWidth > 0"), f"{name}: no logo"
        assert page.locator("header.brand").inner_text() == SERVICE_NAME
        page.screenshot(path=str(self.directory / f"{name}-{self.viewport}.png"), full_page=True)
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= self.width, f"{name} scrolls sideways: {scroll_width}"
        assert not self.csp_errors, self.csp_errors
        self.check_accessibility(name)

    def check_accessibility(self, name: str) -> None:
        """axe-core's WCAG A and AA rules (labels, contrast, headings...): no violation.

        Evaluated through the DevTools protocol, which the page's CSP does not govern."""
        if not AXE.is_file():
            return
        if not self.page.evaluate("() => typeof window.axe !== 'undefined'"):
            self.page.evaluate(AXE.read_text())
        violations = self.page.evaluate(
            """async () => (await axe.run(document, {runOnly: ["wcag2a", "wcag2aa"]}))
                .violations.map(v => `${v.id}: ${v.nodes.map(n => n.target).join(" ")}`)"""
        )
        assert violations == [], f"{name}: {violations}"


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_every_page_fits_and_is_photographed(
    server: ServerProcess, new_tab: NewTab, user: User, viewport: str
) -> None:
    tab = new_tab(viewport=VIEWPORTS[viewport])
    page, issuer = tab.page, server.deployment.issuer
    shooter = Shooter(page, viewport, tab.csp_errors)

    page.goto(issuer + "/")
    shooter.shoot("home", SERVICE_NAME)
    page.get_by_role("link", name="Sign in").click()
    shooter.shoot("sign-in", f"Sign in to {SERVICE_NAME}")
    sign_in(page, user)
    shooter.shoot("message", "Signed in")
    assert page.get_by_role("link", name=f"Back to {SERVICE_NAME}").is_visible()

    page.goto(f"{issuer}/authorize?{urlencode({'client_id': 'nobody'})}")
    shooter.shoot("error", "This request cannot be completed")

    query = {
        "response_type": "code",
        "client_id": server.deployment.client.client_id,
        "redirect_uri": tab.redirect_uri,
        "scope": "read write",
        "state": secrets.token_urlsafe(8),
        "code_challenge": s256_challenge(secrets.token_urlsafe(48)),
        "code_challenge_method": "S256",
    }
    page.goto(f"{issuer}/authorize?{urlencode(query)}")
    shooter.shoot("consent", "Authorize access")

    with httpx.Client(base_url=server.url, timeout=10) as http:
        grant = http.post(
            "/oauth2/device_authorization",
            data={"client_id": server.deployment.public_client_id, "scope": "read"},
        ).json()
    page.goto(f"{issuer}/device")
    shooter.shoot("device", "Connect a device")
    page.get_by_label("Code").press_sequentially(grant["user_code"])
    page.get_by_role("button", name="Continue").click()
    shooter.shoot("device-consent", "Authorize a device")
    code = page.locator(".user-code")
    assert code.inner_text() == grant["user_code"]
    # On one line: no taller than one line of its own text.
    assert code.evaluate("c => c.getClientRects().length") == 1
