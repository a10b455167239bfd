"""``Pages``: each page as a complete HTML document."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import ClassVar, TypeVar, cast

from ..i18n import direction, translator
from .apps import _connected_apps
from .brand import _back_link, _home_links, _masthead, _titled
from .html import STYLE, _decision_buttons, _e, _error, _hidden, _scopes, _who_is_asking, fill
from .models import (
    Brand,
    ConnectedAppsPage,
    ConsentPage,
    DeviceConsentPage,
    DevicePage,
    FormPostPage,
    HomePage,
    LoginPage,
    LogoutPage,
    MessagePage,
    Page,
)

_P = TypeVar("_P", bound="Pages")


class Pages:
    """Renders each page as a complete HTML document."""

    stylesheet: ClassVar[str] = STYLE
    #: The service these pages belong to (``branded``); the default names none.
    brand: Brand = Brand()

    def render(self, page: Page) -> str:
        method = cast(Callable[[Page], str], getattr(self, page.template))
        return method(page)

    def layout(self, title: str, body: str, nonce: str, head: str = "", lang: str = "en") -> str:
        """The document around a page's body, in ``lang`` (its ``dir`` with it)."""
        return (
            f'<!doctype html><html lang="{_e(lang)}" dir="{direction(lang)}"><head>'
            '<meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_e(_titled(title, self.brand))}</title>"
            f'<style nonce="{_e(nonce)}">{self.stylesheet}</style>{head}'
            f"</head><body>{_masthead(self.brand, translator(lang))}"
            f"<main><h1>{_e(title)}</h1>{body}</main></body></html>"
        )

    def branded(self: _P, brand: Brand) -> _P:
        """A copy of these pages that shows ``brand``: the app makes one from its settings,
        leaving the ``Pages`` it was given as it was."""
        pages = copy.copy(self)
        pages.brand = brand
        return pages

    def login(self, page: LoginPage) -> str:
        _ = translator(page.lang)
        buttons = "".join(
            f'<a class="provider" href="{_e(url)}">'
            f"{fill(_('Sign in with {provider}'), provider=_e(name))}</a>"
            for url, name in page.providers
        )
        body = _error(page.error) + (f'<div class="providers">{buttons}</div>' if buttons else "")
        name = self.brand.service_name
        title = _("Sign in to {service}").format(service=name) if name else _("Sign in")
        if not page.password:
            return self.layout(title, body, page.nonce, lang=page.lang)
        if buttons:
            body += f'<p class="or">{_e(_("or with your username"))}</p>'
        body += (
            f'<form method="post" action="{_e(page.action)}">'
            f"{_hidden({'csrf_token': page.csrf_token, 'next': page.next})}"
            f'<label for="username">{_e(_("Username"))}</label>'
            f'<input id="username" name="username" type="text" value="{_e(page.username)}" '
            'autocomplete="username" autocapitalize="none" required autofocus>'
            f'<label for="password">{_e(_("Password"))}</label>'
            '<input id="password" name="password" type="password" '
            'autocomplete="current-password" required>'
            f'<div class="actions"><button type="submit">{_e(_("Sign in"))}</button></div></form>'
        )
        return self.layout(title, body, page.nonce, lang=page.lang)

    def logout(self, page: LogoutPage) -> str:
        _ = translator(page.lang)
        who = (
            " " + fill(_("You are signed in as {user}."), user=_e(page.user_name))
            if page.user_name
            else ""
        )
        notice = f"<p>{_e(page.notice)}</p>" if page.notice else ""
        body = (
            f"{notice}<p>{_e(_('Sign out of this server?'))}{who}</p>"
            f'<form method="post" action="{_e(page.action)}">'
            f"{_hidden({**page.fields, 'csrf_token': page.csrf_token})}"
            f'<div class="actions"><button type="submit">{_e(_("Sign out"))}</button></div></form>'
        )
        return self.layout(_("Sign out"), body, page.nonce, lang=page.lang)

    def consent(self, page: ConsentPage) -> str:
        _ = translator(page.lang)
        name = self.brand.service_name
        if name:
            wants = _("{client} wants to access your {service} account (signed in as {user}).")
        else:
            wants = _("{client} wants to access your account (signed in as {user}).")
        remember = (
            '<label class="remember"><input type="checkbox" name="remember" value="yes" checked>'
            f" {_e(_('Remember this decision'))}</label>"
            if page.offer_remember
            else ""
        )
        client = f"<strong>{_e(page.client_name)}</strong>"
        user, service = _e(page.user_name), _e(name or "")
        body = (
            f"<p>{fill(wants, client=client, service=service, user=user)}</p>"
            f"{_who_is_asking(page, _)}{_scopes(page.scopes, page.allowed, _)}"
            f'<form method="post" action="{_e(page.action)}">'
            f"{_hidden({**page.fields, 'csrf_token': page.csrf_token})}{remember}"
            f"{_decision_buttons(_)}</form>"
        )
        return self.layout(_("Authorize access"), body, page.nonce, lang=page.lang)

    def device(self, page: DevicePage) -> str:
        _ = translator(page.lang)
        body = (
            f"{_error(page.error)}<p>{_e(_('Enter the code shown on your device.'))}</p>"
            f'<form method="post" action="{_e(page.action)}">'
            f"{_hidden({'csrf_token': page.csrf_token})}"
            f'<label for="user_code">{_e(_("Code"))}</label>'
            f'<input id="user_code" name="user_code" type="text" value="{_e(page.user_code)}" '
            'autocomplete="off" autocapitalize="characters" spellcheck="false" required autofocus>'
            f'<div class="actions"><button type="submit">{_e(_("Continue"))}</button></div></form>'
        )
        return self.layout(_("Connect a device"), body, page.nonce, lang=page.lang)

    def device_consent(self, page: DeviceConsentPage) -> str:
        _ = translator(page.lang)
        wants = _(
            "{client} on the device showing {code} wants to access your account"
            " (signed in as {user})."
        )
        body = (
            "<p>"
            + fill(
                wants,
                client=f"<strong>{_e(page.client_name)}</strong>",
                code=f'<code class="user-code">{_e(page.user_code)}</code>',
                user=_e(page.user_name),
            )
            + f"</p>{_scopes(page.scopes, (), _)}"
            f'<form method="post" action="{_e(page.action)}">'
            f"{_hidden({'csrf_token': page.csrf_token, 'user_code': page.user_code})}"
            f"{_decision_buttons(_)}</form>"
        )
        return self.layout(_("Authorize a device"), body, page.nonce, lang=page.lang)

    def connected_apps(self, page: ConnectedAppsPage) -> str:
        _ = translator(page.lang)
        body = _connected_apps(page, _)
        return self.layout(_("Connected applications"), body, page.nonce, lang=page.lang)

    def message(self, page: MessagePage) -> str:
        _ = translator(page.lang)
        back = _back_link(page.back, self.brand, _)
        explained = (
            f'<p class="error-uri"><a href="{_e(page.error_uri)}">'
            f"{_e(_('More about this error'))}</a></p>"
            if page.error_uri
            else ""
        )
        body = f"<p>{_e(page.message)}</p>{explained}{back}"
        return self.layout(page.title, body, page.nonce, lang=page.lang)

    def home(self, page: HomePage) -> str:
        _ = translator(page.lang)
        title = self.brand.service_name or _("Sign-in service")
        body = _home_links(page, self.brand, _)
        return self.layout(title, body, page.nonce, lang=page.lang)

    def form_post(self, page: FormPostPage) -> str:
        _ = translator(page.lang)
        body = (
            f'<form method="post" action="{_e(page.action)}">{_hidden(page.fields)}'
            f"<noscript><p>{_e(_('JavaScript is off: press the button to continue.'))}</p>"
            f'<div class="actions"><button type="submit">{_e(_("Continue"))}</button></div>'
            f'</noscript></form><script nonce="{_e(page.nonce)}">document.forms[0].submit()'
            "</script>"
        )
        return self.layout(_("Redirecting"), body, page.nonce, lang=page.lang)
