"""The authorization endpoint (RFC 6749 §3.1): sign-in, consent, then the redirect.

``GET`` (or ``POST``, §3.1) with the request's parameters: a signed-in person
who already consented to these scopes goes straight back to the client;
anyone else signs in and sees the consent page, whose form posts the same
parameters back with the decision and the session's CSRF token. The page asks
only for the scopes not allowed before (a step-up), and says who stands behind
a client this server cannot vouch for (MCP: the redirect URI's host name).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from urllib.parse import urlencode, urlsplit

from starlette.responses import Response

from ..authorization import AuthorizationRedirectError, AuthorizationRequest, AuthorizationResponse
from ..client_metadata import ClientMetadata
from ..clients import is_native_redirect_uri
from ..endpoints.authorization import remembered_consent_applies
from ..endpoints.paths import AUTHORIZATION_PATH
from ..errors import (
    N_,
    AccessDeniedError,
    ConsentRequiredError,
    InvalidRequestError,
    LoginRequiredError,
    OAuth2Error,
)
from ..events import security_event
from ..models import Client, ResourceOwner
from ..resources import as_pairs
from ..scopes import grantable_by
from .browser import BrowserRequest, PageEndpoint, origin_of
from .i18n import language
from .pages import ClientKind, ConsentPage, FormPostPage
from .pages.scopes import describe_scopes
from .sessions import CSRF_FIELD

#: Fields of the consent form that are not part of the authorization request.
_DECISION_FIELDS = (CSRF_FIELD, "decision", "remember")


class AuthorizeEndpoint(PageEndpoint):
    allow_repeats = True

    def posts_a_form(self, request: BrowserRequest) -> bool:
        # A client may POST the authorization request from its own site (RFC 6749
        # §3.1); only the consent page's decision is a form of ours.
        return request.method == "POST" and "decision" in request.params

    async def handle(self, request: BrowserRequest) -> Response:
        try:
            return await self._handle(request)
        except AuthorizationRedirectError as exc:
            return self._respond(exc.response, request.lang)
        except Exception as exc:
            # RFC 6749 §4.1.2.1: not for the client's redirect URI; the page says it,
            # with a way back to the client's site when it registered one.
            # Closed for maintenance, that is what the person is told first.
            shown = exc if self.server.available else self.server.availability.error()
            back = await self._way_back(request)
            return self.browser.error_page(shown, back=back, lang=request.lang)

    async def _handle(self, browser_request: BrowserRequest) -> Response:
        params = dict(browser_request.params)
        decision = params.get("decision") if browser_request.method == "POST" else None
        for name in _DECISION_FIELDS:
            params.pop(name, None)
        request = await self.server.authorization.request(params, browser_request.repeated)
        if not self.server.available:
            # Closed for maintenance (asgi_oauth.availability): a known client hears it
            # at its redirect URI, with state and iss, as any error (RFC 6749 §4.1.2.1).
            return self._fail(request, self.server.availability.error(), browser_request.lang)
        owner = await self.browser.owner(browser_request)
        if owner is not None and request.hint_subject not in (None, owner.subject):
            # OpenID Connect Core §3.1.2.1: the hint names someone else, who must sign in.
            owner = None
        if owner is not None and owner.scopes is not None:
            grantable = grantable_by(request.scope, owner.scopes)
            if request.scope and not grantable:
                denied = AccessDeniedError("the user may grant none of it")
                return self._fail(request, denied, browser_request.lang)
            # RFC 6749 §3.3: less than was asked; the token response says what.
            request = replace(request, scope=grantable)

        if decision is not None:
            return await self._decide(browser_request, request, owner, decision)
        too_old = owner is not None and self._too_old(request, owner)
        if "none" in request.prompt:
            # OpenID Connect Core §3.1.2.1: answer without showing any page.
            lang = browser_request.lang
            if owner is None or too_old:
                return self._fail(request, LoginRequiredError("the user is not signed in"), lang)
            if await self.server.authorization.needs_consent(request, owner):
                return self._fail(request, ConsentRequiredError("the user must consent"), lang)
        if owner is not None and _signed_in_since_pushed(request, owner):
            too_old = False
        elif "login" in request.prompt:
            too_old = True
        if owner is None or too_old:
            return self._sign_in(browser_request, request)
        if not await self.server.authorization.needs_consent(request, owner):
            response = await self.server.authorization.authorize(request, owner)
            return self._respond(response, browser_request.lang)
        return await self._consent_page(browser_request, request, owner)

    async def _decide(
        self,
        browser_request: BrowserRequest,
        request: AuthorizationRequest,
        owner: ResourceOwner | None,
        decision: str,
    ) -> Response:
        if not browser_request.csrf_ok():
            # A forged or stale form: say so to the person, send nothing to the client.
            raise InvalidRequestError(
                N_(
                    "this form has expired or did not come from this site; "
                    "go back to the application and start again"
                ),
                status_code=403,
            )
        if owner is None:
            return self._sign_in(browser_request, request)
        if decision == "approve":
            remember = browser_request.params.get("remember") == "yes"
            security_event(
                "consent_granted",
                client_id=request.client.client_id,
                sub=owner.subject,
                scope=request.scope,
                remembered=remember,
            )
            return self._respond(
                await self.server.authorization.authorize(request, owner, remember=remember),
                browser_request.lang,
            )
        if decision == "deny":
            denied = AccessDeniedError("the user denied the request")
            return self._fail(request, denied, browser_request.lang)
        raise InvalidRequestError(N_("decision must be approve or deny"))

    def _too_old(self, request: AuthorizationRequest, owner: ResourceOwner) -> bool:
        """Whether the sign-in is older than ``max_age`` allows (Core §3.1.2.1); 0 always
        asks for a new one, and so does a sign-in whose time is unknown (the ID token
        must then say when, Core §2)."""
        if request.max_age is None:
            return False
        if request.max_age == 0 or owner.auth_time is None:
            return True
        return self.server.now() - owner.auth_time > request.max_age

    def _sign_in(self, browser_request: BrowserRequest, request: AuthorizationRequest) -> Response:
        """Send the person to sign in, and back without ``prompt=login`` or ``max_age``."""
        next_path = _without_login_prompt(request)
        if self.browser.current_user is not None and request.max_age is not None:
            # The host's hook may not say when they sign in: note when they were sent,
            # the auth_time that the new sign-in ``max_age`` asks for stands on then.
            return self.browser.reauth_redirect(browser_request, next_path)
        fresh = "login" in request.prompt or request.max_age is not None
        return self.browser.login_redirect(next_path, fresh=fresh)

    async def _consent_page(
        self, browser_request: BrowserRequest, request: AuthorizationRequest, owner: ResourceOwner
    ) -> Response:
        allowed = await self.server.authorization.allowed_before(request, owner)
        session, cookies = self.browser.ensure_session(browser_request)
        descriptions = self.server.settings.scope_descriptions
        client, kind = request.client, _client_kind(request.client)
        vouched = kind == "registered"
        # A pushed request's ui_locales are in its parameters, not the browser's.
        lang = language(browser_request.scope, request.params)
        page = ConsentPage(
            action=self.browser.issuer + AUTHORIZATION_PATH,
            csrf_token=session.csrf,
            client_name=client.name or client.client_id,
            user_name=owner.name or owner.subject,
            scopes=describe_scopes(request.scope - allowed, descriptions, lang),
            fields=request.params,
            allowed=describe_scopes(allowed, descriptions, lang),
            lang=lang,
            client_kind=kind,
            client_host=_host(client.client_id) if kind == "metadata_document" else "",
            redirect_host="" if vouched else _host(request.redirect_uri),
            local_only=not vouched and _all_local(client.redirect_uris),
            offer_remember=remembered_consent_applies(request),
        )
        return self.browser.page(page, cookies=cookies)

    async def _way_back(self, request: BrowserRequest) -> tuple[str, str] | None:
        """The ``client_uri`` (RFC 7591 §2) of the registered client the request names,
        and its name; never a redirect URI, which may be what the error is about."""
        client_id = request.params.get("client_id")
        if not client_id or "client_id" in request.repeated:
            return None
        try:
            # The store only: an error page fetches no client's metadata document.
            client = await self.server.clients.find(client_id, fetch=False)
            uri = None if client is None else ClientMetadata.from_client(client).client_uri
        except Exception:  # a broken store or record: the page goes without the link
            return None
        if client is None or not uri or urlsplit(uri).scheme not in ("https", "http"):
            return None
        return uri, client.name or urlsplit(uri).hostname or uri

    def _fail(self, request: AuthorizationRequest, error: OAuth2Error, lang: str) -> Response:
        return self._respond(self.server.authorization.failed(request, error), lang)

    def _respond(self, response: AuthorizationResponse, lang: str = "en") -> Response:
        """The answer to the client; ``lang`` is the form_post page's, shown while it posts."""
        if response.response_mode == "form_post":
            page = FormPostPage(action=response.redirect_uri, fields=response.params, lang=lang)
            return self.browser.page(page, form_action=origin_of(response.redirect_uri))
        return self.browser.redirect(response.location)


