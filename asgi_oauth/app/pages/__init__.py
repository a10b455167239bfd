"""The pages people see: sign-in, consent, device code entry, messages, form_post.

Plain semantic HTML with one small inline stylesheet and no external assets.
Every value is escaped here. To change their look, subclass ``Pages`` and
override a page's method, or ``render`` to hand each page to your own
templates (``page.template`` names it, ``dataclasses.asdict(page)`` is its
context)::

    class MyPages(Pages):
        def render(self, page: Page) -> str:
            template = env.get_template(f"{page.template}.html")
            return template.render(**dataclasses.asdict(page))

A page must keep its form fields (``csrf_token`` above all) and put ``nonce``
on any ``<style>`` or ``<script>``: the Content-Security-Policy allows nothing else.
"""

from __future__ import annotations

from .models import (
    Brand,
    ClientKind,
    ConnectedAppItem,
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
from .render import Pages

__all__ = [
    "Brand",
    "ClientKind",
    "ConnectedAppItem",
    "ConnectedAppsPage",
    "ConsentPage",
    "DeviceConsentPage",
    "DevicePage",
    "FormPostPage",
    "HomePage",
    "LoginPage",
    "LogoutPage",
    "MessagePage",
    "Page",
    "Pages",
]
