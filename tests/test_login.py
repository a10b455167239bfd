"""The built-in sign-in page and its session cookie, over HTTP.

Whether someone is signed in is always asked of the authorization endpoint itself:
a signed-in person sees the consent page, anyone else is sent to sign in.
"""

from __future__ import annotations

import dataclasses
import time
from urllib.parse import urlencode

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from asgi_oauth import AuthorizationServer, Settings, User
from asgi_oauth.app import OAuth2App
from asgi_oauth.app.sessions import credential_of
from asgi_oauth.crypto import hash_password, hash_token

from .browser_helpers import (
    CHALLENGE,
    FORM,
    LOGIN,
    PASSWORD,
    authorize_url,
    mounted,
    parse_page,
    redirect_target,
    sign_in,
    submit,
)
from .conftest import ISSUER, Credentials

pytestmark = pytest.mark.anyio

#: The session cookie of an https issuer: at Path=/, its name says so (RFC 6265bis §4.1.3.2).
COOKIE = "__Host-asgi_oauth_session"
#: Its name under insecure_transport, and what another application might call its own.
PLAIN_COOKIE = "asgi_oauth_session"
KEY = "k" * 40


@pytest.fixture
async def alice(server: AuthorizationServer) -> User:
    return await server.create_user("alice", PASSWORD)


def request_of(client: Credentials) -> str:
    return authorize_url(
        client_id=client.client_id,
        response_type="code",
        code_challenge=CHALLENGE,
        code_challenge_method="S256",
    )


async def is_signed_in(http: httpx.AsyncClient, client: Credentials) -> bool:
    """Ask the authorization endpoint: the consent page, or a trip to the login page."""
    response = await http.get(request_of(client))
    if response.status_code == 303:
        assert redirect_target(response).startswith(LOGIN + "?")
        return False
    assert response.status_code == 200, response.text
    assert parse_page(response.text).title == "Authorize access"
    return True


def set_cookie(response: httpx.Response, name: str = COOKIE) -> tuple[str, dict[str, str]]:
    """The session cookie a response sets: its value and its attributes (lower-cased)."""
    headers = response.headers.get_list("set-cookie")
    (header,) = [h for h in headers if h.startswith(name + "=")]
    value, *attributes = (part.strip() for part in header.split(";"))
    parsed = {}
    for attribute in attributes:
        name, _, arg = attribute.partition("=")
        parsed[name.lower()] = arg
    return value.partition("=")[2], parsed


def cookie_value(http: httpx.AsyncClient) -> str:
    value = http.cookies.get(COOKIE, domain="as.example", path="/")
    assert value is not None
    return value


