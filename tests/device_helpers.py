"""Driving the device authorization grant (RFC 8628) over HTTP, as a device and a browser."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from asgi_oauth.app import OAuth2App
from asgi_oauth.types import DEVICE_CODE

from .conftest import Credentials

USERNAME = "alice"
PASSWORD = "correct horse battery staple"


@asynccontextmanager
async def browser_at(
    oauth_app: OAuth2App, address: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """Another HTTP client (own cookie jar) on the same app, as the ``http`` fixture mounts it,
    from ``address``."""
    app = Starlette(
        routes=[
            Mount("/oauth2", app=oauth_app),
            Route(oauth_app.metadata_path, oauth_app.metadata_app),
        ]
    )
    transport = httpx.ASGITransport(app=app, client=(address, 123))
    async with httpx.AsyncClient(transport=transport, base_url="https://as.example") as client:
        yield client


#: Sent even with an empty form (Basic and no scope), which httpx would send without it.
FORM = {"content-type": "application/x-www-form-urlencoded"}


def client_auth(creds: Credentials, form: dict[str, str]) -> dict[str, Any]:
    """``httpx`` keyword arguments: Basic for a confidential client, client_id for a public one."""
    if creds.client_secret is None:
        return {"data": {"client_id": creds.client_id, **form}, "headers": FORM}
    return {"data": form, "auth": creds.basic, "headers": FORM}


async def start(http: httpx.AsyncClient, creds: Credentials, **form: str) -> httpx.Response:
    """The device asks for codes (RFC 8628 §3.1)."""
    return await http.post("/oauth2/device_authorization", **client_auth(creds, form))


async def start_ok(http: httpx.AsyncClient, creds: Credentials, **form: str) -> dict[str, Any]:
    response = await start(http, creds, **form)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def poll(http: httpx.AsyncClient, creds: Credentials, device_code: str) -> httpx.Response:
    """The device polls the token endpoint (RFC 8628 §3.4)."""
    form = {"grant_type": DEVICE_CODE, "device_code": device_code}
    return await http.post("/oauth2/token", **client_auth(creds, form))


def error_of(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/json", response.text
    error: str = response.json()["error"]
    return error


def hidden(page: str, name: str) -> str:
    """The value of an ``<input name=...>`` of a page."""
    match = re.search(rf'name="{re.escape(name)}"[^>]*\bvalue="([^"]*)"', page)
    assert match is not None, f"no {name} field in {page}"
    return html.unescape(match.group(1))


async def sign_in(browser: httpx.AsyncClient, next_path: str = "") -> httpx.Response:
    """Sign in on the built-in login page; the answer (a 303 when ``next_path`` is ours)."""
    form = await browser.get("/oauth2/login", params={"next": next_path} if next_path else None)
    assert form.status_code == 200, form.text
    return await browser.post(
        "/oauth2/login",
        data={
            "csrf_token": hidden(form.text, "csrf_token"),
            "username": USERNAME,
            "password": PASSWORD,
            "next": next_path,
        },
    )


async def entry_page(browser: httpx.AsyncClient) -> httpx.Response:
    page = await browser.get("/oauth2/device")
    assert page.status_code == 200, page.text
    return page


async def submit_code(
    browser: httpx.AsyncClient, user_code: str, *, csrf: str | None = None, **extra: str
) -> httpx.Response:
    """POST the device page's form, with the session's CSRF token unless ``csrf`` is given."""
    if csrf is None:
        csrf = hidden((await entry_page(browser)).text, "csrf_token")
    return await browser.post(
        "/oauth2/device", data={"csrf_token": csrf, "user_code": user_code, **extra}
    )


async def decide(browser: httpx.AsyncClient, user_code: str, decision: str) -> httpx.Response:
    """Type the code, then press a button of the consent page that follows."""
    consent = await submit_code(browser, user_code)
    assert consent.status_code == 200, consent.text
    assert "Authorize a device" in consent.text
    return await browser.post(
        "/oauth2/device",
        data={
            "csrf_token": hidden(consent.text, "csrf_token"),
            "user_code": hidden(consent.text, "user_code"),
            "decision": decision,
        },
    )
