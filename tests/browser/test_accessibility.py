"""Every page people see, in English and in French, checked by axe-core in Chromium:
no violation of its WCAG 2 A and AA rules (labels, contrast, names, ``lang``...).

axe is evaluated through the DevTools protocol (``page.evaluate``), which the pages'
Content-Security-Policy does not govern: a ``<script>`` tag would need the page's
nonce. It comes from the npm packages ``scripts/node-setup`` installs; without it the
test skips, and under ``ASGI_OAUTH_REQUIRE_ALL=1`` that skip fails.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import httpx
import pytest

from asgi_oauth.pkce import s256_challenge
from tests.servers.process import REPO_ROOT, ServerProcess

from .conftest import NewTab, User

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

AXE = REPO_ROOT / "tests" / "node" / "node_modules" / "axe-core" / "axe.min.js"
#: What the browser says it reads: Playwright's locale and the header that comes with it.
LANGUAGES = {"en": "en-US,en;q=0.9", "fr": "fr-FR,fr;q=0.9,en;q=0.5"}


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE.is_file():
        pytest.skip("axe-core is not installed: run scripts/node-setup")
    return AXE.read_text()


class Checker:
    """Runs axe on each page it is shown; collects what it finds for one assertion."""

    def __init__(self, page: Page, lang: str, axe: str) -> None:
        self.page, self.lang, self.axe = page, lang, axe
        self.checked: list[str] = []
        self.violations: dict[str, list[str]] = {}

    def check(self, name: str) -> None:
        page = self.page
        page.wait_for_load_state("load")
        # The page speaks the language asked for, and says so (WCAG 3.1.1).
        assert page.locator("html").get_attribute("lang") == self.lang, name
        if not page.evaluate("() => typeof window.axe !== 'undefined'"):
            page.evaluate(self.axe)
        found = page.evaluate(
            """async () => (await axe.run(document, {runOnly: ["wcag2a", "wcag2aa"]}))
                .violations.map(v => `${v.id}: ${v.nodes.map(n => n.target).join(" ")}`)"""
        )
        self.checked.append(name)
        if found:
            self.violations[name] = found


def _sign_in(page: Page, user: User) -> None:
    """The sign-in form, by its fields' ids: their labels are in the page's language."""
    page.locator("#username").press_sequentially(user.username)
    page.locator("#password").press_sequentially(user.password)
    _submit(page)


def _submit(page: Page) -> None:
    """Press the form's (only) submit button and wait for the page it leads to."""
    with page.expect_navigation():
        page.locator("form button[type=submit]").click()


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_every_page_passes_axe(
    server: ServerProcess, new_tab: NewTab, user: User, axe_source: str, lang: str
) -> None:
    tab = new_tab(
        locale=LANGUAGES[lang].split(",")[0],
        extra_http_headers={"Accept-Language": LANGUAGES[lang]},
    )
    page, issuer = tab.page, server.deployment.issuer
    checker = Checker(page, lang, axe_source)

    page.goto(issuer + "/")
    checker.check("home")
    page.goto(issuer + "/login")
    checker.check("sign-in")
    _sign_in(page, user)
    checker.check("message")

    page.goto(f"{issuer}/authorize?{urlencode({'client_id': 'nobody'})}")
    checker.check("error")

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
    checker.check("consent")

    with httpx.Client(base_url=server.url, timeout=10) as http:
        grant = http.post(
            "/oauth2/device_authorization",
            data={"client_id": server.deployment.public_client_id, "scope": "read"},
        ).json()
    page.goto(f"{issuer}/device")
    checker.check("device")
    page.locator("#user_code").press_sequentially(grant["user_code"])
    _submit(page)
    checker.check("device-consent")

    page.goto(f"{issuer}/account")
    checker.check("connected-apps")
    page.goto(f"{issuer}/logout")
    checker.check("sign-out")
    _submit(page)
    checker.check("signed-out")

    assert checker.violations == {}, checker.violations
    assert checker.checked == [
        "home",
        "sign-in",
        "message",
        "error",
        "consent",
        "device",
        "device-consent",
        "connected-apps",
        "sign-out",
        "signed-out",
    ]


def test_a_right_to_left_page_is_mirrored_whole(new_tab: NewTab) -> None:
    """``dir="rtl"`` over logical properties: the lists' indent moves to the right, the
    text starts on the right, and nothing scrolls sideways at a phone's width."""
    from asgi_oauth.app.pages import ConsentPage, Pages

    page = new_tab(viewport={"width": 375, "height": 667}).page
    consent = ConsentPage(
        action="/authorize",
        csrf_token="t",
        client_name="تطبيق",
        user_name="alice",
        scopes=(("read", "قراءة ملفاتك"), ("write", "write")),
        client_kind="dynamic",
        redirect_host="app.example",
        lang="ar",
    )
    page.set_content(Pages().render(consent))
    assert page.locator("html").get_attribute("dir") == "rtl"
    padding = page.locator("ul").first.evaluate(
        "ul => [getComputedStyle(ul).paddingRight, getComputedStyle(ul).paddingLeft]"
    )
    assert padding[0] != "0px" and padding[1] == "0px", padding
    # The heading's text sits against the card's right edge, its left side free.
    left, right = page.evaluate(
        """() => {
            const h1 = document.querySelector("h1"), range = document.createRange();
            range.selectNodeContents(h1);
            const text = range.getBoundingClientRect(), box = h1.getBoundingClientRect();
            return [text.left - box.left, box.right - text.right];
        }"""
    )
    assert right < 2 < left, (left, right)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
