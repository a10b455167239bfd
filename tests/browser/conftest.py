"""Fixtures for the browser tests: Debian's Chromium driven by Playwright's sync API
against ``tests.servers.app`` in a uvicorn process, one server per module.

Playwright's sync API marks this thread's event loop as running for as long as it
is started, so ``asyncio.run`` (``deploy``, anyio's test runner) fails here
meanwhile. Chromium is therefore package-scoped, stopped after the last browser
test, and code that runs an event loop while it is up runs in a worker thread.

Each test gets a fresh browser context (its own cookies), its own loopback
listener at the client's redirect URI, and a fresh user, so a consent one test
remembers never skips another test's consent page.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.servers.process import (
    PASSWORD,
    ServerProcess,
    deploy,
    run_on_store,
    serve,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

T = TypeVar("T")

REDIRECT_PATH = "/cb"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking"]
#: A phone's viewport (iPhone SE), for the pages' small-screen layout.
PHONE = {"width": 375, "height": 667}
#: Reported to the console, where the tests look for CSP errors, in case Chromium's own
#: console message about a blocked style or script ever changes its wording.
_REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
    console.error(`Content Security Policy violation: ${event.violatedDirective}`);
});
"""


def off_this_thread(fn: Callable[[], T]) -> T:
    """``fn()`` in a worker thread, where ``asyncio.run`` works while Playwright runs here."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result()


class User(NamedTuple):
    username: str
    password: str


@dataclass(frozen=True)
class Arrival:
    """A request that reached the redirect URI: its query (GET) or form (POST)."""

    method: str
    url: str
    params: dict[str, str]


class PageHandler(BaseHTTPRequestHandler):
    """A loopback site's request handler: quiet, and answers with small HTML pages."""

    def send_page(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class LoopbackSite:
    """A site of its own on a free port of 127.0.0.1, served from a thread."""

    def __init__(self, handler: type[PageHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port: int = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class ClientApp(LoopbackSite):
    """The client's redirect URI, ``http://127.0.0.1:<free port>/cb``: a native app's
    loopback listener (RFC 8252 §7.3; the registered ``http://127.0.0.1/cb`` matches
    any port). It answers with a tiny page and records what arrived.

    A real listener rather than ``context.route``: Playwright routes no request
    that a redirect leads to (microsoft/playwright#2617), and the authorization
    response is such a request.
    """

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        arrivals = self.arrivals

        class Handler(PageHandler):
            def do_GET(self) -> None:
                self._arrive(urlsplit(self.path).query)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._arrive(self.rfile.read(length).decode())

            def _arrive(self, encoded: str) -> None:
                if urlsplit(self.path).path != REDIRECT_PATH:
                    self.send_error(404)
                    return
                params = dict(parse_qsl(encoded, keep_blank_values=True))
                arrivals.append(Arrival(self.command, site.base + self.path, params))
                self.send_page(b"<!doctype html><title>Client</title><p>Back in the application.")

        super().__init__(Handler)
        site = self
        self.redirect_uri = self.base + REDIRECT_PATH


@dataclass
class Tab:
    """One page in a fresh browser context, its own client to return to, and the
    Content-Security-Policy errors the browser reported."""

    context: BrowserContext
    page: Page
    client_app: ClientApp
    csp_errors: list[str] = field(default_factory=list)

    @property
    def redirect_uri(self) -> str:
        return self.client_app.redirect_uri

    @property
    def arrivals(self) -> list[Arrival]:
        return self.client_app.arrivals

    def arrival(self) -> Arrival:
        """The one request the redirect URI received."""
        assert len(self.arrivals) == 1, self.arrivals
        return self.arrivals[0]


NewTab = Callable[..., Tab]


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Chromium, or a skip (a failure under ASGI_OAUTH_REQUIRE_ALL=1) when it is missing."""
    executable = os.environ.get("ASGI_OAUTH_CHROMIUM", DEFAULT_CHROMIUM)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[test]'")
    if not Path(executable).is_file():
        pytest.skip(f"Chromium not found at {executable}: apt-get install chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def new_tab(browser: Browser) -> Iterator[NewTab]:
    """Open a page in a fresh context (``new_context`` options allowed); closed at teardown."""
    with ExitStack() as stack:

        def open_tab(**options: Any) -> Tab:
            context = browser.new_context(**options)
            stack.callback(context.close)
            context.set_default_timeout(10_000)
            client_app = ClientApp()
            stack.callback(client_app.close)
            tab = Tab(context, context.new_page(), client_app)

            def console(message: ConsoleMessage) -> None:
                if "Content Security Policy" in message.text:
                    where = message.page.url if message.page else "?"
                    tab.csp_errors.append(f"{where}: {message.text}")

            context.add_init_script(_REPORT_CSP_VIOLATIONS)
            context.on("console", console)
            return tab

        yield open_tab


@pytest.fixture
def tab(new_tab: NewTab) -> Tab:
    return new_tab()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("browser")
    with serve("uvicorn", off_this_thread(lambda: deploy(directory))) as running:
        yield running


@pytest.fixture
def user(server: ServerProcess) -> User:
    """A new person for each test: no consent remembered, no failed sign-ins counted."""
    deployment = server.deployment
    username = f"user-{secrets.token_hex(4)}"
    off_this_thread(
        lambda: run_on_store(
            deployment.db, deployment.issuer, lambda s: s.create_user(username, PASSWORD)
        )
    )
    return User(username, PASSWORD)


def sign_in(page: Page, user: User) -> None:
    """Type the credentials into the sign-in page and submit it."""
    page.get_by_label("Username").press_sequentially(user.username)
    page.get_by_label("Password").press_sequentially(user.password)
    page.get_by_role("button", name="Sign in").click()


def path_of(url: str) -> str:
    return urlsplit(url).path


def assert_fits_a_phone(page: Page, button: str) -> None:
    """``button`` is on screen and nothing scrolls sideways at the phone's width."""
    width = PHONE["width"]
    locator = page.get_by_role("button", name=button)
    assert locator.is_visible()
    box = locator.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= width
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{page.url} scrolls sideways: {scroll_width} > {width}"
