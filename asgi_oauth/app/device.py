"""The device verification page (RFC 8628 §3.3): a person types the code their
device shows, signs in, and approves or denies the device's request.

Codes are compared in their canonical form (any case, dash optional) and wrong
guesses are throttled per address (§5.1).
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.responses import Response

from ..device import format_user_code, normalize_user_code
from ..endpoints.paths import DEVICE_VERIFICATION_PATH
from ..errors import N_, InvalidRequestError, OAuth2Error
from .browser import BrowserRequest, PageEndpoint
from .i18n import error_message, translator
from .pages import DeviceConsentPage, DevicePage, MessagePage
from .pages.scopes import describe_scopes


class DeviceVerificationEndpoint(PageEndpoint):
    @property
    def action(self) -> str:
        return self.browser.issuer + DEVICE_VERIFICATION_PATH

    async def handle(self, request: BrowserRequest) -> Response:
        user_code = request.params.get("user_code", "")
        owner = await self.browser.owner(request)
        if owner is None:
            query = f"?{urlencode({'user_code': user_code})}" if user_code else ""
            return self.browser.login_redirect(DEVICE_VERIFICATION_PATH + query)
        if request.method == "GET":
            return self._entry(request, user_code)
        if not request.csrf_ok():
            raise InvalidRequestError(
                N_("this form has expired or did not come from this site; please start again"),
                status_code=403,
            )
        try:
            device, client = await self.server.device.find(user_code, request.oauth_request)
        except OAuth2Error as exc:
            if exc.status == 503:
                raise
            return self._entry(request, user_code, exc)
        decision = request.params.get("decision")
        if decision is None:
            descriptions = self.server.settings.scope_descriptions
            session, cookies = self.browser.ensure_session(request)
            page = DeviceConsentPage(
                action=self.action,
                csrf_token=session.csrf,
                client_name=client.name or client.client_id,
                user_name=owner.name or owner.subject,
                user_code=format_user_code(normalize_user_code(user_code) or user_code),
                scopes=describe_scopes(device.scope, descriptions, request.lang),
                lang=request.lang,
            )
            return self.browser.page(page, cookies=cookies)
        if decision not in ("approve", "deny"):
            raise InvalidRequestError(N_("decision must be approve or deny"))
        approved = decision == "approve"
        await self.server.device.decide(device, owner, approved=approved)
        _ = translator(request.lang)
        if approved:
            title, message = _("Device connected"), _("You can return to your device now.")
        else:
            title, message = _("Request denied"), _("The device was not given access.")
        return self.browser.page(MessagePage(title, message, lang=request.lang))

    def _entry(
        self, request: BrowserRequest, user_code: str, error: OAuth2Error | None = None
    ) -> Response:
        session, cookies = self.browser.ensure_session(request)
        page = DevicePage(
            action=self.action,
            csrf_token=session.csrf,
            user_code=user_code,
            error="" if error is None else error_message(error, request.lang),
            lang=request.lang,
        )
        status = 200 if error is None else error.status
        headers = None if error is None else error.headers
        return self.browser.page(page, status=status, cookies=cookies, headers=headers)
