"""A scripted person for the page tests: reads pages with html.parser, posts their forms.

Nothing here follows redirects on its own: each step returns the raw response, so a
test sees every 303 and where it points before it decides to follow it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Message

from asgi_oauth import AuthorizationCode, Token
from asgi_oauth.pkce import s256_challenge
from asgi_oauth.storage import MemoryStorage

from .conftest import ISSUER

PASSWORD = "correct horse battery staple"
#: The verifier of RFC 7636 Appendix B, and its S256 challenge.
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = s256_challenge(VERIFIER)
FORM = {"content-type": "application/x-www-form-urlencoded"}

AUTHORIZE = ISSUER + "/authorize"
LOGIN = ISSUER + "/login"
TOKEN = ISSUER + "/token"


class RecordingStorage(MemoryStorage):
    """A memory store that remembers every code and token it was asked to save."""

    def __init__(self) -> None:
        super().__init__()
        self.codes: list[AuthorizationCode] = []
        self.tokens: list[Token] = []

    async def save_authorization_code(self, code: AuthorizationCode) -> None:
        self.codes.append(code)
        await super().save_authorization_code(code)

    async def save_tokens(self, tokens: Sequence[Token]) -> None:
        self.tokens.extend(tokens)
        await super().save_tokens(tokens)


# -- reading pages ----------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    #: Every named input with its value: what a browser submits (but no button).
    fields: dict[str, str] = field(default_factory=dict)
    #: (name, type, id) of every input, hidden ones included.
    inputs: list[tuple[str, str, str]] = field(default_factory=list)
    #: (name, value) of each submit button.
    buttons: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Page:
    title: str = ""
    forms: list[Form] = field(default_factory=list)
    labels_for: list[str] = field(default_factory=list)
    style_nonces: list[str] = field(default_factory=list)
    script_nonces: list[str] = field(default_factory=list)
    #: The visible text, whitespace collapsed.
    text: str = ""

    @property
    def form(self) -> Form:
        assert len(self.forms) == 1, self.forms
        return self.forms[0]


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._text: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.page.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
        elif tag == "input":
            form = self.page.forms[-1]
            name, kind = a.get("name", ""), a.get("type", "text")
            form.inputs.append((name, kind, a.get("id", "")))
            if kind == "checkbox":
                if "checked" in a:
                    form.fields[name] = a.get("value", "on")
            elif name:
                form.fields[name] = a.get("value", "")
        elif tag == "button" and a.get("name"):
            self.page.forms[-1].buttons.append((a["name"], a.get("value", "")))
        elif tag == "label" and "for" in a:
            self.page.labels_for.append(a["for"])
        elif tag in ("style", "script"):
            nonces = self.page.style_nonces if tag == "style" else self.page.script_nonces
            nonces.append(a.get("nonce", ""))
            self._in = tag
        elif tag == "title":
            self._in = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.page.title += data
        elif self._in is None:
            self._text.append(data)

    def close(self) -> None:
        super().close()
        self.page.text = " ".join(" ".join(self._text).split())


def parse_page(html: str) -> Page:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser.page


def csp(response: httpx.Response) -> dict[str, str]:
    """The Content-Security-Policy's directives: name -> its sources."""
    policy = response.headers["content-security-policy"]
    directives = (d.strip().partition(" ") for d in policy.split(";") if d.strip())
    return {name: value.strip() for name, _, value in directives}


# -- redirects --------------------------------------------------------------


def redirect_target(response: httpx.Response) -> str:
    assert response.status_code == 303, (response.status_code, response.text)
    return response.headers["location"]


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def fragment_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).fragment, keep_blank_values=True))


def without_query(url: str) -> str:
    return url.partition("?")[0].partition("#")[0]


