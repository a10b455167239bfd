"""The pieces the pages are made of: the stylesheet, escaping, hidden fields, lists of
scopes, and the notice about who is asking. Every value is escaped here."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from ...resources import as_pairs
from ..i18n import Translate
from .models import ConsentPage

STYLE = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1b1b1f;background:#f4f5f7}
main{max-width:26rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:.75rem;
box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.35rem;margin:0 0 1rem}
label{display:block;margin:.75rem 0 .25rem;font-weight:600}
input[type=text],input[type=password]{width:100%;padding:.6rem;font-size:1rem;
border:1px solid #8a8f98;border-radius:.4rem}
input:focus,button:focus{outline:3px solid #3b82f6;outline-offset:1px}
.actions{display:flex;gap:.75rem;margin-top:1.25rem}
button{flex:1;padding:.7rem;font-size:1rem;border-radius:.4rem;border:1px solid #1d4ed8;
background:#1d4ed8;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#1d4ed8}
.error{color:#a4161a;background:#fde8e8;padding:.6rem;border-radius:.4rem}
ul{padding-inline-start:1.2rem} code{font-size:1.1rem;letter-spacing:.1em}
.remember{display:flex;gap:.5rem;align-items:center;font-weight:400}
.notice{background:#eef2f7;padding:.6rem .8rem;border-radius:.4rem;margin:1rem 0}
.notice p{margin:.4rem 0} .host{font-size:1.2rem;font-weight:700;overflow-wrap:anywhere}
.warning{color:#a4161a;background:#fde8e8;padding:.6rem;border-radius:.4rem}
.providers{display:flex;flex-direction:column;gap:.6rem;margin:1rem 0}
a.provider{display:block;padding:.7rem;text-align:center;border:1px solid #1b1b1f;
border-radius:.4rem;color:#1b1b1f;text-decoration:none;font-weight:600}
a.provider:focus,a.provider:hover{outline:3px solid #3b82f6;outline-offset:1px}
.or{text-align:center;color:#4b5058;margin:1rem 0 0}
.brand{display:flex;gap:.6rem;align-items:center;justify-content:center;margin:1.5rem 1rem 0;
font-weight:700;font-size:1.1rem;overflow-wrap:anywhere}
.brand img{max-height:2.5rem;max-width:10rem}
.brand+main{margin-top:1rem}
a.button{flex:1;display:block;padding:.7rem;text-align:center;border-radius:.4rem;
border:1px solid #1d4ed8;background:#1d4ed8;color:#fff;text-decoration:none;font-weight:600}
a.button.secondary{background:#fff;color:#1d4ed8}
a.button:focus,a.button:hover,.back a:focus{outline:3px solid #3b82f6;outline-offset:1px}
a{color:#1d4ed8} .back{margin-top:1.25rem}
.developers{margin-top:1.5rem;color:#4b5058;font-size:.9rem;overflow-wrap:anywhere}
.user-code{white-space:nowrap}
ul.apps{list-style:none;padding:0;margin:0}
.apps>li{border-top:1px solid #d5d8de;padding:1rem 0}
.apps h2{font-size:1.1rem;margin:0;overflow-wrap:anywhere}
.apps dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem .75rem;margin:.5rem 0 0}
.apps dt{font-weight:600} .apps dd{margin:0;overflow-wrap:anywhere} .apps dd ul{margin:0}
"""


def _e(value: str) -> str:
    return escape(value, quote=True)


def _english(text: str) -> str:
    return text


def fill(template: str, **values: str) -> str:
    """A (translated) sentence, escaped, its ``{name}`` placeholders then filled with
    ``values``: HTML the caller has escaped already (``_e``), markup around it allowed."""
    return _e(template).format(**values)


def _hidden(fields: Mapping[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{_e(k)}" value="{_e(v)}">' for k, v in as_pairs(fields)
    )


def _decision_buttons(_: Translate = _english) -> str:
    """Deny and Approve, the decision of a consent form."""
    return (
        '<div class="actions"><button type="submit" name="decision" value="deny"'
        f' class="secondary">{_e(_("Deny"))}</button>'
        f'<button type="submit" name="decision" value="approve">{_e(_("Approve"))}</button>'
        "</div>"
    )


def _error(message: str) -> str:
    return f'<p class="error" role="alert">{_e(message)}</p>' if message else ""


def _items(scopes: tuple[tuple[str, str], ...]) -> str:
    return "".join(
        f"<li>{_e(desc)}</li>" if desc != name else f"<li><code>{_e(name)}</code></li>"
        for name, desc in scopes
    )


def _scopes(
    scopes: tuple[tuple[str, str], ...],
    allowed: tuple[tuple[str, str], ...] = (),
    _: Translate = _english,
) -> str:
    """What is asked; what was allowed before is listed apart, as not being asked."""
    if scopes:
        asked = f"<p>{_e(_('It asks to:'))}</p><ul>{_items(scopes)}</ul>"
    elif allowed:
        asked = f"<p>{_e(_('It asks for nothing new.'))}</p>"
    else:
        asked = f"<p>{_e(_('It asks for no particular permissions.'))}</p>"
    if allowed:
        asked += f"<p>{_e(_('You already allowed it to:'))}</p><ul>{_items(allowed)}</ul>"
    return asked


def _who_is_asking(page: ConsentPage, _: Translate = _english) -> str:
    """For a client this server cannot vouch for: who stands behind it, where the answer
    goes (MCP: the redirect URI's host MUST be shown), and a warning when it can only
    go to this computer, where any app could pose as it."""
    if page.client_kind == "registered":
        return ""
    host = _e(page.client_host)
    if page.client_kind == "metadata_document":
        shown = f'<span class="host">{host}</span>'
        notice = (
            f"<p>{fill(_('Identified by {host}'), host=shown)}</p>"
            "<p>"
            + fill(
                _(
                    "This app is not registered with this server. Its name and details come from"
                    " {host}."
                ),
                host=host,
            )
            + "</p>"
        )
    else:
        notice = (
            f"<p>{_e(_('This app registered itself with this server: its name is not verified.'))}"
            "</p>"
        )
    if page.redirect_host:
        target = f'<span class="host">{_e(page.redirect_host)}</span>'
        sent = _("After you decide, your browser is sent to {host}")
        notice += f"<p>{fill(sent, host=target)}</p>"
    if page.local_only:
        notice += (
            '<p class="warning">'
            + fill(
                _(
                    "{warning} this app runs on your computer. Approve only if you started it"
                    " yourself."
                ),
                warning=f"<strong>{_e(_('Warning:'))}</strong>",
            )
            + "</p>"
        )
    return f'<div class="notice">{notice}</div>'
