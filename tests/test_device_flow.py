"""The device authorization grant (RFC 8628) end to end over HTTP: the device
authorization endpoint (§3.1, §3.2), the verification page (§3.3), polling the
token endpoint (§3.4, §3.5), guessing user codes (§5.1, §6.1), concurrency.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from asgi_oauth import AuthorizationServer, DeviceAuthorization, Settings, Token, User
from asgi_oauth.app import OAuth2App
from asgi_oauth.device import (
    USER_CODE_ALPHABET,
    generate_user_code,
    hash_user_code,
    normalize_user_code,
)
from asgi_oauth.storage import MemoryStorage, SQLiteStorage
from asgi_oauth.types import DEVICE_CODE

from .conftest import ISSUER, Credentials, FakeClock
from .device_helpers import (
    FORM,
    PASSWORD,
    USERNAME,
    browser_at,
    decide,
    error_of,
    hidden,
    poll,
    sign_in,
    start,
    start_ok,
    submit_code,
)

pytestmark = pytest.mark.anyio

USER_CODE = re.compile(rf"[{USER_CODE_ALPHABET}]{{4}}-[{USER_CODE_ALPHABET}]{{4}}")
LIFETIME = Settings(issuer=ISSUER).device_code_lifetime
INTERVAL = Settings(issuer=ISSUER).device_poll_interval


def throttled_settings(limit: int = 3) -> Settings:
    return Settings(issuer=ISSUER, max_failed_attempts=limit)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
async def tv(server: AuthorizationServer) -> Credentials:
    """A confidential device client that may also refresh."""
    registered = await server.register_client(
        name="Living Room TV", grant_types=[DEVICE_CODE, "refresh_token"], scope=["read", "write"]
    )
    return Credentials(registered.client.client_id, registered.client_secret)


@pytest.fixture
async def cli(server: AuthorizationServer) -> Credentials:
    """A public device client (a command-line tool) without refresh tokens."""
    registered = await server.register_client(
        name="Terminal", grant_types=[DEVICE_CODE], scope=["read", "write"], public=True
    )
    return Credentials(registered.client.client_id, None)


@pytest.fixture
async def user(server: AuthorizationServer) -> User:
    return await server.create_user(USERNAME, PASSWORD)


@pytest.fixture
async def browser(http: httpx.AsyncClient, user: User) -> httpx.AsyncClient:
    """The ``http`` client, signed in as ``user``."""
    response = await sign_in(http)
    assert response.status_code == 200 and "Signed in" in response.text
    return http


@pytest.fixture
async def codes(http: httpx.AsyncClient, tv: Credentials) -> dict[str, Any]:
    """A pending device authorization of ``tv`` for the scope ``read``."""
    return await start_ok(http, tv, scope="read")


async def tokens_in_family(server: AuthorizationServer, user_code: str) -> int:
    """How many live tokens the grant of this user code has (revokes them to count)."""
    normalized = normalize_user_code(user_code)
    assert normalized is not None
    device = await server.storage.get_device_authorization(hash_user_code(normalized))
    assert device is not None
    return await server.storage.revoke_family(device.family_id, now=server.now())


async def assert_pending(http: httpx.AsyncClient, creds: Credentials, device_code: str) -> None:
    """Nothing was decided: the device is still told to wait."""
    response = await poll(http, creds, device_code)
    assert response.status_code == 400
    assert error_of(response) == "authorization_pending"


# -- the device authorization endpoint (§3.1, §3.2) ----------------------------------------


@pytest.mark.parametrize("which", ["tv", "cli"])
async def test_device_authorization_response(
    http: httpx.AsyncClient, tv: Credentials, cli: Credentials, which: str
) -> None:
    creds = tv if which == "tv" else cli
    response = await start(http, creds)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    assert USER_CODE.fullmatch(body["user_code"])
    assert len(body["device_code"]) >= 32 and body["user_code"] not in body["device_code"]
    assert body["verification_uri"] == ISSUER + "/device"
    assert body["verification_uri_complete"] == f"{ISSUER}/device?user_code={body['user_code']}"
    assert body["expires_in"] == LIFETIME
    assert body["interval"] == INTERVAL


async def test_each_request_gets_its_own_codes(http: httpx.AsyncClient, tv: Credentials) -> None:
    first, second = await start_ok(http, tv), await start_ok(http, tv)
    assert first["device_code"] != second["device_code"]
    assert first["user_code"] != second["user_code"]


@pytest.mark.parametrize(
    "settings",
    [Settings(issuer=ISSUER, device_code_lifetime=900, device_poll_interval=7)],
    ids=["custom"],
)
async def test_lifetime_and_interval_come_from_settings(
    http: httpx.AsyncClient, tv: Credentials
) -> None:
    body = await start_ok(http, tv)
    assert (body["expires_in"], body["interval"]) == (900, 7)


async def test_client_without_the_device_grant_is_unauthorized_client(
    http: httpx.AsyncClient, confidential: Credentials, public: Credentials
) -> None:
    for creds in (confidential, public):
        response = await start(http, creds)
        assert response.status_code == 400
        assert error_of(response) == "unauthorized_client"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"auth": ("ghost", "secret"), "data": {}},
        {"data": {"client_id": "ghost"}},
        {"data": {"client_id": "ghost", "client_secret": "secret"}},
        {"data": {}},
    ],
    ids=["basic", "public-id", "post-secret", "none"],
)
async def test_unknown_or_missing_client_is_invalid_client(
    http: httpx.AsyncClient, tv: Credentials, kwargs: dict[str, Any]
) -> None:
    response = await http.post("/oauth2/device_authorization", headers=FORM, **kwargs)
    assert response.status_code == 401
    assert error_of(response) == "invalid_client"


async def test_confidential_client_must_authenticate(
    http: httpx.AsyncClient, tv: Credentials
) -> None:
    by_id = await http.post("/oauth2/device_authorization", data={"client_id": tv.client_id})
    wrong = await http.post(
        "/oauth2/device_authorization", auth=(tv.client_id, "wrong"), headers=FORM
    )
    for response in (by_id, wrong):
        assert response.status_code == 401
        assert error_of(response) == "invalid_client"


@pytest.mark.parametrize("scope", ["admin", "read admin", "read\\x"])
async def test_scope_outside_the_clients_is_invalid_scope(
    http: httpx.AsyncClient, tv: Credentials, scope: str
) -> None:
    response = await start(http, tv, scope=scope)
    assert response.status_code == 400
    assert error_of(response) == "invalid_scope"


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b"scope=read&scope=write", {"content-type": "application/x-www-form-urlencoded"}, 400),
        (b'{"scope": "read"}', {"content-type": "application/json"}, 415),
        (b"scope=read", {}, 415),
    ],
    ids=["repeated", "json", "no-content-type"],
)
async def test_malformed_requests_are_invalid_request(
    http: httpx.AsyncClient, tv: Credentials, content: bytes, headers: dict[str, str], status: int
) -> None:
    response = await http.post(
        "/oauth2/device_authorization", content=content, headers=headers, auth=tv.basic
    )
    assert response.status_code == status
    assert error_of(response) == "invalid_request"
    get = await http.get("/oauth2/device_authorization")
    assert get.status_code == 405 and get.headers["allow"] == "POST"


async def test_metadata_advertises_the_device_grant_by_default(http: httpx.AsyncClient) -> None:
    metadata = (await http.get("/oauth2/.well-known/oauth-authorization-server")).json()
    assert metadata["device_authorization_endpoint"] == ISSUER + "/device_authorization"
    assert DEVICE_CODE in metadata["grant_types_supported"]


@pytest.mark.parametrize(
    "settings",
    [
        Settings(
            issuer=ISSUER,
            enabled_grants=frozenset({"authorization_code", "client_credentials", "refresh_token"}),
        )
    ],
    ids=["no-device-grant"],
)
async def test_without_the_device_grant_nothing_of_it_is_served(
    http: httpx.AsyncClient, confidential: Credentials
) -> None:
    endpoint = await http.post(
        "/oauth2/device_authorization", auth=confidential.basic, headers=FORM
    )
    assert endpoint.status_code == 404
    for method in ("GET", "POST"):
        page = await http.request(method, "/oauth2/device")
        assert page.status_code == 404
    metadata = (await http.get("/oauth2/.well-known/oauth-authorization-server")).json()
    assert "device_authorization_endpoint" not in metadata
    assert DEVICE_CODE not in metadata["grant_types_supported"]
    token = await http.post(
        "/oauth2/token",
        data={"grant_type": DEVICE_CODE, "device_code": "x"},
        auth=confidential.basic,
    )
    assert token.status_code == 400 and error_of(token) == "unsupported_grant_type"


# -- polling the token endpoint (§3.4, §3.5) ------------------------------------------------


async def test_pending_until_the_user_decides(
    http: httpx.AsyncClient, tv: Credentials, codes: dict[str, Any]
) -> None:
    response = await poll(http, tv, codes["device_code"])
    assert response.status_code == 400
    assert response.headers["cache-control"] == "no-store"
    assert error_of(response) == "authorization_pending"


async def test_polling_at_the_interval_stays_pending(
    http: httpx.AsyncClient, tv: Credentials, codes: dict[str, Any], clock: FakeClock
) -> None:
    for _ in range(3):
        await assert_pending(http, tv, codes["device_code"])
        clock.advance(INTERVAL)


@pytest.mark.parametrize(
    ("wait", "error"),
    [(INTERVAL, "slow_down"), (INTERVAL + 4, "slow_down"), (INTERVAL + 5, "authorization_pending")],
)
async def test_slow_down_adds_five_seconds_to_the_interval(
    http: httpx.AsyncClient,
    tv: Credentials,
    codes: dict[str, Any],
    clock: FakeClock,
    wait: int,
    error: str,
) -> None:
    await assert_pending(http, tv, codes["device_code"])
    clock.advance(INTERVAL - 1)
    hasty = await poll(http, tv, codes["device_code"])
    assert hasty.status_code == 400 and error_of(hasty) == "slow_down"
    clock.advance(wait)
    assert error_of(await poll(http, tv, codes["device_code"])) == error


async def test_every_hasty_poll_adds_five_more_seconds(
    http: httpx.AsyncClient, tv: Credentials, codes: dict[str, Any], clock: FakeClock
) -> None:
    device_code = codes["device_code"]
    await assert_pending(http, tv, device_code)
    clock.advance(1)
    assert error_of(await poll(http, tv, device_code)) == "slow_down"  # interval now 10
    clock.advance(INTERVAL)
    assert error_of(await poll(http, tv, device_code)) == "slow_down"  # 5 < 10: now 15
    clock.advance(INTERVAL + 9)
    assert error_of(await poll(http, tv, device_code)) == "slow_down"  # 14 < 15: now 20
    clock.advance(INTERVAL + 15)
    await assert_pending(http, tv, device_code)


async def test_access_denied_after_the_user_denies(
    http: httpx.AsyncClient, browser: httpx.AsyncClient, tv: Credentials, codes: dict[str, Any]
) -> None:
    denied = await decide(browser, codes["user_code"], "deny")
    assert denied.status_code == 200 and "Request denied" in denied.text
    for _ in range(2):  # and stays denied
        response = await poll(http, tv, codes["device_code"])
        assert response.status_code == 400 and error_of(response) == "access_denied"


async def test_expired_token_after_the_lifetime(
    http: httpx.AsyncClient, tv: Credentials, codes: dict[str, Any], clock: FakeClock
) -> None:
    clock.advance(LIFETIME - 1)
    await assert_pending(http, tv, codes["device_code"])
    clock.advance(INTERVAL)
    response = await poll(http, tv, codes["device_code"])
    assert response.status_code == 400 and error_of(response) == "expired_token"


async def test_approval_too_late_gives_expired_token_not_tokens(
    http: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    server: AuthorizationServer,
    tv: Credentials,
    codes: dict[str, Any],
    clock: FakeClock,
) -> None:
    consent = await submit_code(browser, codes["user_code"])
    assert consent.status_code == 200
    clock.advance(LIFETIME)
    late = await browser.post(
        "/oauth2/device",
        data={
            "csrf_token": hidden(consent.text, "csrf_token"),
            "user_code": hidden(consent.text, "user_code"),
            "decision": "approve",
        },
    )
    assert late.status_code == 400 and "expired" in late.text
    response = await poll(http, tv, codes["device_code"])
    assert error_of(response) == "expired_token"
    assert await tokens_in_family(server, codes["user_code"]) == 0


async def test_approval_gives_tokens_for_the_user_and_scope(
    http: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    server: AuthorizationServer,
    tv: Credentials,
    resource_server: Credentials,
    user: User,
    codes: dict[str, Any],
) -> None:
    approved = await decide(browser, codes["user_code"], "approve")
    assert approved.status_code == 200 and "Device connected" in approved.text
    response = await poll(http, tv, codes["device_code"])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    assert body["token_type"] == "Bearer" and body["scope"] == "read"
    introspected = await http.post(
        "/oauth2/introspect", data={"token": body["access_token"]}, auth=resource_server.basic
    )
    facts = introspected.json()
    assert facts["active"] is True
    assert (facts["sub"], facts["client_id"], facts["scope"]) == (
        user.user_id,
        tv.client_id,
        "read",
    )
    refresh = await server.introspect_token(body["refresh_token"])
    assert refresh.active and refresh.sub == user.user_id and refresh.scope == {"read"}


async def test_public_client_without_refresh_grant_gets_an_access_token_only(
    http: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    server: AuthorizationServer,
    cli: Credentials,
    user: User,
) -> None:
    codes = await start_ok(http, cli)  # no scope: everything the client may have
    await decide(browser, codes["user_code"], "approve")
    response = await poll(http, cli, codes["device_code"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert "refresh_token" not in body
    assert set(body["scope"].split()) == {"read", "write"}
    facts = await server.introspect_token(body["access_token"])
    assert facts.active and facts.sub == user.user_id and facts.client_id == cli.client_id


async def test_a_device_code_is_exchanged_once(
    http: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    server: AuthorizationServer,
    tv: Credentials,
    codes: dict[str, Any],
    clock: FakeClock,
) -> None:
    await decide(browser, codes["user_code"], "approve")
    assert (await poll(http, tv, codes["device_code"])).status_code == 200
    for wait in (0, INTERVAL * 4):
        clock.advance(wait)
        again = await poll(http, tv, codes["device_code"])
        assert again.status_code == 400 and error_of(again) == "invalid_grant"
    assert await tokens_in_family(server, codes["user_code"]) == 2  # the first pair only


async def test_another_clients_device_code_is_invalid_grant(
    http: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    server: AuthorizationServer,
    tv: Credentials,
    cli: Credentials,
    codes: dict[str, Any],
    clock: FakeClock,
) -> None:
    thief = await poll(http, cli, codes["device_code"])
    assert thief.status_code == 400 and error_of(thief) == "invalid_grant"
    await decide(browser, codes["user_code"], "approve")
    clock.advance(INTERVAL)
    thief = await poll(http, cli, codes["device_code"])
    assert thief.status_code == 400 and error_of(thief) == "invalid_grant"
    clock.advance(INTERVAL)
    assert (await poll(http, tv, codes["device_code"])).status_code == 200  # still redeemable


async def test_another_clients_poll_does_not_slow_the_device_down(
    http: httpx.AsyncClient, tv: Credentials, cli: Credentials, codes: dict[str, Any]
) -> None:
    for _ in range(3):
        thief = await poll(http, cli, codes["device_code"])
        assert error_of(thief) == "invalid_grant"
    await assert_pending(http, tv, codes["device_code"])  # the device's first poll


@pytest.mark.parametrize("device_code", ["nope", "x" * 43])
async def test_unknown_device_code_is_invalid_grant(
    http: httpx.AsyncClient, tv: Credentials, codes: dict[str, Any], device_code: str
) -> None:
    response = await poll(http, tv, device_code)
    assert response.status_code == 400 and error_of(response) == "invalid_grant"


async def test_poll_without_a_device_code_is_invalid_request(
    http: httpx.AsyncClient, tv: Credentials
) -> None:
    response = await http.post("/oauth2/token", data={"grant_type": DEVICE_CODE}, auth=tv.basic)
    assert response.status_code == 400 and error_of(response) == "invalid_request"


async def test_client_without_the_device_grant_cannot_poll(
    http: httpx.AsyncClient, confidential: Credentials, codes: dict[str, Any]
) -> None:
    response = await poll(http, confidential, codes["device_code"])
    assert response.status_code == 400 and error_of(response) == "unauthorized_client"


# -- the verification page (§3.3) -----------------------------------------------------------


async def test_signing_in_leads_back_to_the_prefilled_code(
    http: httpx.AsyncClient, user: User, codes: dict[str, Any]
) -> None:
    complete = urlsplit(codes["verification_uri_complete"])
    first = await http.get(complete.path, params=parse_qs(complete.query))
    assert first.status_code == 303
    login = urlsplit(first.headers["location"])
    assert f"https://{login.netloc}{login.path}" == ISSUER + "/login"
    next_path = f"/device?user_code={codes['user_code']}"
    assert parse_qs(login.query) == {"next": [next_path]}

    form = await http.get(first.headers["location"])
    assert hidden(form.text, "next") == next_path
    signed_in = await http.post(
        "/oauth2/login",
        data={
            "csrf_token": hidden(form.text, "csrf_token"),
            "username": USERNAME,
            "password": PASSWORD,
            "next": hidden(form.text, "next"),
        },
    )
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == codes["verification_uri_complete"]

    page = await http.get(signed_in.headers["location"])
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert hidden(page.text, "user_code") == codes["user_code"]
    assert len(hidden(page.text, "csrf_token")) >= 32


async def test_the_page_escapes_what_it_echoes(browser: httpx.AsyncClient) -> None:
    page = await browser.get("/oauth2/device", params={"user_code": '"><script>x()</script>'})
    assert page.status_code == 200
    assert "<script>x()" not in page.text
    assert hidden(page.text, "user_code") == '"><script>x()</script>'


async def test_posting_without_signing_in_goes_to_the_login_page(
    http: httpx.AsyncClient, tv: Credentials, codes: dict[str, Any]
) -> None:
    response = await http.post(
        "/oauth2/device",
        data={"user_code": codes["user_code"], "decision": "approve", "csrf_token": "x"},
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith(ISSUER + "/login?")
    await assert_pending(http, tv, codes["device_code"])


@pytest.mark.parametrize(
    "typed",
    [str.lower, lambda c: c.replace("-", ""), lambda c: c.replace("-", " "), lambda c: f" {c} "],
    ids=["lower-case", "no-dash", "space", "padded"],
)
async def test_the_code_as_people_type_it_leads_to_the_consent_page(
    http: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    tv: Credentials,
    codes: dict[str, Any],
    typed: Callable[[str], str],
) -> None:
    consent = await submit_code(browser, typed(codes["user_code"]))
    assert consent.status_code == 200, consent.text
    assert "Authorize a device" in consent.text
    assert "Living Room TV" in consent.text and "Use “read”" in consent.text
    assert "Use “write”" not in consent.text
    assert "signed in as alice" in consent.text
    # §5.4: the person can compare the code with the one their device shows.
    shown = re.search(r'device showing <code class="user-code">([^<]*)</code>', consent.text)
    assert shown is not None
    assert normalize_user_code(shown.group(1)) == normalize_user_code(codes["user_code"])
    await assert_pending(http, tv, codes["device_code"])  # showing the page decides nothing


@pytest.mark.parametrize(
    "typed",
    [lambda c: c.lower().replace("-", ""), lambda c: c.replace("-", " ").lower()],
    ids=["lower-no-dash", "lower-space"],
)
async def test_approving_a_code_typed_loosely_connects_the_device(
    http: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    tv: Credentials,
    codes: dict[str, Any],
    typed: Callable[[str], str],
) -> None:
    done = await decide(browser, typed(codes["user_code"]), "approve")
    assert done.status_code == 200 and "Device connected" in done.text
    assert (await poll(http, tv, codes["device_code"])).status_code == 200


def another_code(user_code: str) -> str:
    while (other := generate_user_code()) == user_code:
        pass
    return other


@pytest.mark.parametrize("wrong", ["other", "hello", "WDJB-MJH", "AAAA-AAAA"])
async def test_a_wrong_code_shows_the_entry_page_again(
    http: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    tv: Credentials,
    codes: dict[str, Any],
    wrong: str,
) -> None:
    typed = another_code(codes["user_code"]) if wrong == "other" else wrong
    response = await submit_code(browser, typed, decision="approve")
    assert response.status_code == 400
    assert "Connect a device" in response.text and 'role="alert"' in response.text
    assert "not valid" in response.text
    assert hidden(response.text, "user_code") == typed
    assert hidden(response.text, "csrf_token")
    await assert_pending(http, tv, codes["device_code"])


async def test_an_expired_code_is_refused(
    browser: httpx.AsyncClient, codes: dict[str, Any], clock: FakeClock
) -> None:
    clock.advance(LIFETIME)
    response = await submit_code(browser, codes["user_code"])
    assert response.status_code == 400 and "expired" in response.text
    assert "Authorize a device" not in response.text


@pytest.mark.parametrize("first", ["approve", "deny"])
@pytest.mark.parametrize("second", ["show", "approve", "deny"])
async def test_a_decided_code_cannot_be_used_again(
    http: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    tv: Credentials,
    codes: dict[str, Any],
    first: str,
    second: str,
) -> None:
    assert (await decide(browser, codes["user_code"], first)).status_code == 200
    extra = {} if second == "show" else {"decision": second}
    again = await submit_code(browser, codes["user_code"], **extra)
    assert again.status_code == 400 and "not valid" in again.text
    response = await poll(http, tv, codes["device_code"])
    assert response.status_code == (200 if first == "approve" else 400)
    if first == "deny":
        assert error_of(response) == "access_denied"


@pytest.mark.parametrize("csrf", ["", "forged", "other-session"])
async def test_a_decision_without_the_sessions_csrf_token_is_refused(
    http: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    oauth_app: OAuth2App,
    tv: Credentials,
    codes: dict[str, Any],
    csrf: str,
) -> None:
    if csrf == "other-session":
        async with browser_at(oauth_app) as other:
            csrf = hidden((await other.get("/oauth2/login")).text, "csrf_token")
    for decision in ("approve", "deny"):
        response = await submit_code(browser, codes["user_code"], csrf=csrf, decision=decision)
        assert response.status_code == 403
        assert "Authorize a device" not in response.text
    await assert_pending(http, tv, codes["device_code"])


@pytest.mark.parametrize("decision", ["maybe", "APPROVE", "yes"])
async def test_an_unknown_decision_is_400_and_decides_nothing(
    http: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    tv: Credentials,
    codes: dict[str, Any],
    decision: str,
) -> None:
    response = await submit_code(browser, codes["user_code"], decision=decision)
    assert response.status_code == 400
    assert "approve or deny" in response.text
    await assert_pending(http, tv, codes["device_code"])
    done = await decide(browser, codes["user_code"], "approve")  # still decidable
    assert "Device connected" in done.text


# -- guessing user codes (§5.1) ----------------------------------------------------------------


@pytest.mark.parametrize("settings", [throttled_settings(3)], ids=["limit-3"])
async def test_guessing_is_throttled_per_address(
    http: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    oauth_app: OAuth2App,
    settings: Settings,
    tv: Credentials,
    codes: dict[str, Any],
) -> None:
    for _ in range(settings.max_failed_attempts):
        wrong = await submit_code(browser, another_code(codes["user_code"]))
        assert wrong.status_code == 400
    for extra in ({}, {"decision": "approve"}):
        right = await submit_code(browser, codes["user_code"], **extra)
        assert right.status_code == 429
        retry_after = int(right.headers["retry-after"])
        assert 0 < retry_after <= settings.failed_attempts_window + 1
        assert "Authorize a device" not in right.text and "too many" in right.text
    await assert_pending(http, tv, codes["device_code"])

    async with browser_at(oauth_app, "10.0.0.2") as elsewhere:
        assert (await sign_in(elsewhere)).status_code == 200
        consent = await submit_code(elsewhere, codes["user_code"])
        assert consent.status_code == 200 and "Authorize a device" in consent.text


@pytest.mark.parametrize("settings", [throttled_settings(3)], ids=["limit-3"])
async def test_a_decided_code_counts_as_a_wrong_guess(
    http: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    settings: Settings,
    tv: Credentials,
    codes: dict[str, Any],
) -> None:
    # A decided code counts as a wrong guess: it no longer names a pending request.
    other = await start_ok(http, tv)
    await decide(browser, other["user_code"], "deny")
    for _ in range(settings.max_failed_attempts):
        assert (await submit_code(browser, other["user_code"])).status_code == 400
    assert (await submit_code(browser, codes["user_code"])).status_code == 429


@pytest.mark.parametrize("settings", [throttled_settings(3)], ids=["limit-3"])
async def test_a_code_of_ones_own_does_not_reset_the_guess_count(
    http: httpx.AsyncClient,
    browser: httpx.AsyncClient,
    settings: Settings,
    tv: Credentials,
    cli: Credentials,
    codes: dict[str, Any],
) -> None:
    own = await start_ok(http, cli)  # a public client: no secret needed
    for _ in range(2):
        for _ in range(settings.max_failed_attempts - 1):
            await submit_code(browser, another_code(codes["user_code"]))
        await submit_code(browser, own["user_code"])  # 200 now, and resets the count
    victim = await submit_code(browser, codes["user_code"])
    assert victim.status_code == 429  # found by guessing: must be throttled


# -- user codes (§6.1) -------------------------------------------------------------------------


def test_the_alphabet_has_no_vowels_or_digits() -> None:
    assert len(set(USER_CODE_ALPHABET)) == len(USER_CODE_ALPHABET) == 20
    assert USER_CODE_ALPHABET.isascii() and USER_CODE_ALPHABET.isupper()
    assert not set(USER_CODE_ALPHABET) & set("AEIOUY0123456789")


def test_generated_codes_are_eight_letters_from_the_alphabet() -> None:
    generated = [generate_user_code() for _ in range(2000)]
    for code in generated:
        assert USER_CODE.fullmatch(code), code
        assert normalize_user_code(code) == code.replace("-", "")
    assert len(set(generated)) > 1990  # 20**8 codes: repeats are rare
    assert set("".join(generated)) == {*USER_CODE_ALPHABET, "-"}  # every letter is used


@pytest.mark.parametrize(
    "typed",
    ["WDJB-MJHT", "WDJBMJHT", "wdjb-mjht", "wdjbmjht", "WdJb-mJhT", "WDJB MJHT", " wdjb-mjht\n"],
)
def test_normalize_accepts_the_code_in_any_case_with_or_without_dash(typed: str) -> None:
    assert normalize_user_code(typed) == "WDJBMJHT"


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "-",
        "WDJB-MJH",
        "WDJB-MJHTX",
        "WDJB-MJH7",
        "WDJB-MJHA",
        "AEIO-UAEI",
        "WDJB_MJHT",
        "WDJB.MJHT",
        "WDJB-MJHÉ",
        "\uff37\uff24\uff2a\uff22-\uff2d\uff2a\uff28\uff34",  # full-width WDJB-MJHT
        "WDJB-MJHT;",
        "WDJB%2DMJHT",
    ],
)
def test_normalize_rejects_junk(typed: str) -> None:
    assert normalize_user_code(typed) is None


@pytest.mark.parametrize("typed", ["WDJB-MJH\u017f", "WDJB-MJ\ufb00"])
def test_normalize_rejects_letters_that_only_upper_case_to_the_alphabet(typed: str) -> None:
    assert normalize_user_code(typed) is None


def test_user_codes_are_stored_by_the_hash_of_their_canonical_form() -> None:
    canonical = normalize_user_code("wdjb mjht")
    assert canonical == "WDJBMJHT"
    assert hash_user_code(canonical) == hash_user_code("WDJBMJHT")
    assert hash_user_code(canonical) != hash_user_code("WDJB-MJHT")
    assert "WDJBMJHT" not in hash_user_code(canonical)


# -- concurrency --------------------------------------------------------------------------------


class RacingMemoryStorage(MemoryStorage):
    """Yields to the event loop before each device step, as a database round trip would,
    so concurrent requests interleave; counts the redemptions attempted."""

    redeem_attempts = 0

    async def poll_device_authorization(
        self, device_code_hash: str, *, client_id: str, now: int
    ) -> DeviceAuthorization | None:
        await asyncio.sleep(0)
        return await super().poll_device_authorization(
            device_code_hash, client_id=client_id, now=now
        )

    async def redeem_device_code(
        self, device_code_hash: str, *, tokens: Sequence[Token], now: int
    ) -> bool:
        self.redeem_attempts += 1
        await asyncio.sleep(0)
        return await super().redeem_device_code(device_code_hash, tokens=tokens, now=now)


class CountingSQLiteStorage(SQLiteStorage):
    redeem_attempts = 0

    async def redeem_device_code(
        self, device_code_hash: str, *, tokens: Sequence[Token], now: int
    ) -> bool:
        self.redeem_attempts += 1
        return await super().redeem_device_code(device_code_hash, tokens=tokens, now=now)


RacingStorage = RacingMemoryStorage | CountingSQLiteStorage


@pytest.fixture(params=["memory", "sqlite"])
def racing_store(request: pytest.FixtureRequest, tmp_path: Path) -> RacingStorage:
    if request.param == "memory":
        return RacingMemoryStorage()
    return CountingSQLiteStorage(tmp_path / "db")


@pytest.fixture
async def any_store(
    racing_store: RacingStorage, clock: FakeClock
) -> AsyncIterator[AuthorizationServer]:
    server = AuthorizationServer(racing_store, Settings(issuer=ISSUER), clock=clock)
    yield server
    await server.close()


@pytest.fixture
async def store_app(any_store: AuthorizationServer) -> AsyncIterator[httpx.AsyncClient]:
    await any_store.create_user(USERNAME, PASSWORD)
    async with browser_at(OAuth2App(any_store)) as client:
        assert (await sign_in(client)).status_code == 200
        yield client


async def register_tv(server: AuthorizationServer) -> Credentials:
    registered = await server.register_client(
        name="TV", grant_types=[DEVICE_CODE, "refresh_token"], scope=["read"]
    )
    return Credentials(registered.client.client_id, registered.client_secret)


async def test_concurrent_polls_of_an_approved_code_give_one_token_set(
    any_store: AuthorizationServer, store_app: httpx.AsyncClient, racing_store: RacingStorage
) -> None:
    tv = await register_tv(any_store)
    codes = await start_ok(store_app, tv)
    assert "Device connected" in (await decide(store_app, codes["user_code"], "approve")).text
    responses = await asyncio.gather(
        *(poll(store_app, tv, codes["device_code"]) for _ in range(20))
    )
    winners = [r for r in responses if r.status_code == 200]
    assert len(winners) == 1
    losers = {error_of(r) for r in responses if r.status_code != 200}
    assert losers <= {"invalid_grant", "slow_down"}
    assert all(r.status_code in (200, 400) for r in responses)
    assert racing_store.redeem_attempts > 1  # the polls did race to the exchange
    assert await tokens_in_family(any_store, codes["user_code"]) == 2


async def test_concurrent_polls_of_a_pending_code_record_each_poll(
    any_store: AuthorizationServer, store_app: httpx.AsyncClient
) -> None:
    tv = await register_tv(any_store)
    codes = await start_ok(store_app, tv)
    responses = await asyncio.gather(
        *(poll(store_app, tv, codes["device_code"]) for _ in range(20))
    )
    errors = sorted(error_of(r) for r in responses)
    assert errors == ["authorization_pending"] + ["slow_down"] * 19


async def test_concurrent_decisions_have_one_winner(
    any_store: AuthorizationServer, store_app: httpx.AsyncClient
) -> None:
    tv = await register_tv(any_store)
    codes = await start_ok(store_app, tv)
    consent = await submit_code(store_app, codes["user_code"])
    form = {"csrf_token": hidden(consent.text, "csrf_token"), "user_code": codes["user_code"]}
    responses = await asyncio.gather(
        *(
            store_app.post("/oauth2/device", data={**form, "decision": decision})
            for decision in ["approve", "deny"] * 5
        )
    )
    done = [r for r in responses if r.status_code == 200]
    assert len(done) == 1
    assert all(r.status_code == 400 for r in responses if r is not done[0])
    response = await poll(store_app, tv, codes["device_code"])
    if "Device connected" in done[0].text:
        assert response.status_code == 200
    else:
        assert "Request denied" in done[0].text and error_of(response) == "access_denied"