def _client_kind(client: Client) -> ClientKind:
    """Who vouches for ``client``: this server's operator, or only the app itself."""
    if client.metadata_document:
        return "metadata_document"
    if client.registration_access_token_hash is not None:
        return "dynamic"
    return "registered"


def _host(uri: str) -> str:
    """A URI's host name as a person reads it; ``scheme:`` for an app's own scheme."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        return parts.hostname or ""
    return f"{parts.scheme}:"


def _all_local(redirect_uris: Iterable[str]) -> bool:
    """Whether every redirect URI is on this computer: loopback (RFC 8252 §7.3) or an
    app's own scheme (§7.1), which any app here could listen on or claim."""
    uris = list(redirect_uris)
    return bool(uris) and all(is_native_redirect_uri(uri) for uri in uris)


def _signed_in_since_pushed(request: AuthorizationRequest, owner: ResourceOwner) -> bool:
    """A pushed request's ``prompt=login`` and ``max_age`` stay in its parameters; a
    sign-in after it was pushed satisfies them (the ID token's ``auth_time`` says when)."""
    pushed_at, auth_time = request.pushed_at, owner.auth_time
    return pushed_at is not None and auth_time is not None and auth_time >= pushed_at


def _without_login_prompt(request: AuthorizationRequest) -> str:
    """The request to come back to after signing in, its ``prompt=login`` and
    ``max_age`` satisfied by that sign-in (the ID token's ``auth_time`` says when)."""
    params = dict(request.params)
    params.pop("max_age", None)
    prompt = " ".join(sorted(request.prompt - {"login"}))
    if prompt:
        params["prompt"] = prompt
    else:
        params.pop("prompt", None)
    return f"{AUTHORIZATION_PATH}?{urlencode(as_pairs(params))}"
