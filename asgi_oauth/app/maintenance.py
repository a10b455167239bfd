"""What the endpoints ``OAuth2App.dispatch`` does not serve answer while the server is
switched unavailable (``asgi_oauth.availability``): 503 ``temporarily_unavailable``
(RFC 6749 §5.2) with ``Retry-After``, as JSON for the APIs (CORS as usual) and as the
error page for the pages people use. The authorization endpoint answers for itself
(an error redirect to a known client, §4.1.2.1); the home page and the revocation
events stay served, as the metadata and the keys do.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from ..endpoints.paths import (
    ACCOUNT_PATH,
    DEVICE_VERIFICATION_PATH,
    LOGIN_PATH,
    LOGOUT_PATH,
    REGISTRATION_PATH,
    UPSTREAM_PATH,
    USERINFO_PATH,
)
from .browser import Browser
from .cors import EndpointCORS
from .i18n import language
from .responses import send_error

#: The pages people use: the error page while closed.
_PAGES = (LOGIN_PATH, LOGOUT_PATH, ACCOUNT_PATH, DEVICE_VERIFICATION_PATH, UPSTREAM_PATH)
#: The APIs with an ASGI app of their own, and the methods their CORS preflights allow.
_APIS = {USERINFO_PATH: ("GET", "POST"), REGISTRATION_PATH: ("GET", "POST", "PUT", "DELETE")}


def closed_endpoints(
    routes: Iterable[str], browser: Browser, cors: EndpointCORS
) -> dict[str, ASGIApp]:
    """The closed answer of each of ``routes`` (as ``OAuth2App.route_of`` names them)."""
    availability = browser.server.availability
    error_uri = browser.server.settings.error_uri

    async def api(scope: Scope, receive: Receive, send: Send) -> None:
        await send_error(send, availability.error(), error_uri=error_uri)

    async def page(scope: Scope, receive: Receive, send: Send) -> None:
        response = browser.error_page(availability.error(), lang=language(scope, {}))
        await response(scope, receive, send)

    closed: dict[str, ASGIApp] = {}
    for route in routes:
        if route in _PAGES:
            closed[route] = page
        elif route in _APIS:
            closed[route] = cors.wrap(api, _APIS[route])
    return closed
