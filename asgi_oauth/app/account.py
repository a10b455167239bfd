"""The connected applications page: a signed-in person sees each client they approved
and revokes one (``AuthorizationServer.connected_apps``).

GET lists them. POST is the page's own form (the session's CSRF token, from this
origin: ``PageEndpoint`` refuses others) naming one ``client_id``; its consent and
every token of the person's for it end at once, and the browser is sent back with a
303 (RFC 9110 §15.4.4), so reloading repeats nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlencode, urlsplit

from starlette.responses import Response

from ..endpoints.paths import ACCOUNT_PATH
from ..errors import N_, InvalidRequestError, storage_guard
from ..models import Client, ConnectedApp, ResourceOwner
from .browser import BrowserRequest, PageEndpoint
from .i18n import translator
from .pages import ConnectedAppItem, ConnectedAppsPage
from .pages.scopes import ScopeDescription, describe_scopes

#: The query parameter that carries, after a revocation, which client it was.
_REVOKED = "revoked"


class AccountEndpoint(PageEndpoint):
    @property
    def action(self) -> str:
        return self.browser.issuer + ACCOUNT_PATH

    async def handle(self, request: BrowserRequest) -> Response:
        owner = await self.browser.owner(request)
        if owner is None:
            return self.browser.login_redirect(ACCOUNT_PATH)
        if request.method == "POST":
            return await self._revoke(request, owner)
        return await self._list(request, owner)

    async def _revoke(self, request: BrowserRequest, owner: ResourceOwner) -> Response:
        if not request.csrf_ok():
            raise InvalidRequestError(
                N_("this form has expired or did not come from this site; please start again"),
                status_code=403,
            )
        client_id = request.params.get("client_id", "")
        if not client_id:
            raise InvalidRequestError(N_("the application to revoke is missing"))
        await self.server.connected_apps.revoke(owner.subject, client_id)
        return self.browser.redirect(f"{self.action}?{urlencode({_REVOKED: client_id})}")

    async def _list(self, request: BrowserRequest, owner: ResourceOwner) -> Response:
        apps = await self.server.connected_apps.of(owner.subject)
        session, cookies = self.browser.ensure_session(request)
        descriptions, lang = self.server.settings.scope_descriptions, request.lang
        page = ConnectedAppsPage(
            action=self.action,
            csrf_token=session.csrf,
            user_name=owner.name or owner.subject,
            apps=tuple(_item(client, grant, descriptions, lang) for client, grant in apps),
            notice=await self._notice(request.params.get(_REVOKED), apps, lang),
            lang=lang,
        )
        return self.browser.page(page, cookies=cookies)

    async def _notice(
        self, revoked: str | None, apps: Sequence[tuple[Client, ConnectedApp]], lang: str
    ) -> str:
        """What the revocation did. Anyone may link here with the parameter, so it is
        said only when true (the client is not connected), and a client is named only
        when the store knows it."""
        if not revoked or any(client.client_id == revoked for client, _ in apps):
            return ""
        with storage_guard:
            client = await self.server.clients.find(revoked, fetch=False)
        _ = translator(lang)
        if client is None or not client.name:
            return _("The application no longer has access to your account.")
        return _("{app} no longer has access to your account.").format(app=client.name)


def _item(
    client: Client,
    grant: ConnectedApp,
    descriptions: Mapping[str, ScopeDescription],
    lang: str = "en",
) -> ConnectedAppItem:
    return ConnectedAppItem(
        client_id=client.client_id,
        name=client.name or client.client_id,
        site=_site(client),
        scopes=describe_scopes(grant.scope, descriptions, lang),
        granted_at=grant.granted_at,
        last_used=grant.last_used,
    )


def _site(client: Client) -> str:
    """Where the application lives, as a person can check it: a metadata document's
    URL (its ``client_id``), else its first redirect URI's host, or ``scheme:`` for an
    app's own scheme (RFC 8252 §7.1); "" for a client without one."""
    if client.metadata_document:
        return client.client_id
    if not client.redirect_uris:
        return ""
    parts = urlsplit(client.redirect_uris[0])
    if parts.scheme in ("http", "https"):
        return parts.hostname or ""
    return f"{parts.scheme}:"
