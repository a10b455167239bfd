"""What the pages people see share: reading a browser's request, knowing who is
signed in, and answering with a page or a redirect under strict security headers.

Every response here is ``no-store`` with ``Referrer-Policy: no-referrer`` and a
Content-Security-Policy that allows nothing but this response's own nonce (and
images from the configured logo's origin) and no framing (clickjacking, RFC 6749
§10.13). Every URL comes from the issuer.
A form posted from another origin's page is refused before its CSRF token is
even looked at: ``Sec-Fetch-Site`` says so when the browser sends it, else ``Origin``.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import Receive, Scope, Send

from ..endpoints.paths import (
    ACCOUNT_PATH,
    AUTHORIZATION_PATH,
    DEVICE_VERIFICATION_PATH,
    LOGIN_PATH,
)
from ..errors import N_, InvalidRequestError, error_uri_for
from ..models import ResourceOwner
from ..requests import OAuthRequest
from ..server import AuthorizationServer
from .i18n import error_message, error_title, language
from .pages import Brand, MessagePage, Page, Pages
from .requests import RequestHeaders, parse_params, read_body
from .responses import as_oauth_error
from .sessions import CSRF_FIELD, Session, SessionCookie

#: The host application's own sign-in: its request in, the signed-in person (or None) out.
CurrentUser = Callable[[Request], Awaitable[ResourceOwner | None]]

_PASSWORD_AMR = ("pwd",)


@dataclass(frozen=True, slots=True)
class BrowserRequest:
    """One page request: its parameters (repeats noted), session and origin."""

    scope: Scope
    method: str
    params: dict[str, str]
    repeated: frozenset[str]
    session: Session | None
    #: The language of the pages answering it (``Browser.language``).
    lang: str = "en"

    @property
    def oauth_request(self) -> OAuthRequest:
        client = self.scope.get("client")
        return OAuthRequest(form=self.params, client_address=client[0] if client else None)

    def csrf_ok(self) -> bool:
        return self.session is not None and self.session.check_csrf(self.params.get(CSRF_FIELD))


class Browser:
    """Turns page requests into ``BrowserRequest`` and pages into responses."""

    def __init__(
        self,
        server: AuthorizationServer,
        pages: Pages,
        *,
        current_user: CurrentUser | None = None,
        login_url: str | None = None,
    ) -> None:
        if (current_user is None) != (login_url is None):
            raise ValueError("current_user and login_url go together")
        self.server = server
        settings = server.settings
        self.pages = pages.branded(
            Brand(settings.service_name, settings.logo_uri, settings.service_uri)
        )
        self.cookie = SessionCookie(server.settings)
        self.current_user = current_user
        self.login_url = login_url
        self.issuer = server.settings.issuer
        self.origin = _serialized_origin(self.issuer)

    async def read(
        self, scope: Scope, receive: Receive, *, allow_repeats: bool = False
    ) -> BrowserRequest:
        """GET parameters from the query, POST ones from an urlencoded body.

        A repeated parameter is refused unless the caller judges repeats itself.
        """
        headers = RequestHeaders.from_scope(scope)
        method = scope["method"]
        if method == "GET":
            params, repeated = parse_params(scope.get("query_string", b""))
        elif method == "POST":
            media_type = (headers.content_type or "").partition(";")[0].strip().lower()
            if media_type != "application/x-www-form-urlencoded":
                raise InvalidRequestError(N_("forms must be urlencoded"), status_code=415)
            body = await read_body(receive, headers, self.server.settings.max_body_size)
            params, repeated = parse_params(body)
        else:
            raise InvalidRequestError(
                N_("method {method} not allowed"),
                params={"method": method[:16]},
                status_code=405,
                headers={"Allow": "GET, POST"},
            )
        if repeated and not allow_repeats:
            raise InvalidRequestError(
                N_("repeated parameter: {name}"), params={"name": sorted(repeated)[0][:64]}
            )
        session = self.cookie.load(cookie_header(scope))
        return BrowserRequest(scope, method, params, repeated, session, language(scope, params))

    def refuse_cross_site(self, scope: Scope) -> None:
        """A second layer under the CSRF token: a form a browser says another origin's
        page posted changes nothing, whatever token it carries."""
        if _sent_from_elsewhere(scope, self.origin):
            raise InvalidRequestError(
                N_("this form did not come from this site; go back and start again"),
                status_code=403,
            )

    async def owner(self, request: BrowserRequest) -> ResourceOwner | None:
        """Who is signed in: the host's hook, else the built-in session's user."""
        if self.current_user is not None:
            owner = await self.current_user(Request(request.scope))
            reauth_at = request.session.reauth_at if request.session is not None else None
            if owner is not None and owner.auth_time is None and reauth_at is not None:
                # Sent to sign in anew then (``reauth_redirect``): the sign-in is no older.
                owner = replace(owner, auth_time=reauth_at)
            return owner
        session = request.session
        if session is None or session.user_id is None or session.session_id is None:
            return None
        user = await self.server.accounts.session_user(session.session_id)
        if user is None or user.user_id != session.user_id or not session.belongs_to(user):
            return None
        return ResourceOwner(
            subject=user.user_id,
            name=user.username,
            auth_time=session.auth_time,
            # RFC 8176 §2: the built-in page asks for a password; an upstream says itself.
            amr=_PASSWORD_AMR if session.amr is None else session.amr,
            scopes=session.scopes,
        )

    def ensure_session(self, request: BrowserRequest) -> tuple[Session, list[str]]:
        """The request's session, or a new anonymous one and the cookie that carries it."""
        if request.session is not None:
            return request.session, []
        session = Session.anonymous()
        return session, [self.cookie.set_cookie(session)]

    def page(
        self,
        page: Page,
        *,
        status: int = 200,
        cookies: list[str] | None = None,
        headers: dict[str, str] | None = None,
        form_action: str | None = None,
    ) -> Response:
        nonce = secrets.token_urlsafe(16)
        html = self.pages.render(replace(page, nonce=nonce))
        response = HTMLResponse(html, status_code=status, headers=headers)
        logo = self.server.settings.logo_uri
        _secure(response, _csp(nonce, form_action, logo), cookies)
        return response

    def redirect(self, location: str, cookies: list[str] | None = None) -> Response:
        # 303: after a POST the browser must follow with a GET (RFC 9700 §4.12).
        response = Response(status_code=303, headers={"Location": location})
        _secure(response, "default-src 'none'; frame-ancestors 'none'", cookies)
        return response

    def error_page(
        self, exc: Exception, *, back: tuple[str, str] | None = None, lang: str = "en"
    ) -> Response:
        """The error as a page, with a way back: ``back`` (a registered client's own
        site), else ``Settings.service_uri`` when set; never an unchecked redirect URI."""
        error = as_oauth_error(exc)
        # In the person's language: the description's template looked up in the catalogue.
        title, message = error_title(error, lang), error_message(error, lang)
        base = self.server.settings.error_uri
        explained = "" if base is None else error_uri_for(base, error.error)
        page = MessagePage(title=title, message=message, back=back, lang=lang, error_uri=explained)
        return self.page(page, status=error.status, headers=error.headers)

    def login_redirect(
        self, next_path: str, cookies: list[str] | None = None, *, fresh: bool = False
    ) -> Response:
        """Send the person to sign in, then back to ``next_path`` below the issuer;
        ``fresh`` asks an upstream provider to sign them in anew too."""
        if self.login_url is not None:
            separator = "&" if "?" in self.login_url else "?"
            query = urlencode({"next": self.issuer + next_path})
            return self.redirect(f"{self.login_url}{separator}{query}", cookies)
        params = {"next": next_path, **({"fresh": "1"} if fresh else {})}
        return self.redirect(f"{self.issuer}{LOGIN_PATH}?{urlencode(params)}", cookies)

    def reauth_redirect(self, request: BrowserRequest, next_path: str) -> Response:
        """``login_redirect``, the time of it kept in the session: the host's login page
        signs the person in anew after it, so ``owner`` may stand on it for a hook
        that cannot say when they signed in."""
        session, _ = self.ensure_session(request)
        session = replace(session, reauth_at=int(self.server.now()))
        return self.login_redirect(next_path, [self.cookie.set_cookie(session)])

    def after_login(self, next_path: str | None) -> str | None:
        """Where to go after signing in: only back to our own pages (no open redirector)."""
        if not next_path or any(c in next_path for c in "\\\r\n\t") or not next_path.isprintable():
            return None
        path = next_path.partition("?")[0]
        if path not in (AUTHORIZATION_PATH, DEVICE_VERIFICATION_PATH, ACCOUNT_PATH):
            return None
        return self.issuer + next_path