def redirect_params(response: httpx.Response, base: str, *, mode: str = "query") -> dict[str, str]:
    """The parameters of a 303 to the client's ``base`` URI, in the query or the fragment."""
    target = redirect_target(response)
    assert without_query(target) == base, target
    if mode == "fragment":
        assert not urlsplit(target).query, target
        return fragment_of(target)
    assert "#" not in target, target
    return query_of(target)


# -- a person at the browser ------------------------------------------------


def authorize_url(**params: str) -> str:
    return f"{AUTHORIZE}?{urlencode(params)}"


async def submit(
    http: httpx.AsyncClient, form: Form, extra: Mapping[str, str | None] | None = None
) -> httpx.Response:
    """Post a form as a browser would, with ``extra`` set (None removes a field)."""
    data = dict(form.fields)
    for name, value in (extra or {}).items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    assert form.method == "post"
    return await http.post(form.action, content=urlencode(data), headers=FORM)


async def sign_in(
    http: httpx.AsyncClient, username: str, password: str = PASSWORD, *, next_url: str = ""
) -> httpx.Response:
    """Open the login page (from a redirect's URL, or plainly) and submit the form."""
    login = await http.get(next_url or LOGIN)
    assert login.status_code == 200, login.text
    return await submit(
        http, parse_page(login.text).form, {"username": username, "password": password}
    )


async def start(http: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await http.get(authorize_url(**params))


async def consent_page(
    http: httpx.AsyncClient, username: str, password: str = PASSWORD, **params: str
) -> httpx.Response:
    """Start an authorization, signing in on the way if asked to: the consent page."""
    response = await start(http, **params)
    if response.status_code == 303 and redirect_target(response).startswith(LOGIN + "?"):
        signed_in = await sign_in(http, username, password, next_url=redirect_target(response))
        response = await http.get(redirect_target(signed_in))
    assert response.status_code == 200, (response.status_code, response.headers, response.text)
    assert parse_page(response.text).title == "Authorize access"
    return response


async def decide(
    http: httpx.AsyncClient, page: httpx.Response, decision: str, *, remember: bool = False
) -> httpx.Response:
    form = parse_page(page.text).form
    return await submit(http, form, {"decision": decision, "remember": "yes" if remember else None})


async def approved(http: httpx.AsyncClient, username: str, **params: str) -> httpx.Response:
    """Sign in if needed, approve on the consent page: the authorization response."""
    page = await consent_page(http, username, **params)
    return await decide(http, page, "approve")


async def exchange(
    http: httpx.AsyncClient,
    code: str,
    *,
    client_id: str,
    client_secret: str | None = None,
    redirect_uri: str | None = None,
    verifier: str | None = None,
) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code}
    if redirect_uri is not None:
        data["redirect_uri"] = redirect_uri
    if verifier is not None:
        data["code_verifier"] = verifier
    if client_secret is None:
        data["client_id"] = client_id
        return await http.post(TOKEN, data=data)
    return await http.post(TOKEN, data=data, auth=(client_id, client_secret))


@asynccontextmanager
async def mounted(
    app: ASGIApp, base_url: str = "https://as.example"
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for ``app`` mounted at /oauth2 in Starlette, like the ``http`` fixture."""
    host = Starlette(routes=[Mount("/oauth2", app=app)])
    transport = httpx.ASGITransport(app=host)
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
        yield client


async def raw_request(
    app: ASGIApp,
    method: str,
    path: str,
    query: bytes = b"",
    body: bytes = b"",
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> tuple[int, dict[bytes, bytes], bytes]:
    """Drive an ASGI app by hand, for bytes httpx would clean up first."""
    chunks = [body]
    sent: list[Message] = []

    async def receive() -> Message:
        if not chunks:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks.pop(0), "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": list(headers),
        "query_string": query,
        "client": ("127.0.0.1", 50000),
    }
    await app(scope, receive, send)
    start_message = sent[0]
    body_out = b"".join(m.get("body", b"") for m in sent[1:])
    return start_message["status"], dict(start_message["headers"]), body_out