def old_cookie(data: dict[str, object], age: int, key: str = KEY) -> str:
    """A session cookie signed ``age`` seconds ago, as the server would have signed it."""

    class Signer(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age

    serializer = URLSafeTimedSerializer(key, salt="asgi_oauth.session", signer=Signer)
    return serializer.dumps(data)


# -- signing in ----------------------------------------------------------------


async def test_login_form_has_a_csrf_token_and_keeps_next(http: httpx.AsyncClient) -> None:
    response = await http.get(LOGIN, params={"next": "/authorize?client_id=x"})
    assert response.status_code == 200
    page = parse_page(response.text)
    assert page.title == "Sign in"
    assert page.form.action == LOGIN and page.form.method == "post"
    assert page.form.fields["next"] == "/authorize?client_id=x"
    assert len(page.form.fields["csrf_token"]) >= 32
    assert page.form.fields["csrf_token"] not in set_cookie(response)[0]  # only signed, not shown


async def test_sign_in_without_next_shows_signed_in(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    response = await sign_in(http, "alice")
    assert response.status_code == 200
    assert "location" not in response.headers
    assert parse_page(response.text).title == "Signed in"
    assert "You are signed in as alice." in parse_page(response.text).text
    assert await is_signed_in(http, public)


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong"), ("nobody", PASSWORD), ("nobody", "wrong"), ("ALICE", PASSWORD)],
)
async def test_wrong_credentials_say_the_same_and_sign_no_one_in(
    http: httpx.AsyncClient, public: Credentials, alice: User, username: str, password: str
) -> None:
    response = await sign_in(http, username, password)
    assert response.status_code == 400
    assert "location" not in response.headers
    page = parse_page(response.text)
    assert page.title == "Sign in"
    assert '<p class="error" role="alert">invalid username or password</p>' in response.text
    assert page.form.fields["username"] == username  # kept, the password is not
    assert "password" not in page.form.fields or page.form.fields["password"] == ""
    assert not response.headers.get_list("set-cookie")
    assert not await is_signed_in(http, public)


@pytest.mark.parametrize("settings", [Settings(issuer=ISSUER, secret_key=KEY)], ids=["known-key"])
async def test_failed_sign_in_leaves_the_cookie_without_a_user(
    http: httpx.AsyncClient, alice: User
) -> None:
    await sign_in(http, "alice", "wrong")
    data = URLSafeTimedSerializer(KEY, salt="asgi_oauth.session").loads(cookie_value(http))
    assert set(data) == {"c"}
    await sign_in(http, "alice")
    data = URLSafeTimedSerializer(KEY, salt="asgi_oauth.session").loads(cookie_value(http))
    assert data["u"] == alice.user_id


@pytest.mark.parametrize(
    "settings", [Settings(issuer=ISSUER, max_failed_attempts=3)], ids=["three"]
)
async def test_sign_in_is_throttled_after_max_failed_attempts(
    http: httpx.AsyncClient, server: AuthorizationServer, public: Credentials, alice: User
) -> None:
    for _ in range(3):
        assert (await sign_in(http, "alice", "wrong")).status_code == 400
    throttled = await sign_in(http, "alice")  # even the right password now
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0
    assert parse_page(throttled.text).title == "Sign in"
    assert "too many failed sign-ins" in throttled.text
    assert not await is_signed_in(http, public)
    # Another person is not locked out.
    await server.create_user("bob", PASSWORD)
    assert (await sign_in(http, "bob")).status_code == 200


@pytest.mark.parametrize(
    "next_path",
    [
        "//evil.example",
        "//evil.example/authorize",
        "https://evil.example",
        "https://evil.example/authorize",
        "https:/evil.example",
        "@evil.example",
        "/@evil.example",
        "\\\\evil.example",
        "/\\evil.example",
        "/authorize\\@evil.example",
        "/token",
        "/login",
        "/authorize/../token",
        "/authorize#@evil.example",
        "/authorize\r\nLocation: https://evil.example",
        "/authorize\tx",
        "/authorize?a=\r\nSet-Cookie: x=1",
        "/authorize?a=\u2028",
        "javascript:alert(1)",
        "authorize",
        "",
    ],
)
async def test_next_never_leaves_the_servers_own_pages(
    http: httpx.AsyncClient, alice: User, next_path: str
) -> None:
    login = await http.get(LOGIN, params={"next": next_path} if next_path else None)
    response = await submit(
        http, parse_page(login.text).form, {"username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 200, response.headers
    assert "location" not in response.headers
    assert parse_page(response.text).title == "Signed in"


@pytest.mark.parametrize(
    "next_path", ["/authorize?client_id=x&state=a%20b", "/device", "/device?user_code=ABCD-EFGH"]
)
async def test_next_returns_to_authorize_and_device(
    http: httpx.AsyncClient, alice: User, next_path: str
) -> None:
    response = await sign_in(http, "alice", next_url=f"{LOGIN}?{urlencode({'next': next_path})}")
    assert redirect_target(response) == ISSUER + next_path


# -- login CSRF ----------------------------------------------------------------


@pytest.mark.parametrize("csrf", [None, "", "forged"])
async def test_login_post_without_the_sessions_csrf_token_signs_no_one_in(
    http: httpx.AsyncClient, public: Credentials, alice: User, csrf: str | None
) -> None:
    login = await http.get(LOGIN)
    form = parse_page(login.text).form
    response = await submit(
        http, form, {"csrf_token": csrf, "username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 403
    assert "location" not in response.headers
    page = parse_page(response.text)
    assert page.title == "Sign in" and "session expired" in page.text
    assert not await is_signed_in(http, public)
    # The page it gives back works.
    again = await submit(http, page.form, {"username": "alice", "password": PASSWORD})
    assert again.status_code == 200 and await is_signed_in(http, public)


async def test_login_post_with_another_sessions_csrf_token_is_refused(
    http: httpx.AsyncClient, oauth_app: OAuth2App, public: Credentials, alice: User
) -> None:
    async with mounted(oauth_app) as attacker:
        theirs = parse_page((await attacker.get(LOGIN)).text).form.fields["csrf_token"]
    form = parse_page((await http.get(LOGIN)).text).form
    response = await submit(
        http, form, {"csrf_token": theirs, "username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 403
    assert not await is_signed_in(http, public)


async def test_login_post_without_any_session_is_refused(
    oauth_app: OAuth2App, public: Credentials, alice: User
) -> None:
    async with mounted(oauth_app) as http:
        response = await http.post(
            LOGIN, data={"username": "alice", "password": PASSWORD, "csrf_token": "x"}
        )
        assert response.status_code == 403
        assert not await is_signed_in(http, public)


# -- the session cookie --------------------------------------------------------


@pytest.mark.parametrize(
    "settings", [Settings(issuer=ISSUER, session_lifetime=1234)], ids=["lifetime"]
)
async def test_session_cookie_attributes(http: httpx.AsyncClient, alice: User) -> None:
    for response in (await http.get(LOGIN), await sign_in(http, "alice")):
        _, attributes = set_cookie(response)
        assert attributes["path"] == "/"
        assert attributes["samesite"] == "Lax"
        assert attributes["max-age"] == "1234"
        assert "httponly" in attributes and "secure" in attributes
        assert "domain" not in attributes and "expires" not in attributes


@pytest.mark.parametrize(
    "settings",
    [Settings(issuer="http://as.example/oauth2", insecure_transport=True)],
    ids=["insecure"],
)
async def test_session_cookie_not_secure_over_http(oauth_app: OAuth2App) -> None:
    async with mounted(oauth_app, base_url="http://as.example") as http:
        response = await http.get("http://as.example/oauth2/login")
    _, attributes = set_cookie(response, PLAIN_COOKIE)
    assert "secure" not in attributes
    assert "httponly" in attributes and attributes["samesite"] == "Lax"
    assert attributes["path"] == "/oauth2"


async def test_session_cookie_path_at_the_root() -> None:
    from asgi_oauth.storage import MemoryStorage

    server = AuthorizationServer(MemoryStorage(), Settings(issuer="https://as.example"))
    transport = httpx.ASGITransport(app=OAuth2App(server))
    async with httpx.AsyncClient(transport=transport, base_url="https://as.example") as http:
        response = await http.get("/login")
    assert set_cookie(response)[1]["path"] == "/"


async def test_tampered_session_cookie_counts_as_signed_out(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    await sign_in(http, "alice")
    assert await is_signed_in(http, public)
    value = cookie_value(http)
    payload, _, signature = value.rpartition(".")
    for tampered in (
        payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + signature,
        payload + "." + signature[::-1],
        payload,
        "",
        "junk",
    ):
        http.cookies.set(COOKIE, tampered, domain="as.example", path="/")
        assert not await is_signed_in(http, public), tampered


@pytest.mark.parametrize(
    "settings", [Settings(issuer=ISSUER, secret_key=KEY, session_lifetime=60)], ids=["key"]
)
async def test_expired_session_counts_as_signed_out(
    http: httpx.AsyncClient, server: AuthorizationServer, public: Credentials, alice: User
) -> None:
    session_id, auth_time = await server.accounts.open_session(alice)
    data: dict[str, object] = {
        "c": "csrf-" + "x" * 40,
        "u": alice.user_id,
        "t": auth_time,
        "p": credential_of(alice),
        "s": session_id,
    }
    # The same cookie, signed within the lifetime, is honoured: the forgery is faithful.
    http.cookies.set(COOKIE, old_cookie(data, 30), domain="as.example", path="/")
    assert await is_signed_in(http, public)
    http.cookies.set(COOKIE, old_cookie(data, 61), domain="as.example", path="/")
    assert not await is_signed_in(http, public)
    # And one signed with another key is nothing.
    http.cookies.set(COOKIE, old_cookie(data, 0, "z" * 40), domain="as.example", path="/")
    assert not await is_signed_in(http, public)


async def test_sign_in_rotates_the_session_and_its_csrf_token(
    http: httpx.AsyncClient, oauth_app: OAuth2App, public: Credentials, alice: User
) -> None:
    login = await http.get(LOGIN)
    before_cookie = cookie_value(http)
    before_csrf = parse_page(login.text).form.fields["csrf_token"]
    signed_in = await submit(
        http, parse_page(login.text).form, {"username": "alice", "password": PASSWORD}
    )
    after_cookie, _ = set_cookie(signed_in)
    assert after_cookie != before_cookie

    consent = await http.get(request_of(public))
    form = parse_page(consent.text).form
    assert form.fields["csrf_token"] != before_csrf
    stale = await submit(http, form, {"csrf_token": before_csrf, "decision": "approve"})
    assert stale.status_code == 403
    assert "location" not in stale.headers

    # Session fixation: whoever held the cookie from before sign-in holds nothing.
    async with mounted(oauth_app) as fixer:
        fixer.cookies.set(COOKIE, before_cookie, domain="as.example", path="/")
        assert not await is_signed_in(fixer, public)


async def test_deleted_users_session_counts_as_signed_out(
    http: httpx.AsyncClient, server: AuthorizationServer, public: Credentials, alice: User
) -> None:
    await sign_in(http, "alice")
    assert await is_signed_in(http, public)
    # Another account under the same name: the old user id is gone from the store.
    assert await server.storage.delete_user("alice")
    assert await server.storage.add_user(dataclasses.replace(alice, user_id="someone-else"))
    assert not await is_signed_in(http, public)


async def test_other_cookies_beside_the_session_are_fine(
    oauth_app: OAuth2App, public: Credentials, alice: User
) -> None:
    async with mounted(oauth_app) as http:
        await sign_in(http, "alice")
        value = cookie_value(http)
    async with mounted(oauth_app) as http:
        for header in (
            f"theme=dark; {COOKIE}={value}; lang=en",
            f'{COOKIE}={value}; prefs={{"a":1}}',
            f"{COOKIE}={value}; cart=[1,2]",
        ):
            response = await http.get(request_of(public), headers={"cookie": header})
            assert response.status_code == 200, header


@pytest.mark.parametrize(
    "header",
    ["{session}; pref=a b", "{session}; last search=x", 'prefs={{"a":1}}; {session}'],
    ids=["space-in-value", "space-in-name", "json-first"],
)
async def test_host_cookies_do_not_hide_the_session(
    oauth_app: OAuth2App, public: Credentials, alice: User, header: str
) -> None:
    async with mounted(oauth_app) as http:
        await sign_in(http, "alice")
        session = f"{COOKIE}={cookie_value(http)}"
    async with mounted(oauth_app) as http:
        response = await http.get(
            request_of(public), headers={"cookie": header.format(session=session)}
        )
    assert response.status_code == 200, response.headers


@pytest.mark.parametrize(
    "settings",
    [
        Settings(issuer=ISSUER),
        Settings(issuer="http://as.example/oauth2", insecure_transport=True),
    ],
    ids=["https", "insecure"],
)
async def test_a_same_name_cookie_at_the_root_does_not_block_sign_in(
    oauth_app: OAuth2App, settings: Settings, public: Credentials, alice: User
) -> None:
    # Another application on the host (or a sibling subdomain) set a cookie of our name.
    base = settings.issuer.removesuffix("/oauth2")
    async with mounted(oauth_app, base_url=base) as http:
        http.cookies.set(PLAIN_COOKIE, "junk", domain="as.example", path="/")
        response = await sign_in(http, "alice", next_url="/oauth2/login")
        assert response.status_code == 200, response.text
        assert parse_page(response.text).title == "Signed in"
        consent = await http.get("/oauth2" + request_of(public).removeprefix(ISSUER))
        assert parse_page(consent.text).title == "Authorize access"


@pytest.mark.parametrize("ours_first", [True, False], ids=["ours-first", "ours-second"])
async def test_a_junk_value_of_the_session_cookie_beside_ours_is_ignored(
    oauth_app: OAuth2App, public: Credentials, alice: User, ours_first: bool
) -> None:
    async with mounted(oauth_app) as http:
        login = await http.get(LOGIN)
        ours = f"{COOKIE}={cookie_value(http)}"
        form = parse_page(login.text).form
    cookies = [ours, f"{COOKIE}=junk", f"{PLAIN_COOKIE}=junk"]
    header = "; ".join(cookies if ours_first else cookies[::-1])
    async with mounted(oauth_app) as http:
        data = {**form.fields, "username": "alice", "password": PASSWORD}
        response = await http.post(
            form.action, content=urlencode(data), headers={**FORM, "cookie": header}
        )
    assert response.status_code == 200, response.text
    assert parse_page(response.text).title == "Signed in"


async def test_a_forged_login_post_does_not_sign_anyone_out(
    http: httpx.AsyncClient, oauth_app: OAuth2App, public: Credentials, alice: User
) -> None:
    await sign_in(http, "alice")
    async with mounted(oauth_app) as attacker:
        forged = parse_page((await attacker.get(LOGIN)).text).form
    response = await submit(http, forged, {"username": "mallory", "password": "guess"})
    assert response.status_code == 403
    assert await is_signed_in(http, public)


async def test_sign_out_needs_the_sessions_csrf_token_and_ends_the_session(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    await sign_in(http, "alice")
    page = await http.get("/oauth2/logout")
    assert page.status_code == 200
    logout = parse_page(page.text)
    assert logout.title == "Sign out" and "alice" in logout.text
    forged = await submit(http, logout.form, {"csrf_token": "forged"})
    assert forged.status_code == 403
    assert await is_signed_in(http, public)
    done = await submit(http, logout.form)
    assert done.status_code == 200 and parse_page(done.text).title == "Signed out"
    assert set_cookie(done)[1]["max-age"] == "0"
    assert not await is_signed_in(http, public)


async def test_a_copy_of_the_cookie_taken_before_sign_out_signs_in_no_one(
    http: httpx.AsyncClient, oauth_app: OAuth2App, public: Credentials, alice: User
) -> None:
    await sign_in(http, "alice")
    copied = cookie_value(http)
    logout = parse_page((await http.get("/oauth2/logout")).text)
    assert (await submit(http, logout.form)).status_code == 200

    async with mounted(oauth_app) as thief:
        thief.cookies.set(COOKIE, copied, domain="as.example", path="/")
        assert not await is_signed_in(thief, public)


@pytest.mark.parametrize("settings", [Settings(issuer=ISSUER, secret_key=KEY)], ids=["key"])
async def test_a_session_cookie_the_store_does_not_know_signs_in_no_one(
    http: httpx.AsyncClient, server: AuthorizationServer, public: Credentials, alice: User
) -> None:
    """A cookie signed with the right key but naming no sign-in the store kept (one from
    before sessions were kept, or one whose row was purged) counts as signed out."""
    _, auth_time = await server.accounts.open_session(alice)
    data = {"c": "x" * 40, "u": alice.user_id, "t": auth_time, "p": credential_of(alice)}
    forge = URLSafeTimedSerializer(KEY, salt="asgi_oauth.session").dumps
    for extra in ({}, {"s": "never-issued"}):
        http.cookies.set(COOKIE, forge(data | extra), domain="as.example", path="/")
        assert not await is_signed_in(http, public), extra
    # The same forgery naming the sign-in the store kept is honoured: it was faithful.
    session_id, _ = await server.accounts.open_session(alice)
    http.cookies.set(COOKIE, forge(data | {"s": session_id}), domain="as.example", path="/")
    assert await is_signed_in(http, public)


async def test_the_store_keeps_only_a_hash_of_the_session_id(
    http: httpx.AsyncClient, server: AuthorizationServer, alice: User
) -> None:
    session_id, _ = await server.accounts.open_session(alice)
    kept = await server.storage.get_session(hash_token(session_id))
    assert kept is not None and kept.user_id == alice.user_id
    assert await server.storage.get_session(session_id) is None


async def test_a_new_password_ends_the_sessions_opened_with_the_old_one(
    http: httpx.AsyncClient, server: AuthorizationServer, public: Credentials, alice: User
) -> None:
    await sign_in(http, "alice")
    assert await is_signed_in(http, public)
    changed = dataclasses.replace(alice, password_hash=hash_password("a new password"))
    await server.storage.save_user(changed)
    assert not await is_signed_in(http, public)
    await sign_in(http, "alice", "a new password")
    assert await is_signed_in(http, public)


async def test_sign_out_is_absent_with_a_host_hook(server: AuthorizationServer) -> None:
    async def nobody(request: object) -> None:
        return None

    app = OAuth2App(server, current_user=nobody, login_url="https://app.example/login")
    async with mounted(app) as http:
        assert (await http.get("/oauth2/logout")).status_code == 404
