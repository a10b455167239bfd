"""The built-in sign-in and sign-out pages, backed by the store's users
(when the host gives no hook).

Signing in replaces the session, CSRF secret included (no session fixation),
records it in the store, and returns the person only to this server's own pages.
Signing out ends it in the store and clears the cookie; a new password ends it too
(the session remembers a digest of the one it was opened with), and so does
deleting the user.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.responses import Response

from ..endpoints.logout import LOGOUT_PARAMETERS, LogoutRequest
from ..endpoints.paths import LOGIN_PATH, LOGOUT_PATH
from ..errors import N_, InvalidRequestError, OAuth2Error
from ..models import ResourceOwner
from .browser import BrowserRequest, PageEndpoint
from .i18n import Translate, error_message, translator
from .pages import LoginPage, LogoutPage, MessagePage
from .sessions import CSRF_FIELD, Session
from .upstream import start_path


class LoginEndpoint(PageEndpoint):
    async def handle(self, request: BrowserRequest) -> Response:
        settings = self.server.settings
        if request.method == "GET":
            providers = settings.upstream_providers
            if not settings.password_sign_in and len(providers) == 1:
                # Nothing to choose: straight to the one provider.
                return self.browser.redirect(self._start_url(request, providers[0].id))
            return self._form(request)
        if not settings.password_sign_in:
            raise InvalidRequestError(
                N_("sign in with one of the providers offered"), status_code=403
            )
        return await self._sign_in(request)

    def _start_url(self, request: BrowserRequest, provider_id: str) -> str:
        """Where a sign-in through the provider starts, carrying ``next`` and ``fresh``."""
        params = {"next": request.params.get("next", "")}
        if request.params.get("fresh") == "1":
            params["fresh"] = "1"
        return f"{self.browser.issuer}{start_path(provider_id)}?{urlencode(params)}"

    def _form(self, request: BrowserRequest, *, error: OAuth2Error | None = None) -> Response:
        session, cookies = self.browser.ensure_session(request)
        next_path = request.params.get("next", "")
        page = LoginPage(
            action=self.browser.issuer + LOGIN_PATH,
            csrf_token=session.csrf,
            next=next_path,
            username=request.params.get("username", "") if error else _login_hint(next_path),
            error="" if error is None else error_message(error, request.lang),
            providers=tuple(
                (self._start_url(request, p.id), p.name)
                for p in self.server.settings.upstream_providers
            ),
            password=self.server.settings.password_sign_in,
            lang=request.lang,
        )
        status = 200 if error is None else error.status
        headers = None if error is None else error.headers
        return self.browser.page(page, status=status, cookies=cookies, headers=headers)

    async def _sign_in(self, request: BrowserRequest) -> Response:
        if not request.csrf_ok():
            # No session, an expired one, or a form from elsewhere (login CSRF). A
            # session that exists stays: a forged form must not sign anyone out.
            expired = OAuth2Error(N_("your session expired; please sign in again"), status_code=403)
            return self._form(request, error=expired)
        username = request.params.get("username", "")
        password = request.params.get("password", "")
        try:
            user = await self.server.accounts.authenticate(
                request.oauth_request, username, password
            )
        except OAuth2Error as exc:
            if exc.status == 503:
                raise
            return self._form(request, error=exc)
        session_id, auth_time = await self.server.accounts.open_session(user)
        session = Session.signed_in(user, auth_time, session_id)
        cookies = [self.browser.cookie.set_cookie(session)]
        target = self.browser.after_login(request.params.get("next"))
        if target is not None:
            return self.browser.redirect(target, cookies)
        _ = translator(request.lang)
        page = MessagePage(
            title=_("Signed in"),
            message=_("You are signed in as {user}.").format(user=user.username),
            lang=request.lang,
        )
        return self.browser.page(page, cookies=cookies)


class LogoutEndpoint(PageEndpoint):
    """Signing out: a plain visit, or a client's request (RP-Initiated Logout 1.0 §2,
    by GET or POST), which the person confirms (§2: the OP SHOULD ask) on a form that
    carries it through. After, a registered ``post_logout_redirect_uri`` or the
    "Signed out" page; the clients are told over the back channel."""

    def posts_a_form(self, request: BrowserRequest) -> bool:
        """Our confirmation form; a client's POSTed request only shows it (§2)."""
        return request.method == "POST" and _confirms(request)

    async def handle(self, request: BrowserRequest) -> Response:
        # Checked before anything else: an invalid request is an error page, never a redirect.
        logout = await self.server.end_session.request(request.params)
        owner = await self.browser.owner(request)
        if not _confirms(request):
            session, cookies = self.browser.ensure_session(request)
            page = LogoutPage(
                action=self.browser.issuer + LOGOUT_PATH,
                csrf_token=session.csrf,
                user_name="" if owner is None else owner.name,
                fields=logout.params,
                notice=_notice(logout, owner, translator(request.lang)),
                lang=request.lang,
            )
            return self.browser.page(page, cookies=cookies)
        if not request.csrf_ok():
            raise InvalidRequestError(
                N_("this form has expired or did not come from this site"), status_code=403
            )
        if request.session is not None and request.session.session_id is not None:
            # Ended in the store too: a copy of the cookie taken before signs in no one.
            await self.server.accounts.close_session(request.session.session_id)
        if owner is not None:
            self.server.end_session.signed_out(owner.subject)
        cookies = [self.browser.cookie.clear_cookie()]
        if logout.location is not None:
            return self.browser.redirect(logout.location, cookies)
        _ = translator(request.lang)
        done = MessagePage(_("Signed out"), _("You are signed out."), lang=request.lang)
        return self.browser.page(done, cookies=cookies)


def _confirms(request: BrowserRequest) -> bool:
    """A POST of the confirmation form: it carries the CSRF token, or nothing of §2."""
    params = request.params
    return request.method == "POST" and (
        CSRF_FIELD in params or not any(name in params for name in LOGOUT_PARAMETERS)
    )


def _notice(logout: LogoutRequest, owner: ResourceOwner | None, _: Translate) -> str:
    """What the confirmation says of the request: whose it is, and whether the hint
    names someone other than who is signed in (who is still the one signed out)."""
    lines = []
    if logout.client is not None:
        app = logout.client.name or logout.client.client_id
        lines.append(_("{app} asks you to sign out.").format(app=app))
    if owner is not None and logout.hint_subject not in (None, owner.subject):
        lines.append(
            _(
                "The application named another account than the one signed in here;"
                " signing out ends this browser's session all the same."
            )
        )
    return " ".join(lines)


def _login_hint(next_path: str) -> str:
    """The ``login_hint`` of the authorization request being signed in for (OpenID
    Connect Core §3.1.2.1), to fill in the username."""
    values = parse_qs(urlsplit(next_path).query).get("login_hint", [""])
    return values[0][:256] if len(values) == 1 else ""
