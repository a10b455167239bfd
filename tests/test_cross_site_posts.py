"""The pages' forms refuse a post a browser says came from another site, even with a
valid CSRF token: ``Sec-Fetch-Site`` when the browser sends it, else ``Origin``.

Each of the four forms (sign-in, sign-out, consent, device) is filled in by the
signed-in person's own client, then posted with the headers under test; a refusal
is a 403 error page after which nothing has changed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from asgi_oauth import AuthorizationServer, Settings, User
from asgi_oauth.device import hash_user_code, normalize_user_code
from asgi_oauth.types import DEVICE_CODE

from .browser_helpers import (
    AUTHORIZE,
    CHALLENGE,
    FORM,
    LOGIN,
    PASSWORD,
    Form,
    RecordingStorage,
    consent_page,
    parse_page,
    redirect_target,
    sign_in,
)
from .conftest import ISSUER, REDIRECT_URI, Credentials, FakeClock
from .device_helpers import start_ok

pytestmark = pytest.mark.anyio

ISSUER_ORIGIN = "https://as.example"

#: What a browser sends with a post from a page of another origin.
CROSS_SITE = {
    "cross-site": {"sec-fetch-site": "cross-site"},
    "same-site": {"sec-fetch-site": "same-site"},
    "cross-site-origin-null": {"sec-fetch-site": "cross-site", "origin": "null"},
    "same-site-our-origin": {"sec-fetch-site": "same-site", "origin": ISSUER_ORIGIN},
    "unknown-site": {"sec-fetch-site": "elsewhere"},
    "evil-origin": {"origin": "https://evil.example"},
    "other-port": {"origin": "https://as.example:8443"},
    "other-scheme": {"origin": "http://as.example"},
    "subdomain": {"origin": "https://login.as.example"},
}
#: What a browser (or a client without fetch metadata) sends with our own forms.
SAME_ORIGIN = {
    "nothing": {},
    "same-origin": {"sec-fetch-site": "same-origin"},
    # Our pages' no-referrer makes a browser send Origin: null on their own forms.
    "same-origin-origin-null": {"sec-fetch-site": "same-origin", "origin": "null"},
    "none": {"sec-fetch-site": "none"},
    "origin-null": {"origin": "null"},
    "our-origin": {"origin": ISSUER_ORIGIN},
}


@dataclass
class World:
    http: httpx.AsyncClient
    storage: RecordingStorage
    public: Credentials
    alice: User
    user_code: str


@dataclass(frozen=True)
class PageForm:
    """One form of the pages: filled in and ready to post, and whether posting it did
    what it is for."""

    fill: Callable[[World], Awaitable[Form]]
    took_effect: Callable[[World], Awaitable[bool]]


@pytest.fixture
async def server(settings: Settings, clock: FakeClock) -> AsyncIterator[AuthorizationServer]:
    """The conftest server, on a store that records every code it saves."""
    server = AuthorizationServer(RecordingStorage(), settings, clock=clock)
    yield server
    await server.close()


@pytest.fixture
async def world(http: httpx.AsyncClient, server: AuthorizationServer, public: Credentials) -> World:
    assert isinstance(server.storage, RecordingStorage)
    alice = await server.create_user("alice", PASSWORD)
    registered = await server.register_client(name="TV", grant_types=[DEVICE_CODE], public=True)
    codes: dict[str, Any] = await start_ok(http, Credentials(registered.client.client_id, None))
    return World(http, server.storage, public, alice, codes["user_code"])


def authorization_params(world: World) -> dict[str, str]:
    return {
        "client_id": world.public.client_id,
        "response_type": "code",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        "scope": "read",
    }


async def is_signed_in(world: World) -> bool:
    """Ask the authorization endpoint: the consent page, or a trip to the login page."""
    response = await world.http.get(AUTHORIZE, params=authorization_params(world))
    if response.status_code == 303:
        assert redirect_target(response).startswith(LOGIN + "?")
        return False
    assert parse_page(response.text).title == "Authorize access", response.text
    return True


async def sign_in_form(world: World) -> Form:
    form = parse_page((await world.http.get(LOGIN)).text).form
    form.fields.update(username="alice", password=PASSWORD)
    return form


async def sign_out_form(world: World) -> Form:
    assert (await sign_in(world.http, "alice")).status_code == 200
    return parse_page((await world.http.get(ISSUER + "/logout")).text).form


async def is_signed_out(world: World) -> bool:
    return not await is_signed_in(world)


async def consent_form(world: World) -> Form:
    page = await consent_page(world.http, "alice", **authorization_params(world))
    form = parse_page(page.text).form
    form.fields.update(decision="approve", remember="yes")
    return form


async def consent_given(world: World) -> bool:
    consent = await world.storage.get_consent(world.alice.user_id, world.public.client_id)
    return bool(world.storage.codes) or consent is not None


async def device_form(world: World) -> Form:
    assert (await sign_in(world.http, "alice")).status_code == 200
    entry = parse_page((await world.http.get(ISSUER + "/device")).text).form
    entry.fields["user_code"] = world.user_code
    consent = await post(world.http, entry, {})
    assert "Authorize a device" in consent.text, consent.text
    form = parse_page(consent.text).form
    form.fields["decision"] = "approve"
    return form


async def device_decided(world: World) -> bool:
    user_code = normalize_user_code(world.user_code)
    assert user_code is not None
    device = await world.storage.get_device_authorization(hash_user_code(user_code))
    assert device is not None
    return device.status != "pending"


async def device_code_form(world: World) -> Form:
    """The device page's first form: the code typed, no decision yet."""
    assert (await sign_in(world.http, "alice")).status_code == 200
    form = parse_page((await world.http.get(ISSUER + "/device")).text).form
    form.fields["user_code"] = world.user_code
    return form