class PageEndpoint:
    """An endpoint people see: one request in, one page or redirect out, errors as pages."""

    #: Whether the endpoint judges repeated parameters itself (RFC 6749 §4.1.2.1).
    allow_repeats = False

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.server = browser.server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request: BrowserRequest | None = None
        try:
            request = await self.browser.read(scope, receive, allow_repeats=self.allow_repeats)
            if self.posts_a_form(request):
                self.browser.refuse_cross_site(scope)
            response = await self.handle(request)
        except Exception as exc:
            # A request that could not be read has only its Accept-Language to go by.
            lang = request.lang if request is not None else language(scope, {})
            response = self.browser.error_page(exc, lang=lang)
        await response(scope, receive, send)

    def posts_a_form(self, request: BrowserRequest) -> bool:
        """Whether the request is one of our pages' forms, which only our origin may post."""
        return request.method == "POST"

    async def handle(self, request: BrowserRequest) -> Response:
        raise NotImplementedError


def cookie_header(scope: Scope) -> str | None:
    values = [v.decode("latin-1") for k, v in scope["headers"] if k == b"cookie"]
    return "; ".join(values) if values else None


def _sent_from_elsewhere(scope: Scope, origin: str) -> bool:
    """Whether the browser says a page of an origin other than ``origin`` sent this."""
    headers = [(k.lower(), v.decode("latin-1").strip()) for k, v in scope["headers"]]
    sites = [v for k, v in headers if k == b"sec-fetch-site"]
    if sites:
        # W3C Fetch Metadata, Sec-Fetch-Site: "none" is a navigation the user started.
        return any(site not in ("same-origin", "none") for site in sites)
    # "null" says nothing (RFC 6454 §7.3): under our pages' Referrer-Policy: no-referrer,
    # browsers send it with their own forms (Fetch Standard, "append a request Origin").
    return any(v not in ("null", origin) for k, v in headers if k == b"origin")


