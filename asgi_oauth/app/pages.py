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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html import escape
from typing import ClassVar, Literal, cast

from ..resources import as_pairs


@dataclass(frozen=True, slots=True)
class LoginPage:
    action: str
    csrf_token: str
    next: str = ""
    username: str = ""
    error: str = ""
    nonce: str = ""
    #: (where its sign-in starts, its name) for each upstream provider.
    providers: tuple[tuple[str, str], ...] = ()
    #: Whether the password form is offered.
    password: bool = True
    template: ClassVar[str] = "login"


@dataclass(frozen=True, slots=True)
class LogoutPage:
    action: str
    csrf_token: str
    user_name: str = ""
    nonce: str = ""
    template: ClassVar[str] = "logout"


#: How this server knows a client: registered by its operator, registered by the
#: app itself (RFC 7591), or read from the URL its ``client_id`` names (a client ID
#: metadata document).
ClientKind = Literal["registered", "dynamic", "metadata_document"]


@dataclass(frozen=True, slots=True)
class ConsentPage:
    action: str
    csrf_token: str
    client_name: str
    user_name: str
    #: (scope, what it means to a person) pairs: what the request asks for that the
    #: person has not allowed this client before.
    scopes: tuple[tuple[str, str], ...]
    #: The authorization request's parameters, sent again with the decision.
    fields: Mapping[str, str] = field(default_factory=dict)
    nonce: str = ""
    #: The scopes of the request the person allowed before (a step-up asks for the rest).
    allowed: tuple[tuple[str, str], ...] = ()
    client_kind: ClientKind = "registered"
    #: A metadata-document client's host, which vouches for it: its ``client_id``'s.
    client_host: str = ""
    #: Where the answer goes, for a client this server cannot vouch for: the redirect
    #: URI's host, or ``scheme:`` for an app's own scheme (``cursor:``).
    redirect_host: str = ""
    #: Every redirect URI of such a client is on this computer (loopback, an app's scheme).
    local_only: bool = False
    template: ClassVar[str] = "consent"


@dataclass(frozen=True, slots=True)
class DevicePage:
    action: str
    csrf_token: str
    user_code: str = ""
    error: str = ""
    nonce: str = ""
    template: ClassVar[str] = "device"


@dataclass(frozen=True, slots=True)
class DeviceConsentPage:
    action: str
    csrf_token: str
    client_name: str
    user_name: str
    user_code: str
    scopes: tuple[tuple[str, str], ...]
    nonce: str = ""
    template: ClassVar[str] = "device_consent"


@dataclass(frozen=True, slots=True)
class MessagePage:
    title: str
    message: str
    nonce: str = ""
    template: ClassVar[str] = "message"


@dataclass(frozen=True, slots=True)
class FormPostPage:
    """OAuth 2.0 Form Post Response Mode §2: a form that posts itself to the client."""

    action: str
    fields: Mapping[str, str]
    nonce: str = ""
    template: ClassVar[str] = "form_post"


Page = (
    LoginPage
    | LogoutPage
    | ConsentPage
    | DevicePage
    | DeviceConsentPage
    | MessagePage
    | FormPostPage
)

_STYLE = """
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
ul{padding-left:1.2rem} code{font-size:1.1rem;letter-spacing:.1em}
.remember{display:flex;gap:.5rem;align-items:center;font-weight:400}
.notice{background:#eef2f7;padding:.6rem .8rem;border-radius:.4rem;margin:1rem 0}
.notice p{margin:.4rem 0} .host{font-size:1.2rem;font-weight:700;overflow-wrap:anywhere}
.warning{color:#a4161a;background:#fde8e8;padding:.6rem;border-radius:.4rem}
.providers{display:flex;flex-direction:column;gap:.6rem;margin:1rem 0}
a.provider{display:block;padding:.7rem;text-align:center;border:1px solid #1b1b1f;
border-radius:.4rem;color:#1b1b1f;text-decoration:none;font-weight:600}
a.provider:focus,a.provider:hover{outline:3px solid #3b82f6;outline-offset:1px}
.or{text-align:center;color:#4b5058;margin:1rem 0 0}
"""


def _e(value: str) -> str:
    return escape(value, quote=True)


def _hidden(fields: Mapping[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{_e(k)}" value="{_e(v)}">' for k, v in as_pairs(fields)
    )


def _error(message: str) -> str:
    return f'<p class="error" role="alert">{_e(message)}</p>' if message else ""


def _items(scopes: tuple[tuple[str, str], ...]) -> str:
    return "".join(
        f"<li>{_e(desc)}</li>" if desc != name else f"<li><code>{_e(name)}</code></li>"
        for name, desc in scopes
    )


def _scopes(scopes: tuple[tuple[str, str], ...], allowed: tuple[tuple[str, str], ...] = ()) -> str:
    """What is asked; what was allowed before is listed apart, as not being asked."""
    if scopes:
        asked = f"<p>It asks to:</p><ul>{_items(scopes)}</ul>"
    elif allowed:
        asked = "<p>It asks for nothing new.</p>"
    else:
        asked = "<p>It asks for no particular permissions.</p>"
    if allowed:
        asked += f"<p>You already allowed it to:</p><ul>{_items(allowed)}</ul>"
    return asked


def _who_is_asking(page: ConsentPage) -> str:
    """For a client this server cannot vouch for: who stands behind it, where the answer
    goes (MCP: the redirect URI's host MUST be shown), and a warning when it can only
    go to this computer, where any app could pose as it."""
    if page.client_kind == "registered":
        return ""
    if page.client_kind == "metadata_document":
        notice = (
            f'<p>Identified by <span class="host">{_e(page.client_host)}</span></p>'
            "<p>This app is not registered with this server. Its name and details"
            f" come from {_e(page.client_host)}.</p>"
        )
    else:
        notice = "<p>This app registered itself with this server: its name is not verified.</p>"
    if page.redirect_host:
        notice += (
            "<p>After you decide, your browser is sent to"
            f' <span class="host">{_e(page.redirect_host)}</span></p>'
        )
    if page.local_only:
        notice += (
            '<p class="warning"><strong>Warning:</strong> this app runs on your computer.'
            " Approve only if you started it yourself.</p>"
        )
    return f'<div class="notice">{notice}</div>'


class Pages:
    """Renders each page as a complete HTML document."""

    stylesheet: ClassVar[str] = _STYLE

    def render(self, page: Page) -> str:
        method = cast(Callable[[Page], str], getattr(self, page.template))
        return method(page)

    def layout(self, title: str, body: str, nonce: str, head: str = "") -> str:
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_e(title)}</title>"
            f'<style nonce="{_e(nonce)}">{self.stylesheet}</style>{head}'
            f"</head><body><main><h1>{_e(title)}</h1>{body}</main></body></html>"
        )

    def login(self, page: LoginPage) -> str:
        buttons = "".join(
            f'<a class="provider" href="{_e(url)}">Sign in with {_e(name)}</a>'
            for url, name in page.providers
        )
        body = _error(page.error) + (f'<div class="providers">{buttons}</div>' if buttons else "")
        if not page.password:
            return self.layout("Sign in", body, page.nonce)
        if buttons:
            body += '<p class="or">or with your username</p>'
        body += (
            f'<form method="post" action="{_e(page.action)}">'
            f"{_hidden({'csrf_token': page.csrf_token, 'next': page.next})}"
            '<label for="username">Username</label>'
            f'<input id="username" name="username" type="text" value="{_e(page.username)}" '
            'autocomplete="username" autocapitalize="none" required autofocus>'
            '<label for="password">Password</label>'
            '<input id="password" name="password" type="password" '
            'autocomplete="current-password" required>'
            '<div class="actions"><button type="submit">Sign in</button></div></form>'
        )
        return self.layout("Sign in", body, page.nonce)

    def logout(self, page: LogoutPage) -> str:
        who = f" You are signed in as {_e(page.user_name)}." if page.user_name else ""
        body = (
            f"<p>Sign out of this server?{who}</p>"
            f'<form method="post" action="{_e(page.action)}">'
            f"{_hidden({'csrf_token': page.csrf_token})}"
            '<div class="actions"><button type="submit">Sign out</button></div></form>'
        )
        return self.layout("Sign out", body, page.nonce)

    def consent(self, page: ConsentPage) -> str:
        body = (
            f"<p><strong>{_e(page.client_name)}</strong> wants to access your account"
            f" (signed in as {_e(page.user_name)}).</p>{_who_is_asking(page)}"
            f"{_scopes(page.scopes, page.allowed)}"
            f'<form method="post" action="{_e(page.action)}">'
            f"{_hidden({**page.fields, 'csrf_token': page.csrf_token})}"
            '<label class="remember"><input type="checkbox" name="remember" value="yes" checked>'
            " Remember this decision</label>"
            '<div class="actions">'
            '<button type="submit" name="decision" value="deny" class="secondary">Deny</button>'
            '<button type="submit" name="decision" value="approve">Approve</button>'
            "</div></form>"
        )
        return self.layout("Authorize access", body, page.nonce)

    def device(self, page: DevicePage) -> str:
        body = (
            f"{_error(page.error)}<p>Enter the code shown on your device.</p>"
            f'<form method="post" action="{_e(page.action)}">'
            f"{_hidden({'csrf_token': page.csrf_token})}"
            '<label for="user_code">Code</label>'
            f'<input id="user_code" name="user_code" type="text" value="{_e(page.user_code)}" '
            'autocomplete="off" autocapitalize="characters" spellcheck="false" required autofocus>'
            '<div class="actions"><button type="submit">Continue</button></div></form>'
        )
        return self.layout("Connect a device", body, page.nonce)

    def device_consent(self, page: DeviceConsentPage) -> str:
        body = (
            f"<p><strong>{_e(page.client_name)}</strong> on the device showing"
            f" <code>{_e(page.user_code)}</code> wants to access your account"
            f" (signed in as {_e(page.user_name)}).</p>{_scopes(page.scopes)}"
            f'<form method="post" action="{_e(page.action)}">'
            f"{_hidden({'csrf_token': page.csrf_token, 'user_code': page.user_code})}"
            '<div class="actions">'
            '<button type="submit" name="decision" value="deny" class="secondary">Deny</button>'
            '<button type="submit" name="decision" value="approve">Approve</button>'
            "</div></form>"
        )
        return self.layout("Authorize a device", body, page.nonce)

    def message(self, page: MessagePage) -> str:
        return self.layout(page.title, f"<p>{_e(page.message)}</p>", page.nonce)

    def form_post(self, page: FormPostPage) -> str:
        body = (
            f'<form method="post" action="{_e(page.action)}">{_hidden(page.fields)}'
            "<noscript><p>JavaScript is off: press the button to continue.</p>"
            '<div class="actions"><button type="submit">Continue</button></div></noscript>'
            f'</form><script nonce="{_e(page.nonce)}">document.forms[0].submit()</script>'
        )
        return self.layout("Redirecting", body, page.nonce)