FORMS = {
    "sign-in": PageForm(sign_in_form, is_signed_in),
    "sign-out": PageForm(sign_out_form, is_signed_out),
    "consent": PageForm(consent_form, consent_given),
    "device": PageForm(device_form, device_decided),
}


async def post(http: httpx.AsyncClient, form: Form, headers: dict[str, str]) -> httpx.Response:
    assert form.method == "post"
    return await http.post(form.action, content=urlencode(form.fields), headers={**FORM, **headers})


@pytest.mark.parametrize("headers", CROSS_SITE.values(), ids=CROSS_SITE.keys())
@pytest.mark.parametrize("name", FORMS)
async def test_a_cross_site_post_is_refused_and_changes_nothing(
    world: World, name: str, headers: dict[str, str]
) -> None:
    page_form = FORMS[name]
    form = await page_form.fill(world)
    assert form.fields["csrf_token"]

    response = await post(world.http, form, headers)

    assert response.status_code == 403
    page = parse_page(response.text)
    assert page.title == "Please start again"
    assert "did not come from this site" in page.text
    assert "location" not in response.headers
    assert not response.headers.get_list("set-cookie")
    assert not await page_form.took_effect(world)


@pytest.mark.parametrize("headers", SAME_ORIGIN.values(), ids=SAME_ORIGIN.keys())
@pytest.mark.parametrize("name", FORMS)
async def test_a_same_origin_post_goes_through(
    world: World, name: str, headers: dict[str, str]
) -> None:
    page_form = FORMS[name]
    form = await page_form.fill(world)

    response = await post(world.http, form, headers)

    assert response.status_code in (200, 303), response.text
    assert await page_form.took_effect(world)


@pytest.mark.parametrize("headers", CROSS_SITE.values(), ids=CROSS_SITE.keys())
async def test_typing_a_device_code_from_another_site_is_refused(
    world: World, headers: dict[str, str]
) -> None:
    form = await device_code_form(world)
    response = await post(world.http, form, headers)
    assert response.status_code == 403
    assert parse_page(response.text).title == "Please start again"
    assert "Authorize a device" not in response.text


@pytest.mark.parametrize("headers", CROSS_SITE.values(), ids=CROSS_SITE.keys())
async def test_a_posted_authorization_request_from_another_site_still_works(
    world: World, headers: dict[str, str]
) -> None:
    # RFC 6749 §3.1: a client may POST the authorization request; only the decision
    # on the consent page is a form of ours.
    await sign_in(world.http, "alice")
    response = await world.http.post(
        AUTHORIZE,
        content=urlencode({**authorization_params(world), "redirect_uri": REDIRECT_URI}),
        headers={**FORM, **headers},
    )
    assert response.status_code == 200, response.text
    assert parse_page(response.text).title == "Authorize access"


@pytest.mark.parametrize("path", ["/login", "/logout", "/device"])
async def test_pages_opened_from_another_site_are_shown(world: World, path: str) -> None:
    response = await world.http.get(
        ISSUER + path, headers={"sec-fetch-site": "cross-site", "origin": "https://evil.example"}
    )
    assert response.status_code in (200, 303)
    assert "did not come from this site" not in response.text


@pytest.mark.parametrize(
    "settings",
    [Settings(issuer="https://AS.example:443/oauth2")],
    ids=["default-port-upper-case"],
)
async def test_the_issuers_origin_is_compared_as_a_browser_writes_it(world: World) -> None:
    form = await sign_in_form(world)
    response = await post(world.http, form, {"origin": ISSUER_ORIGIN})
    assert response.status_code == 200, response.text
    assert await is_signed_in(world)
