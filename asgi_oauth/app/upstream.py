"""Signing in through an upstream provider: ``/upstream/{id}`` leaves for it,
``/upstream/{id}/callback`` comes back.

What the browser must bring back (``PendingSignIn``: ``state``, ``nonce``, the PKCE
verifier, where to go next) travels in a signed, HttpOnly, short-lived cookie, so an
answer is accepted only in the browser that started the sign-in (RFC 9700 §4.7:
no login CSRF). A few sign-ins may be under way at once, in several tabs. Once the
provider has said who the person is, they are signed in here exactly as with the
password form: a new session, then back to the authorization request, whose consent
stays this server's to ask.
"""

from __future__ import annotations

import hmac
from dataclasses import asdict

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.responses import Response

from ..endpoints.paths import UPSTREAM_PATH
from ..errors import N_, InvalidRequestError
from ..federation.broker import PENDING_LIFETIME, PendingSignIn
from .browser import Browser, BrowserRequest, PageEndpoint, cookie_header
from .i18n import language, translator
from .pages import MessagePage
from .requests import route_path
from .sessions import Session, cookie_attributes, values_named

#: Sign-ins under way in one browser at once (tabs); the oldest is dropped.
_MAX_PENDING = 3


class PendingCookie:
    """The sign-ins a browser has under way, signed with the session key."""

    def __init__(self, browser: Browser) -> None:
        settings = browser.server.settings
        self.name, attributes = cookie_attributes(settings, "asgi_oauth_upstream")
        self._attributes = f"Max-Age={PENDING_LIFETIME}; {attributes}"
        self._clear = f"Max-Age=0; {attributes}"
        self._serializer = URLSafeTimedSerializer(browser.cookie.key, salt="asgi_oauth.upstream")

    def load(self, header: str | None) -> list[PendingSignIn]:
        for value in values_named(self.name, header or ""):
            try:
                data = self._serializer.loads(value, max_age=PENDING_LIFETIME)
                return [PendingSignIn(**entry) for entry in data]
            except (BadData, TypeError, ValueError):
                continue
        return []

    def set_cookie(self, pending: list[PendingSignIn]) -> str:
        if not pending:
            return f"{self.name}=; {self._clear}"
        value = self._serializer.dumps([asdict(p) for p in pending[:_MAX_PENDING]])
        return f"{self.name}={value}; {self._attributes}"


class UpstreamSignIn(PageEndpoint):
    """Both ends of the round trip to an upstream provider."""

    def __init__(self, browser: Browser) -> None:
        super().__init__(browser)
        self._pending = PendingCookie(browser)

    async def handle(self, request: BrowserRequest) -> Response:
        if request.method != "GET":
            raise InvalidRequestError(
                N_("method not allowed"), status_code=405, headers={"Allow": "GET"}
            )
        provider_id, _, rest = route_path(request.scope)[len(UPSTREAM_PATH) + 1 :].partition("/")
        if rest == "callback":
            return await self._come_back(request, provider_id)
        if rest:
            raise InvalidRequestError(N_("no such endpoint"), status_code=404)
        return await self._leave(request, provider_id)

    async def _leave(self, request: BrowserRequest, provider_id: str) -> Response:
        next_path = request.params.get("next", "")
        if self.browser.after_login(next_path) is None:
            next_path = ""  # only this server's own pages, as after the password form
        url, pending = await self.server.federation.begin(
            provider_id, next_path, fresh=request.params.get("fresh") == "1"
        )
        under_way = [pending, *self._pending.load(cookie_header(request.scope))]
        return self.browser.redirect(url, [self._pending.set_cookie(under_way)])

    async def _come_back(self, request: BrowserRequest, provider_id: str) -> Response:
        under_way = self._pending.load(cookie_header(request.scope))
        state = request.params.get("state", "").encode()
        # The sign-in this answer is for; else any, whose ``state`` then fails to match.
        pending = next(
            (p for p in under_way if hmac.compare_digest(p.state.encode(), state)),
            under_way[0] if under_way else None,
        )
        signed = await self.server.federation.finish(
            provider_id,
            request.params,
            pending,
            address=request.oauth_request.client_address,
        )
        assert pending is not None  # ``finish`` refuses an answer without one
        session_id, auth_time = await self.server.accounts.open_session(
            signed.user, auth_time=signed.auth_time
        )
        session = Session.signed_in(
            signed.user, auth_time, session_id, amr=signed.amr, scopes=signed.scopes
        )
        cookies = [
            self.browser.cookie.set_cookie(session),
            self._pending.set_cookie([p for p in under_way if p is not pending]),
        ]
        target = self.browser.after_login(pending.next)
        if target is not None:
            return self.browser.redirect(target, cookies)
        # The language of the authorization request signed in for, if it chose one.
        lang = language(request.scope, {"next": pending.next})
        _ = translator(lang)
        page = MessagePage(
            title=_("Signed in"),
            message=_("You are signed in as {user}.").format(user=signed.user.username),
            lang=lang,
        )
        return self.browser.page(page, cookies=cookies)


def start_path(provider_id: str) -> str:
    """Where a sign-in through ``provider_id`` starts, below the issuer."""
    return f"{UPSTREAM_PATH}/{provider_id}"
