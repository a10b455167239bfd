"""The issuer's own URL, opened in a browser: a page naming the service, with where to
sign in and, for developers, where the server's metadata is (RFC 8414 §3). Anything
but a browser's GET keeps the JSON 404 every unknown path gets."""

from __future__ import annotations

from dataclasses import replace

from starlette.responses import Response
from starlette.types import Scope

from .browser import Browser, BrowserRequest, PageEndpoint
from .pages import HomePage


class HomeEndpoint(PageEndpoint):
    """``/`` below the issuer, for people (``wants_html`` says who)."""

    def __init__(
        self, browser: Browser, *, login_url: str, account_url: str, metadata_url: str
    ) -> None:
        super().__init__(browser)
        self.home = HomePage(
            login_url=login_url, account_url=account_url, metadata_url=metadata_url
        )

    async def handle(self, request: BrowserRequest) -> Response:
        return self.browser.page(replace(self.home, lang=request.lang))


def wants_html(scope: Scope) -> bool:
    """Whether a GET asks for a page: its Accept names ``text/html`` (RFC 9110 §12.5.1),
    as a browser's navigation does, and not with ``q=0`` (not acceptable)."""
    if scope["method"] != "GET":
        return False
    for name, value in scope["headers"]:
        if name.lower() != b"accept":
            continue
        for item in value.decode("latin-1").split(","):
            media_type, *params = (part.strip().lower() for part in item.split(";"))
            if media_type == "text/html" and _acceptable(params):
                return True
    return False


def _acceptable(params: list[str]) -> bool:
    """A media range's weight is above 0 (RFC 9110 §12.4.2): no ``q``, or a positive one."""
    for param in params:
        key, _, value = param.partition("=")
        if key.strip() == "q":
            try:
                return float(value) > 0
            except ValueError:
                return True
    return True
