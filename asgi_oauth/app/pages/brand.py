"""The service's mark on every page (``Settings.service_name``, ``logo_uri``,
``service_uri``): the title, a masthead, the way back, and the page at the issuer's
URL. Every value is escaped here."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..i18n import Translate
from .html import _e, _english, fill
from .models import Brand, HomePage


def _titled(title: str, brand: Brand) -> str:
    """The document's title: the page's, then the service's ("Sign in to Acme" as is)."""
    name = brand.service_name
    return f"{title} · {name}" if name and name not in title else title


def _masthead(brand: Brand, _: Translate = _english) -> str:
    """The logo and the service's name above the page; nothing when neither is set.

    The logo is decorative beside the name (``alt=""``), and names the service alone.
    """
    name = brand.service_name
    if not name and not brand.logo_uri:
        return ""
    logo = ""
    if brand.logo_uri:
        alt = "" if name else _e(_("Logo"))
        logo = f'<img src="{_e(brand.logo_uri)}" alt="{alt}">'
    text = f'<span class="service">{_e(name)}</span>' if name else ""
    return f'<header class="brand">{logo}{text}</header>'


def _service_back(brand: Brand) -> tuple[str, str] | None:
    """Back to the service's own site: ``service_uri``, by its name or host."""
    if not brand.service_uri:
        return None
    return brand.service_uri, brand.service_name or urlsplit(brand.service_uri).hostname or ""


def _back_link(back: tuple[str, str] | None, brand: Brand, _: Translate = _english) -> str:
    """A "Back to <name>" link: the page's own way back (a client's), else the service's."""
    target = back or _service_back(brand)
    if target is None:
        return ""
    uri, name = target
    return f'<p class="back"><a href="{_e(uri)}">{fill(_("Back to {name}"), name=_e(name))}</a></p>'


def _home_links(page: HomePage, brand: Brand, _: Translate = _english) -> str:
    """For a person: where to sign in (and their account); for a developer: the metadata."""
    name = brand.service_name
    if name:
        intro = fill(_("Sign in here to use {service}."), service=_e(name))
    else:
        intro = _e(_("Sign in here to use this service."))
    links = (
        f'<a class="button" href="{_e(page.login_url)}">{_e(_("Sign in"))}</a>'
        if page.login_url
        else ""
    )
    if page.account_url:
        account = _e(_("Your account"))
        links += f'<a class="button secondary" href="{_e(page.account_url)}">{account}</a>'
    actions = f'<div class="actions">{links}</div>' if links else ""
    developers = ""
    if page.metadata_url:
        url = _e(page.metadata_url)
        said = _(
            "For developers: this OAuth 2.0 authorization server describes itself at"
            " {metadata} (RFC 8414)."
        )
        link = f'<a href="{url}">{url}</a>'
        developers = f'<p class="developers">{fill(said, metadata=link)}</p>'
    back = _back_link(None, brand, _)
    return f"<p>{intro}</p>{actions}{back}{developers}"
