"""A scripted person at a browser, for driving the built-in pages over real HTTP.

``Person`` follows an authorization URL the way a browser would (redirects,
cookies), signs in on the login page, and approves or denies on the consent
page, reading each form with ``html.parser`` and submitting it as a browser
does: its hidden fields, what the person typed, ticked checkboxes and the
button pressed. It stops at the first redirect that leaves the authorization
server (the client's callback) or at a page without a form (a message).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import urljoin, urlsplit

import httpx

Decision = Literal["approve", "deny"]

#: More steps than any flow here needs: a loop between pages fails instead of hanging.
MAX_STEPS = 20


@dataclass
class Form:
    """One ``<form>``: where it posts, its inputs, and its named submit buttons."""

    action: str
    method: str
    #: Successful controls without the buttons: hidden, text, password, ticked boxes.
    fields: dict[str, str] = field(default_factory=dict)
    #: Later controls of a name already in ``fields`` (a repeated ``resource``): sent too.
    repeats: list[tuple[str, str]] = field(default_factory=list)
    #: name -> the values of the submit buttons carrying that name.
    buttons: dict[str, list[str]] = field(default_factory=dict)
    input_types: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.title = ""
        self._in_title = False
        #: The sign-in buttons of upstream providers: (their text, where they go).
        self.providers: list[tuple[str, str]] = []
        self._provider_href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {name: value or "" for name, value in attrs}
        if tag == "a" and attr.get("class") == "provider":
            self._provider_href = attr.get("href", "")
        elif tag == "form":
            self.forms.append(Form(attr.get("action", ""), attr.get("method", "get").upper()))
        elif tag == "title":
            self._in_title = True
        elif tag in ("input", "button") and self.forms and "name" in attr:
            form, name = self.forms[-1], attr["name"]
            kind = attr.get("type", "text" if tag == "input" else "submit")
            if kind == "submit":
                form.buttons.setdefault(name, []).append(attr.get("value", ""))
            elif kind == "hidden" and name in form.fields:
                form.repeats.append((name, attr.get("value", "")))
            elif kind != "checkbox" or "checked" in attr:
                form.fields[name] = attr.get("value", "on" if kind == "checkbox" else "")
                form.input_types[name] = kind

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "a":
            self._provider_href = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if self._provider_href is not None:
            self.providers.append((data, self._provider_href))


@dataclass(frozen=True)
class Page:
    title: str
    forms: list[Form]
    providers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, html: str) -> Page:
        parser = _FormParser()
        parser.feed(html)
        parser.close()
        return cls(parser.title, parser.forms, parser.providers)


class Person:
    """Someone with an account on the server, using ``http`` as their browser."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        username: str,
        password: str,
        *,
        provider: str | None = None,
        elsewhere: tuple[str, ...] = (),
    ) -> None:
        self.http = http
        self.username = username
        self.password = password
        #: Sign in with this upstream provider's button ("Sign in with <provider>").
        self.provider = provider
        #: Other origins (an upstream provider's) the person browses through.
        self.elsewhere = {_origin(url) for url in elsewhere}
        #: The titles of the pages seen, in order.
        self.pages: list[str] = []

    async def authorize(self, url: str, decision: Decision = "approve") -> str:
        """Open the authorization URL, sign in, decide; the URL sent back to the client."""
        response = await self._browse(url, decision=decision)
        if not response.is_redirect:
            raise AssertionError(f"no redirect to the client; last page:\n{response.text}")
        return _location(response)

    async def verify_device(
        self, url: str, user_code: str | None = None, decision: Decision = "approve"
    ) -> str:
        """Open the verification URL, sign in, enter the code, decide; the last page's title.

        Without ``user_code`` the code is the one ``url`` (verification_uri_complete)
        filled in.
        """
        response = await self._browse(url, decision=decision, user_code=user_code)
        if response.is_redirect:
            raise AssertionError(f"unexpected redirect to {_location(response)}")
        return self.pages[-1]

    async def visit(self, url: str, decision: Decision = "approve") -> httpx.Response:
        """Browse from ``url`` as ``authorize`` does; the last response, an error page
        included (the client's redirect too, unfollowed)."""
        return await self._browse(url, decision=decision, errors_ok=True)

    async def _browse(
        self,
        url: str,
        *,
        decision: Decision,
        user_code: str | None = None,
        errors_ok: bool = False,
    ) -> httpx.Response:
        origin = _origin(url)
        response = await self.http.get(url)
        for _ in range(MAX_STEPS):
            if response.is_redirect:
                location = _location(response)
                if _origin(location) != origin and _origin(location) not in self.elsewhere:
                    return response
                response = await self.http.get(location)
                continue
            if response.status_code != 200 and errors_ok:
                return response
            if response.status_code != 200:
                raise AssertionError(
                    f"{response.status_code} from {response.url}:\n{response.text}"
                )
            page = Page.parse(response.text)
            self.pages.append(page.title)
            button = f"Sign in with {self.provider}"
            chosen = [href for text, href in page.providers if text == button]
            if chosen and _origin(str(response.url)) == origin:
                response = await self.http.get(urljoin(str(response.url), chosen[0]))
                continue
            if not page.forms:
                return response
            form = page.forms[0]
            data: dict[str, str | list[str]] = dict(form.fields)
            for name, value in form.repeats:
                first = data[name]
                data[name] = [*first, value] if isinstance(first, list) else [first, value]
            if "password" in form.input_types.values():
                data.update(username=self.username, password=self.password)
            elif "decision" in form.buttons:
                if decision not in form.buttons["decision"]:
                    raise AssertionError(f"no {decision!r} button on {page.title!r}")
                data["decision"] = decision
            elif "user_code" in form.fields:
                if user_code is not None:
                    data["user_code"] = user_code
            else:
                raise AssertionError(f"unknown form on {page.title!r}: {form}")
            response = await self.http.request(
                form.method, urljoin(str(response.url), form.action), data=data
            )
        raise AssertionError(f"still browsing after {MAX_STEPS} steps, at {response.url}")


def _location(response: httpx.Response) -> str:
    return urljoin(str(response.url), response.headers["location"])


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc
