"""The pieces of the connected applications page: one list item per application, with
its details as a definition list and a form that revokes it. Every value is escaped here."""

from __future__ import annotations

import time

from ..i18n import Translate
from .html import _e, _hidden, _items, fill
from .models import ConnectedAppItem, ConnectedAppsPage


def _connected_apps(page: ConnectedAppsPage, _: Translate) -> str:
    """The page's body: what the last revocation did, then the list (or that it is empty)."""
    notice = f'<p class="notice" role="status">{_e(page.notice)}</p>' if page.notice else ""
    user = _e(page.user_name)
    if not page.apps:
        intro = _("No application has access to your account (signed in as {user}).")
        return f"{notice}<p>{fill(intro, user=user)}</p>"
    intro = _("These applications have access to your account (signed in as {user}).")
    items = "".join(_app(app, page, _) for app in page.apps)
    return f'{notice}<p>{fill(intro, user=user)}</p><ul class="apps">{items}</ul>'


def _app(app: ConnectedAppItem, page: ConnectedAppsPage, _: Translate) -> str:
    """One application: a heading with its name, its details, and its Revoke button,
    which names the application for those who hear the button rather than see it."""
    site = f"<dt>{_e(_('Site'))}</dt><dd>{_e(app.site)}</dd>" if app.site else ""
    access = f"<ul>{_items(app.scopes)}</ul>" if app.scopes else _e(_("No particular permissions"))
    approved = _when(app.granted_at) if app.granted_at else _e(_("Unknown"))
    used = _when(app.last_used) if app.last_used is not None else _e(_("Not recently"))
    label = _e(_("Revoke {app}").format(app=app.name))
    return (
        f"<li><h2>{_e(app.name)}</h2><dl>{site}"
        f"<dt>{_e(_('Access'))}</dt><dd>{access}</dd>"
        f"<dt>{_e(_('Approved'))}</dt><dd>{approved}</dd>"
        f"<dt>{_e(_('Last used'))}</dt><dd>{used}</dd></dl>"
        f'<form method="post" action="{_e(page.action)}">'
        f"{_hidden({'csrf_token': page.csrf_token, 'client_id': app.client_id})}"
        f'<div class="actions"><button type="submit" class="secondary" aria-label="{label}">'
        f"{_e(_('Revoke'))}</button></div></form></li>"
    )


def _when(seconds: int) -> str:
    """A moment as people read it the world over, in UTC: ``2026-12-07 10:42 UTC``."""
    moment = time.gmtime(seconds)
    machine = time.strftime("%Y-%m-%dT%H:%MZ", moment)
    return f'<time datetime="{machine}">{time.strftime("%Y-%m-%d %H:%M UTC", moment)}</time>'