def _serialized_origin(url: str) -> str:
    """The origin of an http(s) URL as a browser writes it (RFC 6454 §6.2)."""
    parts = urlsplit(url)
    scheme, host, port = parts.scheme.lower(), parts.hostname or "", parts.port
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == {"http": 80, "https": 443}.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _csp(nonce: str, form_action: str | None, logo_uri: str | None = None) -> str:
    policy = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )
    # The configured logo, the one image the pages show: its exact origin, nothing else
    # (CSP Level 3 ``img-src``; Settings checked that its host holds no CSP syntax).
    if logo_uri is not None:
        policy += f"; img-src {_serialized_origin(logo_uri)}"
    # form-action only where the target is known (form_post): Chromium applies it to
    # the redirects after a form posts, and sign-in and consent redirect to the client.
    if form_action is not None:
        policy += f"; form-action {form_action}"
    return policy


def _secure(response: Response, csp: str, cookies: list[str] | None) -> None:
    headers = response.headers
    headers["Content-Security-Policy"] = csp
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Cache-Control"] = "no-store"
    headers["Pragma"] = "no-cache"
    headers["X-Content-Type-Options"] = "nosniff"
    for cookie in cookies or ():
        headers.append("Set-Cookie", cookie)


def origin_of(uri: str) -> str:
    """A CSP source for a redirect URI: its origin, or its scheme for a native app."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}"
    return f"{parts.scheme}:"
