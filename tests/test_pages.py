"""The pages people see: security headers on every one, escaping, the ``Pages`` hook,
and bad input of every kind answered with a page, never a 500 or a traceback.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from html import escape

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount

from asgi_oauth import AuthorizationServer, Settings, StorageError, User
from asgi_oauth.app import OAuth2App
from asgi_oauth.app.pages import LoginPage, MessagePage, Page, Pages
from asgi_oauth.models import Client, ResourceOwner
from asgi_oauth.storage import MemoryStorage

from .browser_helpers import (
    AUTHORIZE,
    CHALLENGE,
    FORM,
    LOGIN,
    PASSWORD,
    approved,
    consent_page,
    csp,
    mounted,
    parse_page,
    raw_request,
    redirect_target,
    sign_in,
    start,
    submit,
)
from .conftest import ISSUER, REDIRECT_URI, Credentials

pytestmark = pytest.mark.anyio

EVIL = "<script>alert(\"x\")</script> & 'Co'"


@pytest.fixture
async def alice(server: AuthorizationServer) -> User:
    return await server.create_user("alice", PASSWORD)


def pkce(client: Credentials, **params: str) -> dict[str, str]:
    return {
        "client_id": client.client_id,
        "response_type": "code",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        **params,
    }


def assert_secure_page(response: httpx.Response) -> str:
    """Every page's headers; returns the response's nonce."""
    headers = response.headers
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    policy = csp(response)
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["base-uri"] == "'none'"
    page = parse_page(response.text)
    assert len(page.style_nonces) == 1
    nonce = page.style_nonces[0]
    assert len(nonce) >= 16
    assert policy["style-src"] == f"'nonce-{nonce}'"
    assert policy["script-src"] == f"'nonce-{nonce}'"
    assert all(n == nonce for n in page.script_nonces)
    assert "Traceback" not in response.text
    return nonce


# -- rule 16: every page -------------------------------------------------------

PageMaker = Callable[[httpx.AsyncClient, Credentials], Awaitable[httpx.Response]]


async def _login(http: httpx.AsyncClient, client: Credentials) -> httpx.Response:
    return await http.get(LOGIN)


async def _login_failed(http: httpx.AsyncClient, client: Credentials) -> httpx.Response:
    return await sign_in(http, "alice", "wrong")


async def _login_forged(http: httpx.AsyncClient, client: Credentials) -> httpx.Response:
    return await http.post(LOGIN, data={"username": "alice", "password": PASSWORD})


async def _signed_in(http: httpx.AsyncClient, client: Credentials) -> httpx.Response:
    return await sign_in(http, "alice")


async def _consent(http: httpx.AsyncClient, client: Credentials) -> httpx.Response:
    return await consent_page(http, "alice", **pkce(client))


async def _consent_forged(http: httpx.AsyncClient, client: Credentials) -> httpx.Response:
    page = await consent_page(http, "alice", **pkce(client))
    return await submit(
        http, parse_page(page.text).form, {"decision": "approve", "csrf_token": "forged"}
    )


async def _form_post(http: httpx.AsyncClient, client: Credentials) -> httpx.Response:
    return await approved(http, "alice", **pkce(client, response_mode="form_post"))


async def _error(http: httpx.AsyncClient, client: Credentials) -> httpx.Response:
    return await start(http, client_id="nobody", response_type="code")


async def _method(http: httpx.AsyncClient, client: Credentials) -> httpx.Response:
    return await http.put(AUTHORIZE)


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (_login, 200),
        (_login_failed, 400),
        (_login_forged, 403),
        (_signed_in, 200),
        (_consent, 200),
        (_consent_forged, 403),
        (_form_post, 200),
        (_error, 400),
        (_method, 405),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)).strip("_"),
)
async def test_every_page_has_the_security_headers(
    http: httpx.AsyncClient, public: Credentials, alice: User, make: PageMaker, status: int
) -> None:
    response = await make(http, public)
    assert response.status_code == status
    assert_secure_page(response)


async def test_only_form_post_may_post_elsewhere(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    assert "form-action" not in csp(await _consent(http, public))
    assert csp(await _form_post(http, public))["form-action"] == "https://app.example"


async def test_redirects_carry_the_headers_too(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    to_login = await start(http, **pkce(public))
    to_authorize = await sign_in(http, "alice", next_url=redirect_target(to_login))
    to_client = await approved(http, "alice", **pkce(public))
    assert redirect_target(to_login).startswith(LOGIN + "?")
    assert redirect_target(to_authorize).startswith(AUTHORIZE + "?")
    assert redirect_target(to_client).startswith(REDIRECT_URI + "?")
    for response in (to_login, to_authorize, to_client):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert csp(response) == {"default-src": "'none'", "frame-ancestors": "'none'"}


async def test_nonce_is_fresh_for_every_response(http: httpx.AsyncClient) -> None:
    nonces = {assert_secure_page(await http.get(LOGIN)) for _ in range(5)}
    assert len(nonces) == 5


async def test_client_name_is_escaped(
    http: httpx.AsyncClient, server: AuthorizationServer, alice: User
) -> None:
    registered = await server.register_client(name=EVIL, redirect_uris=[REDIRECT_URI], public=True)
    client = Credentials(registered.client.client_id, None)
    page = await consent_page(http, "alice", **pkce(client))
    assert "<script>" not in page.text
    assert escape(EVIL) in page.text
    assert parse_page(page.text).script_nonces == []
    assert EVIL in parse_page(page.text).text


async def test_state_and_other_parameters_are_escaped(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    state = "\"><script>alert(1)</script><input value='"
    page = await consent_page(http, "alice", **pkce(public, state=state, nonce=EVIL))
    assert "<script>" not in page.text
    fields = parse_page(page.text).form.fields
    assert fields["state"] == state and fields["nonce"] == EVIL

    form_post = await approved(
        http, "alice", **pkce(public, state=state, response_mode="form_post")
    )
    assert "<script>alert" not in form_post.text
    assert parse_page(form_post.text).form.fields["state"] == state


async def test_login_page_escapes_next_and_the_username(
    http: httpx.AsyncClient, alice: User
) -> None:
    login = await http.get(LOGIN, params={"next": '"><script>alert(1)</script>'})
    assert "<script>" not in login.text
    assert parse_page(login.text).form.fields["next"] == '"><script>alert(1)</script>'
    failed = await submit(
        http, parse_page(login.text).form, {"username": EVIL, "password": "wrong"}
    )
    assert failed.status_code == 400
    assert "<script>" not in failed.text
    assert parse_page(failed.text).form.fields["username"] == EVIL


@pytest.mark.parametrize(
    "settings",
    [Settings(issuer=ISSUER, scope_descriptions={"read": "<b>Read</b> your files"})],
    ids=["html-description"],
)
async def test_scope_descriptions_are_escaped(
    http: httpx.AsyncClient, public: Credentials, alice: User
) -> None:
    page = await consent_page(http, "alice", **pkce(public, scope="read"))
    assert "<b>" not in page.text
    assert "<b>Read</b> your files" in parse_page(page.text).text


async def test_every_visible_login_input_has_a_label(http: httpx.AsyncClient) -> None:
    page = parse_page((await http.get(LOGIN)).text)
    visible = [(name, kind, id_) for name, kind, id_ in page.form.inputs if kind != "hidden"]
    assert {name for name, _, _ in visible} == {"username", "password"}
    for name, _, id_ in visible:
        assert id_ and id_ in page.labels_for, name
    assert len(page.labels_for) == len(set(page.labels_for))


# -- the Pages hook ------------------------------------------------------------


class TemplatePages(Pages):
    """Pages rendered by "templates" from ``page.template`` and ``asdict(page)``."""

    def __init__(self) -> None:
        self.rendered: list[tuple[str, dict[str, object]]] = []

    def render(self, page: Page) -> str:
        context = dataclasses.asdict(page)
        self.rendered.append((page.template, context))
        if not isinstance(page, LoginPage):
            return super().render(page)
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{escape(str(context[k]))}">'
            for k in ("csrf_token", "next")
        )
        return (
            f'<!doctype html><title>Acme sign-in</title><style nonce="{page.nonce}"></style>'
            f'<form method="post" action="{escape(page.action)}">{hidden}'
            '<input name="username"><input name="password" type="password"></form>'
        )


class BrandedPages(Pages):
    def message(self, page: MessagePage) -> str:
        return self.layout(f"Acme: {page.title}", "<p>Welcome back.</p>", page.nonce)


async def test_render_hook_serves_its_own_html_and_keeps_the_flow_working(
    server: AuthorizationServer, public: Credentials, alice: User
) -> None:
    pages = TemplatePages()
    async with mounted(OAuth2App(server, pages=pages)) as http:
        response = await start(http, **pkce(public))
        login = await http.get(redirect_target(response))
        assert parse_page(login.text).title == "Acme sign-in"
        assert "Sign in" not in login.text
        nonce = assert_secure_page(login)
        signed_in = await submit(
            http, parse_page(login.text).form, {"username": "alice", "password": PASSWORD}
        )
        consent = await http.get(redirect_target(signed_in))
        assert parse_page(consent.text).title == "Authorize access"
        assert assert_secure_page(consent) != nonce
    templates = [template for template, _ in pages.rendered]
    assert templates == ["login", "consent"]
    assert pages.rendered[1][1]["client_name"] == "Public"


async def test_overriding_one_page_method_changes_only_that_page(
    server: AuthorizationServer, alice: User
) -> None:
    async with mounted(OAuth2App(server, pages=BrandedPages())) as http:
        signed_in = await sign_in(http, "alice")
        login = await http.get(LOGIN)
    assert parse_page(signed_in.text).title == "Acme: Signed in"
    assert "Welcome back." in signed_in.text
    assert_secure_page(signed_in)
    assert parse_page(login.text).title == "Sign in"


# -- rule 17: bad input --------------------------------------------------------


@pytest.fixture
def host(oauth_app: OAuth2App) -> Starlette:
    return Starlette(routes=[Mount("/oauth2", app=oauth_app)])


@pytest.mark.parametrize("path", ["/oauth2/authorize", "/oauth2/login"])
@pytest.mark.parametrize(
    "query",
    [
        b"\xff\xfe\x00junk",
        b"client_id=\xc3\x28",
        b"client_id=%ff%fe&response_type=code",
        b"next=%c3%28",
        b"%ff=1",
    ],
)
async def test_undecodable_query_is_a_400_page(host: Starlette, path: str, query: bytes) -> None:
    status, headers, body = await raw_request(host, "GET", path, query=query)
    assert status == 400
    assert headers[b"content-type"].startswith(b"text/html")
    assert b"not valid UTF-8" in body
    assert b"location" not in headers


@pytest.mark.parametrize(
    "query",
    [
        b"%",
        b"a=%zz&b=%",
        b"&&&=&==",
        b"client_id=" + b"x" * 100_000,
        b"client_id=%E2%80%AE",
    ],
)
async def test_odd_but_decodable_query_is_an_ordinary_error_page(
    host: Starlette, query: bytes
) -> None:
    status, headers, body = await raw_request(host, "GET", "/oauth2/authorize", query=query)
    assert status == 400
    assert headers[b"content-type"].startswith(b"text/html")
    assert b"client" in body and b"Traceback" not in body


@pytest.mark.parametrize("query", [b"client_id=%00", b"client_id=x&state=a%00b", b"a%00=1"])
async def test_a_nul_anywhere_in_the_query_is_an_error_page(host: Starlette, query: bytes) -> None:
    status, headers, body = await raw_request(host, "GET", "/oauth2/authorize", query=query)
    assert status == 400
    assert headers[b"content-type"].startswith(b"text/html")
    assert b"must not contain NUL" in body
    assert b"location" not in headers


@pytest.mark.parametrize("path", ["/oauth2/authorize", "/oauth2/login"])
async def test_huge_post_body_is_413_page(host: Starlette, path: str) -> None:
    body = b"x=" + b"a" * 70_000
    form = (b"content-type", FORM["content-type"].encode())
    declared = (b"content-length", str(len(body)).encode())
    for headers in ([form, declared], [form]):  # declared, or counted as it arrives
        status, response_headers, page = await raw_request(
            host, "POST", path, body=body, headers=headers
        )
        assert status == 413
        assert response_headers[b"content-type"].startswith(b"text/html")
        assert b"larger than" in page


@pytest.mark.parametrize("path", ["/oauth2/authorize", "/oauth2/login"])
@pytest.mark.parametrize(
    "content_type", ["application/json", "multipart/form-data; boundary=x", "text/plain", None]
)
async def test_post_that_is_not_urlencoded_is_415_page(
    http: httpx.AsyncClient, path: str, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = await http.post(path, content=b"client_id=x", headers=headers)
    assert response.status_code == 415
    assert_secure_page(response)
    assert "urlencoded" in parse_page(response.text).text


@pytest.mark.parametrize("path", ["/oauth2/authorize", "/oauth2/login"])
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_other_methods_are_405_with_allow(
    http: httpx.AsyncClient, path: str, method: str
) -> None:
    response = await http.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert_secure_page(response)


async def test_malformed_headers_are_400_pages(host: Starlette) -> None:
    form = (b"content-type", FORM["content-type"].encode())
    for headers in ([form, (b"content-length", b"ten")], [form, form]):
        status, response_headers, _ = await raw_request(
            host, "POST", "/oauth2/login", body=b"a=1", headers=headers
        )
        assert status == 400
        assert response_headers[b"content-type"].startswith(b"text/html")


async def test_garbage_cookie_counts_as_signed_out(host: Starlette, public: Credentials) -> None:
    query = "client_id=" + public.client_id + f"&response_type=code&code_challenge={CHALLENGE}"
    for cookie in (
        b"\xff\xfe",
        b"__Host-asgi_oauth_session=\xff",
        b'__Host-asgi_oauth_session="',
        b"asgi_oauth_session=\xff; __Host-asgi_oauth_session=\xfe",
        b";;;=",
    ):
        status, headers, _ = await raw_request(
            host,
            "GET",
            "/oauth2/authorize",
            query=(query + "&code_challenge_method=S256").encode(),
            headers=[(b"cookie", cookie)],
        )
        assert status == 303
        assert headers[b"location"].startswith(LOGIN.encode() + b"?")


@pytest.mark.parametrize("where", ["login", "consent"])
async def test_non_ascii_csrf_token_is_refused_like_any_wrong_one(
    http: httpx.AsyncClient, public: Credentials, alice: User, where: str
) -> None:
    if where == "login":
        page = await http.get(LOGIN)
        extra = {"username": "alice", "password": PASSWORD}
    else:
        page = await consent_page(http, "alice", **pkce(public))
        extra = {"decision": "approve"}
    response = await submit(http, parse_page(page.text).form, {**extra, "csrf_token": "\u00e9"})
    assert response.status_code == 403, parse_page(response.text).text


async def test_non_ascii_redirect_uri_is_refused_at_registration(
    server: AuthorizationServer,
) -> None:
    with pytest.raises(ValueError, match="redirect URI"):
        await server.register_client(name="IRI", redirect_uris=["https://app.example/\u65e5"])


async def test_a_failing_error_redirect_still_answers_with_a_page(
    host: Starlette, server: AuthorizationServer
) -> None:
    # A store filled by other means than register_client: nothing validated the URI.
    await server.storage.save_client(
        Client(client_id="iri", name="IRI", redirect_uris=("https://app.example/\u65e5",))
    )
    status, headers, _ = await raw_request(
        host, "GET", "/oauth2/authorize", query=b"client_id=iri&response_type=code&scope=x"
    )
    assert headers[b"content-type"].startswith(b"text/html")
    assert status >= 400


# -- rule 18: failures behind the pages ----------------------------------------


class BrokenStorage(MemoryStorage):
    async def get_client(self, client_id: str) -> Client | None:
        raise StorageError("db down at 10.0.0.7")

    async def get_user(self, username: str) -> User | None:
        raise StorageError("db down at 10.0.0.7")


@pytest.fixture
async def broken() -> AsyncIterator[httpx.AsyncClient]:
    server = AuthorizationServer(BrokenStorage(), Settings(issuer=ISSUER))
    async with mounted(OAuth2App(server)) as http:
        yield http


async def test_storage_failure_is_a_503_page(
    broken: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, "asgi_oauth"):
        response = await broken.get(AUTHORIZE, params={"client_id": "c", "response_type": "code"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "location" not in response.headers
    assert_secure_page(response)
    assert "10.0.0.7" not in response.text
    assert "10.0.0.7" in caplog.text


async def test_storage_failure_while_signing_in_is_a_503_page(broken: httpx.AsyncClient) -> None:
    response = await sign_in(broken, "alice")
    assert response.status_code == 503
    assert_secure_page(response)
    assert "10.0.0.7" not in response.text


async def test_a_failing_current_user_hook_is_a_500_page_without_details(
    server: AuthorizationServer, public: Credentials, caplog: pytest.LogCaptureFixture
) -> None:
    async def current_user(request: Request) -> ResourceOwner | None:
        raise RuntimeError("hook secret")

    app = OAuth2App(server, current_user=current_user, login_url="https://app.example/login")
    with caplog.at_level(logging.ERROR, "asgi_oauth"):
        async with mounted(app) as http:
            response = await start(http, **pkce(public))
    assert response.status_code == 500
    assert_secure_page(response)
    assert "hook secret" not in response.text
    assert "hook secret" in caplog.text
