"""Forms posted to the pages from another origin, in Chromium: refused with a 403 by
the browser's own ``Sec-Fetch-Site``, while the pages' own forms (which Chromium
posts with ``Origin: null`` under their ``Referrer-Policy: no-referrer``) still work."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import pytest

from asgi_oauth.pkce import s256_challenge
from tests.servers.process import ServerProcess

from .conftest import LoopbackSite, PageHandler, Tab, User, path_of, sign_in

if TYPE_CHECKING:
    from playwright.sync_api import Request

pytestmark = pytest.mark.slow


class ForeignSite(LoopbackSite):
    """A site of its own on a free loopback port whose one page posts a sign-in form
    to ``action`` as soon as it loads: login CSRF, with a token of the attacker's."""

    def __init__(self, action: str) -> None:
        fields = {"csrf_token": secrets.token_urlsafe(32), "username": "mallory", "password": "x"}
        inputs = "".join(
            f'<input type="hidden" name="{name}" value="{escape(value)}">'
            for name, value in fields.items()
        )
        body = (
            f'<!doctype html><title>Elsewhere</title><form method="post" action="{escape(action)}">'
            f"{inputs}</form><script>document.forms[0].submit()</script>"
        ).encode()

        class Handler(PageHandler):
            def do_GET(self) -> None:
                self.send_page(body)

        super().__init__(Handler)


@pytest.fixture
def foreign_site(server: ServerProcess) -> Iterator[ForeignSite]:
    site = ForeignSite(server.deployment.issuer + "/login")
    yield site
    site.close()


def authorization_url(server: ServerProcess, tab: Tab) -> str:
    query = {
        "response_type": "code",
        "client_id": server.deployment.public_client_id,
        "redirect_uri": tab.redirect_uri,
        "scope": "read",
        "state": secrets.token_urlsafe(16),
        "code_challenge": s256_challenge(secrets.token_urlsafe(48)),
        "code_challenge_method": "S256",
    }
    return f"{server.deployment.issuer}/authorize?{urlencode(query)}"


# localhost and 127.0.0.1 are different sites; another port of 127.0.0.1 is the same
# site (cookies go along) but another origin.
@pytest.mark.parametrize(
    ("host", "site"),
    [("localhost", "cross-site"), ("127.0.0.1", "same-site")],
    ids=["cross-site", "same-site"],
)
def test_a_sign_in_form_posted_from_another_origin_is_refused(
    server: ServerProcess, tab: Tab, foreign_site: ForeignSite, host: str, site: str
) -> None:
    page, login = tab.page, server.deployment.issuer + "/login"
    # A session of the person's own first, so the forged post carries its cookie too.
    page.goto(login)

    with page.expect_response(lambda r: r.url == login and r.request.method == "POST") as posted:
        page.goto(f"http://{host}:{foreign_site.port}/")
    response = posted.value

    assert response.status == 403
    page.wait_for_load_state()
    assert page.title() == "Please start again"
    assert "did not come from this site" in page.locator("main").inner_text()
    assert response.request.all_headers()["sec-fetch-site"] == site


def test_the_pages_own_forms_post_with_origin_null_and_go_through(
    server: ServerProcess, tab: Tab, user: User, foreign_site: ForeignSite
) -> None:
    page = tab.page
    page.goto(f"http://localhost:{foreign_site.port}/")
    page.get_by_role("heading", name="Please start again").wait_for()
    posts: list[Request] = []
    page.on("request", lambda r: posts.append(r) if r.method == "POST" else None)

    page.goto(authorization_url(server, tab))
    sign_in(page, user)
    page.get_by_role("heading", name="Authorize access").wait_for()
    assert path_of(page.url) == "/oauth2/authorize"
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(tab.redirect_uri + "?**")

    assert "code" in tab.arrival().params
    assert [path_of(r.url) for r in posts] == ["/oauth2/login", "/oauth2/authorize"]
    for request in posts:
        headers = request.all_headers()
        assert headers["sec-fetch-site"] == "same-origin"
        assert headers["origin"] == "null"
    assert tab.csp_errors == []
