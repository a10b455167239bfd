"""``OAuth2App``: the authorization server's endpoints as one raw ASGI application.

Mount it anywhere (``Mount("/oauth2", app=OAuth2App(server))``, Litestar's mount,
a plain ASGI dispatcher, or serve it alone); it routes on the path below the mount
(``route_path``). The URLs it publishes come from ``Settings.issuer``, never from
the request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..cors import CORSPolicy, is_preflight
from ..endpoints.metadata import openid_configuration, server_metadata
from ..endpoints.paths import (
    ACCOUNT_PATH,
    AUTHORIZATION_PATH,
    DEVICE_AUTHORIZATION_PATH,
    DEVICE_VERIFICATION_PATH,
    INTROSPECTION_PATH,
    JWKS_PATH,
    LOGIN_PATH,
    LOGOUT_PATH,
    METADATA_PATH,
    OPENID_CONFIGURATION_PATH,
    PUSHED_AUTHORIZATION_REQUEST_PATH,
    REGISTRATION_PATH,
    REVOCATION_EVENTS_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
    UPSTREAM_PATH,
    USERINFO_PATH,
)
from ..errors import InvalidRequestError
from ..requests import OAuthRequest
from ..server import AuthorizationServer
from ..types import DEVICE_CODE
from .account import AccountEndpoint
from .authorize import AuthorizeEndpoint
from .browser import Browser, CurrentUser
from .cors import EndpointCORS
from .device import DeviceVerificationEndpoint
from .heap import settle_heap
from .home import HomeEndpoint, wants_html
from .login import LoginEndpoint, LogoutEndpoint
from .maintenance import closed_endpoints
from .observer import Observer, Report
from .pages import Pages
from .registration import RegistrationEndpoint
from .requests import RequestHeaders, mount_path, read_form, route_path
from .responses import NO_STORE, Headers, as_oauth_error, send_error, send_json
from .revocations import RevocationEvents
from .upstream import UpstreamSignIn
from .userinfo import UserinfoEndpoint

logger = logging.getLogger("asgi_oauth")

_CACHEABLE: Headers = [(b"cache-control", b"public, max-age=3600")]
#: Relying parties refetch a JWK Set on an unknown ``kid``; a short life helps the rest.
_KEYS_CACHEABLE: Headers = [(b"cache-control", b"public, max-age=300")]

#: What a token response may issue, as the metrics count it.
_ISSUED = ("access_token", "refresh_token", "id_token")

#: An endpoint's core call: the request in, the JSON body out.
Handler = Callable[[OAuthRequest], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    methods: tuple[str, ...]
    handler: Handler
    cors: bool = False
    #: A POST endpoint that reads a form and answers with token data (RFC 6749 §5.1).
    form: bool = True
    #: The caching headers of a GET endpoint's answer.
    cache: Headers = field(default_factory=lambda: _CACHEABLE)
    #: The status of a successful answer.
    status: int = 200
    #: Closed while the server is unavailable (``asgi_oauth.availability``); the metadata
    #: and the keys stay readable, for resource servers that go on checking tokens.
    gated: bool = True


class OAuth2App:
    """Every endpoint of the authorization server, and the pages people see.

    People sign in on the built-in login page against the store's users, unless
    the host application passes ``current_user`` (reading its own session) and
    ``login_url`` (where its own sign-in is; it gets a ``next`` URL to return
    to). ``pages`` changes how the pages look.
    """

    def __init__(
        self,
        server: AuthorizationServer,
        *,
        pages: Pages | None = None,
        current_user: CurrentUser | None = None,
        login_url: str | None = None,
    ) -> None:
        self.server = server
        settings = server.settings
        self._max_body = settings.max_body_size
        self._error_uri = settings.error_uri
        self._availability = server.availability
        self._cors = EndpointCORS(
            CORSPolicy(settings.cors_origins), server.storage, error_uri=settings.error_uri
        )
        # Introspection is for resource servers, whose secrets no browser should hold: no CORS.
        self._endpoints: dict[str, Endpoint] = {
            TOKEN_PATH: Endpoint(("POST",), self._token, cors=True),
            INTROSPECTION_PATH: Endpoint(("POST",), self._introspect),
            REVOCATION_PATH: Endpoint(("POST",), self._revoke, cors=True),
            METADATA_PATH: Endpoint(("GET",), self._metadata, cors=True, form=False, gated=False),
        }
        if settings.response_types:
            # RFC 9126 §2.2: a pushed request is created, so 201.
            self._endpoints[PUSHED_AUTHORIZATION_REQUEST_PATH] = Endpoint(
                ("POST",), self._pushed_authorization_request, cors=True, status=201
            )
        if settings.openid_enabled:
            self._endpoints[OPENID_CONFIGURATION_PATH] = Endpoint(
                ("GET",), self._openid_configuration, cors=True, form=False, gated=False
            )
            self._endpoints[JWKS_PATH] = Endpoint(
                ("GET",), self._jwks, cors=True, form=False, cache=_KEYS_CACHEABLE, gated=False
            )
        browser = Browser(server, pages or Pages(), current_user=current_user, login_url=login_url)
        self._pages: dict[str, ASGIApp] = {}
        if settings.response_types:
            self._pages[AUTHORIZATION_PATH] = AuthorizeEndpoint(browser)
        if DEVICE_CODE in settings.enabled_grants:
            self._endpoints[DEVICE_AUTHORIZATION_PATH] = Endpoint(
                ("POST",), self._device_authorization, cors=True
            )
            self._pages[DEVICE_VERIFICATION_PATH] = DeviceVerificationEndpoint(browser)
        #: ``/upstream/{id}`` and its callback, when people may sign in through providers.
        self._upstream: ASGIApp | None = None
        if current_user is None and self._pages:
            self._pages[LOGIN_PATH] = LoginEndpoint(browser)
            self._pages[LOGOUT_PATH] = LogoutEndpoint(browser)
            self._pages[ACCOUNT_PATH] = AccountEndpoint(browser)
            if settings.upstream_providers:
                self._upstream = UpstreamSignIn(browser)
        # Resource servers in other processes follow revocations here: no CORS either.
        self._pages[REVOCATION_EVENTS_PATH] = RevocationEvents(server)
        if settings.openid_enabled:
            self._pages[USERINFO_PATH] = self._cors.wrap(UserinfoEndpoint(server), ("GET", "POST"))
        #: ``/register`` and, below it, ``/register/{client_id}`` (RFC 7592).
        self._registration: ASGIApp | None = None
        if settings.client_registration != "off":
            self._registration = self._cors.wrap(
                RegistrationEndpoint(server), ("GET", "POST", "PUT", "DELETE")
            )
            self._pages[REGISTRATION_PATH] = self._registration
        routes = {*self._pages, *((UPSTREAM_PATH,) if self._upstream is not None else ())}
        #: What the pages and the APIs outside ``dispatch`` answer while unavailable.
        self._closed = closed_endpoints(routes, browser, self._cors)
        self._mount_checked = False
        issuer = settings.issuer
        built_in_login = issuer + LOGIN_PATH if LOGIN_PATH in self._pages else ""
        self._home = HomeEndpoint(
            browser,
            login_url=login_url or built_in_login,
            account_url=issuer + ACCOUNT_PATH if ACCOUNT_PATH in self._pages else "",
            metadata_url=issuer + METADATA_PATH,
        )
        #: Serve this at :attr:`metadata_path` of the host application (RFC 8414 §3.1).
        self.metadata_app = _MetadataApp(self)
        self._observer = Observer(server.instruments) if server.instruments.active else None

    @property
    def metadata_route(self) -> Route:
        """``Route(metadata_path, metadata_app)``: add it to the host application's routes."""
        return Route(self.metadata_path, self.metadata_app)

    @property
    def metadata_path(self) -> str:
        """Where RFC 8414 §3.1 puts the metadata of an issuer with a path, at the host's root."""
        return METADATA_PATH + self.server.settings.issuer_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = self._route_path(scope)
            if self._observer is not None:
                await self._observer.observe(self, path, scope, receive, send)
            else:
                await self.serve(scope, receive, send, path)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    async def serve(
        self, scope: Scope, receive: Receive, send: Send, path: str, report: Report | None = None
    ) -> None:
        """One HTTP request, to a page or to ``dispatch``; while the server is unavailable
        (``asgi_oauth.availability``, its store's switch read at most once a second), the
        pages' closed answers instead."""
        page = self._pages.get(path) or self._subtree(path) or self._home_for(path, scope)
        availability = self._availability
        if availability.refresh_due():
            await availability.refresh()
        if page is not None and not availability.available:
            page = self._closed.get(self.route_of(path), page)
        if page is not None:
            await page(scope, receive, send)
        else:
            await self.dispatch(scope, receive, send, path, report)

    def route_of(self, path: str) -> str:
        """The endpoint ``path`` is for, as a bounded word: the path of an endpoint or
        page, the prefix of a subtree (``/register/{id}`` is ``/register``), else ``other``."""
        if path in self._endpoints or path in self._pages:
            return path
        return _subtree_prefix(path) or "other"

    def _home_for(self, path: str, scope: Scope) -> ASGIApp | None:
        """The issuer's own URL: a page for a browser; for anything else, the JSON 404."""
        return self._home if path == "/" and wants_html(scope) else None

    def _subtree(self, path: str) -> ASGIApp | None:
        prefix = _subtree_prefix(path)
        if prefix == REGISTRATION_PATH:
            return self._registration
        return self._upstream if prefix == UPSTREAM_PATH else None

    async def dispatch(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        path: str,
        report: Report | None = None,
    ) -> None:
        """One endpoint's request; ``report``, when given, learns its grant type and error."""
        endpoint = self._endpoints.get(path)
        cors: Headers = []
        try:
            headers = RequestHeaders.from_scope(scope)
            if endpoint is None:
                raise InvalidRequestError("no such endpoint", status_code=404)
            method = scope["method"]
            # A form endpoint's answer is no-store, so only a browser's request (with an
            # Origin) needs the headers; a cacheable GET's carries them for every request.
            if endpoint.cors and (headers.origin is not None or not endpoint.form):
                cors = await self._cors.headers(headers.origin)
                if is_preflight(method, scope["headers"]):
                    await self._cors.preflight(send, cors, endpoint.methods)
                    return
            if method not in endpoint.methods:
                raise InvalidRequestError(
                    f"method {method[:16]} not allowed",
                    status_code=405,
                    headers={"Allow": ", ".join(endpoint.methods)},
                )
            if endpoint.gated and not self._availability.available:
                raise self._availability.error()
            if endpoint.form:
                request, extra = await read_form(scope, receive, headers, self._max_body), NO_STORE
                if report is not None:
                    report.grant_type = request.form.get("grant_type")
            else:
                request, extra = OAuthRequest(), endpoint.cache
            body = await endpoint.handler(request)
        except Exception as exc:
            if report is not None:
                report.error = as_oauth_error(exc).error
            await send_error(send, exc, cors, error_uri=self._error_uri)
            return
        if report is not None and isinstance(body, dict):
            report.issued = tuple(kind for kind in _ISSUED if kind in body)
        await send_json(send, endpoint.status, body, [*extra, *cors])

    async def _token(self, request: OAuthRequest) -> object:
        return (await self.server.token_endpoint.handle(request)).to_dict()

    async def _introspect(self, request: OAuthRequest) -> object:
        return (await self.server.introspection.introspect(request)).to_dict()

    async def _revoke(self, request: OAuthRequest) -> object:
        await self.server.revocation.revoke(request)
        return {}

    async def _pushed_authorization_request(self, request: OAuthRequest) -> object:
        return await self.server.pushed.push(request)

    async def _device_authorization(self, request: OAuthRequest) -> object:
        return await self.server.device.start(request)

    async def _metadata(self, request: OAuthRequest) -> object:
        return server_metadata(self.server.settings)

    async def _openid_configuration(self, request: OAuthRequest) -> object:
        # /logout is served only with the built-in sign-in (no ``current_user``).
        return openid_configuration(self.server.settings, end_session=LOGOUT_PATH in self._pages)

    async def _jwks(self, request: OAuthRequest) -> object:
        return await self.server.openid.jwks()

    def check_mount(self, path: str) -> bool:
        """Whether ``path``, where the host serves this app (as clients see it: a proxy's
        prefix included), is the issuer's path; a warning is logged when it is not.

        No framework tells a mounted app where it is before a request comes (Starlette
        and FastAPI send no lifespan to a mount), so the first request checks it. A host
        that knows its mount path calls this at startup instead, and the first request
        checks nothing more.
        """
        self._mount_checked = True
        expected = self.server.settings.issuer_path
        if path.rstrip("/") == expected:
            return True
        logger.warning(
            "mounted at %r but the issuer %r says %r: published URLs follow the issuer",
            path or "/",
            self.server.settings.issuer,
            expected or "/",
        )
        return False

    def _route_path(self, scope: Scope) -> str:
        if not self._mount_checked:
            self.check_mount(mount_path(scope))
        return route_path(scope)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """Serve alone (``uvicorn module:app``): once started, leave the start-up heap out
        of garbage collection (``heap``); close the store at shutdown."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                settle_heap()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.server.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


#: Endpoints with paths below them: each client's configuration (RFC 7592), and the
#: sign-in through each upstream provider.
_SUBTREES = (REGISTRATION_PATH, UPSTREAM_PATH)


def _subtree_prefix(path: str) -> str | None:
    return next((prefix for prefix in _SUBTREES if path.startswith(prefix + "/")), None)


class _MetadataApp:
    """The metadata endpoint alone, for the host's ``/.well-known`` (RFC 8414 §3.1)."""

    def __init__(self, app: OAuth2App) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._app.dispatch(scope, receive, send, METADATA_PATH)
