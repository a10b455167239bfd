"""``OAuth2App`` as it is, under every mainstream host's way of mounting an ASGI app.

Each test composes the app as its framework documents (Starlette ``Mount``, FastAPI
``app.mount``, Litestar's ``asgi(is_mount=True)`` handler, Quart behind hypercorn's
``DispatcherMiddleware``, Django and any app behind a plain dispatcher, and a real
uvicorn ``--root-path`` behind a prefix-stripping proxy), then checks through HTTP
what a newcomer would try first: the metadata, whose every URL comes from the issuer,
a client-credentials token, dynamic registration, and a person signing in on the pages
for a code. A framework that is not installed skips, and fails under
``ASGI_OAUTH_REQUIRE_ALL=1`` (``tests/conftest.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, cast
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.app.requests import mount_path, route_path
from asgi_oauth.pkce import s256_challenge
from tests.servers.process import ServerProcess, deploy, serve
from tests.user_agent import Person

from .browser_helpers import PASSWORD, query_of
from .conftest import ISSUER, REDIRECT_URI, Credentials

pytestmark = pytest.mark.anyio

BASE_URL = "https://as.example"
USERNAME = "alice"
#: What a host route answers, to show the host still has the rest of the paths.
HOST_PAGE = "the host application"


@pytest.fixture
def settings() -> Settings:
    return Settings(issuer=ISSUER, client_registration="open")


@pytest.fixture(autouse=True)
def mount_agrees_with_issuer(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every host below mounts at the issuer's path: no warning may say otherwise."""
    with caplog.at_level(logging.WARNING, "asgi_oauth"):
        yield
    assert "mounted at" not in caplog.text


@pytest.fixture
async def user(server: AuthorizationServer) -> str:
    await server.create_user(USERNAME, PASSWORD)
    return USERNAME


async def check_oauth2(
    http: httpx.AsyncClient, issuer: str, client: tuple[str, str], public_id: str, redirect: str
) -> None:
    """Metadata at ``/oauth2/.well-known/...`` with the issuer's URLs, then through those
    URLs: a client-credentials token, a registration read back at the URL it names, and
    a person who signs in and approves, whose code the public client redeems."""
    answer = await http.get(issuer + "/.well-known/oauth-authorization-server")
    assert answer.status_code == 200, answer.text
    metadata = answer.json()
    assert metadata["issuer"] == issuer
    urls = {key: url for key, url in metadata.items() if key.endswith("_endpoint")}
    assert urls["token_endpoint"] == issuer + "/token"
    assert all(url.startswith(issuer + "/") for url in urls.values()), urls

    token = await http.post(
        urls["token_endpoint"], data={"grant_type": "client_credentials"}, auth=client
    )
    assert token.status_code == 200, token.text
    assert token.json()["token_type"] == "Bearer"

    registered = await http.post(
        urls["registration_endpoint"], json={"redirect_uris": [redirect], "client_name": "New"}
    )
    assert registered.status_code == 201, registered.text
    configuration = registered.json()["registration_client_uri"]
    assert configuration.startswith(issuer + "/register/")
    read = await http.get(
        configuration,
        headers={"Authorization": "Bearer " + registered.json()["registration_access_token"]},
    )
    assert read.status_code == 200, read.text

    verifier = secrets.token_urlsafe(48)
    request = {
        "response_type": "code",
        "client_id": public_id,
        "redirect_uri": redirect,
        "scope": "read",
        "state": "s",
        "code_challenge": s256_challenge(verifier),
        "code_challenge_method": "S256",
    }
    person = Person(http, USERNAME, PASSWORD)
    back = await person.authorize(urls["authorization_endpoint"] + "?" + urlencode(request))
    assert person.pages == ["Sign in", "Authorize access"]
    assert back.startswith(redirect + "?"), back
    params = query_of(back)
    assert params["iss"] == issuer and params["state"] == "s"
    tokens = await http.post(
        urls["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "client_id": public_id,
            "redirect_uri": redirect,
            "code_verifier": verifier,
        },
    )
    assert tokens.status_code == 200, tokens.text


async def check_mounted(
    host: ASGIApp, confidential: Credentials, public: Credentials, *, host_path: str = ""
) -> None:
    """``check_oauth2`` on ``host`` in-process; ``host_path``: a path the host answers."""
    transport = httpx.ASGITransport(app=host)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        await check_oauth2(http, ISSUER, confidential.basic, public.client_id, REDIRECT_URI)
        if host_path:
            page = await http.get(host_path)
            assert page.status_code == 200 and page.text == HOST_PAGE, page.text


async def test_starlette_mount(
    oauth_app: OAuth2App, confidential: Credentials, public: Credentials, user: str
) -> None:
    host = Starlette(routes=[Mount("/oauth2", app=oauth_app), oauth_app.metadata_route])
    await check_mounted(host, confidential, public)


async def test_fastapi_mount(
    oauth_app: OAuth2App, confidential: Credentials, public: Credentials, user: str
) -> None:
    api = FastAPI()
    api.mount("/oauth2", oauth_app)
    await check_mounted(api, confidential, public)


async def test_litestar_mount(
    oauth_app: OAuth2App, confidential: Credentials, public: Credentials, user: str
) -> None:
    """Litestar strips the mount from ``path``, leaves ``root_path`` alone and ends the
    path with a slash; ``copy_scope=True`` is what Litestar asks of every mount. (No
    ``logging_config``: Litestar's default adds a handler to the root logger, for good.)"""
    litestar = pytest.importorskip("litestar", reason="Litestar is not installed")
    mounted = litestar.asgi("/oauth2", is_mount=True, copy_scope=True)(oauth_app)
    host = litestar.Litestar(route_handlers=[mounted], logging_config=None)
    await check_mounted(host, confidential, public)


async def test_quart_behind_hypercorns_dispatcher(
    oauth_app: OAuth2App, confidential: Credentials, public: Credentials, user: str
) -> None:
    """Quart mounts no ASGI app: hypercorn's ``DispatcherMiddleware`` composes the two."""
    quart = pytest.importorskip("quart", reason="Quart is not installed")
    from hypercorn.middleware import DispatcherMiddleware

    web = quart.Quart(__name__)
    web.add_url_rule("/hello", view_func=_quart_hello)
    # hypercorn types the scopes as TypedDicts, Starlette as plain mappings: the same apps.
    mounts: dict[str, Any] = {"/oauth2": oauth_app, "": web}
    host = cast(ASGIApp, DispatcherMiddleware(mounts))
    await check_mounted(host, confidential, public, host_path="/hello")


async def _quart_hello() -> str:
    return HOST_PAGE


def mount_at(prefix: str, app: ASGIApp, rest: ASGIApp) -> ASGIApp:
    """The README's plain ASGI dispatcher: ``prefix`` and below to ``app`` (which gets
    the lifespan too: Django has none), the rest to ``rest``."""

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        mount = scope.get("root_path", "") + prefix
        if scope["type"] == "lifespan":
            await app(scope, receive, send)
        elif scope["path"].startswith(mount + "/"):
            await app({**scope, "root_path": mount}, receive, send)
        else:
            await rest(scope, receive, send)

    return dispatch


async def test_django_beside_oauth2_app(
    oauth_app: OAuth2App, confidential: Credentials, public: Credentials, user: str
) -> None:
    """Django's ASGI handler mounts nothing and refuses lifespan: a dispatcher composes."""
    pytest.importorskip("django", reason="Django is not installed")
    django_conf = pytest.importorskip("django.conf")
    django_http = pytest.importorskip("django.http")
    django_urls = pytest.importorskip("django.urls")

    def hello(request: object) -> Any:
        return django_http.HttpResponse(HOST_PAGE)

    if not django_conf.settings.configured:
        urls = ModuleType("django_urls_of_test_mounts")
        urls.urlpatterns = [django_urls.path("hello", hello)]  # type: ignore[attr-defined]
        django_conf.settings.configure(
            ROOT_URLCONF=urls, ALLOWED_HOSTS=["as.example"], SECRET_KEY=secrets.token_hex(32)
        )
    django_app = pytest.importorskip("django.core.asgi").get_asgi_application()
    host = mount_at("/oauth2", oauth_app, django_app)
    await check_mounted(host, confidential, public, host_path="/hello")


async def _host_page(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse(HOST_PAGE)(scope, receive, send)


Handoff = Callable[[Scope, str], Scope]

#: How dispatchers hand a request to what they mount at ``prefix``.
HANDOFFS: dict[str, Handoff] = {
    # ASGI: root_path grows, path stays whole (Starlette since 0.33, hypercorn).
    "root_path": lambda scope, prefix: {**scope, "root_path": prefix},
    # WSGI's way (Starlette before 0.33): the prefix moves from path to root_path.
    "strip": lambda scope, prefix: {
        **scope,
        "root_path": prefix,
        "path": scope["path"][len(prefix) :],
    },
    # Litestar's way, without its slash: the prefix is gone from path, root_path stays.
    "strip_only": lambda scope, prefix: {**scope, "path": scope["path"][len(prefix) :]},
}


@pytest.mark.parametrize("handoff", HANDOFFS.values(), ids=HANDOFFS.keys())
async def test_plain_asgi_dispatch(
    oauth_app: OAuth2App,
    confidential: Credentials,
    public: Credentials,
    user: str,
    handoff: Handoff,
) -> None:
    async def host(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"].startswith("/oauth2/"):
            await oauth_app(handoff(scope, "/oauth2"), receive, send)
        else:
            await _host_page(scope, receive, send)

    await check_mounted(host, confidential, public, host_path="/")


async def test_readme_dispatcher_passes_lifespan_to_oauth2_app(oauth_app: OAuth2App) -> None:
    sent: list[Message] = []
    messages: Iterator[Message] = iter(
        [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    )

    async def receive() -> Message:
        return next(messages)

    async def send(message: Message) -> None:
        sent.append(message)

    await mount_at("/oauth2", oauth_app, _host_page)({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


class PrefixStrippingProxy(httpx.AsyncBaseTransport):
    """The reverse proxy in front of ``uvicorn --root-path PREFIX``: it forwards
    ``PREFIX/x`` as ``/x`` to the server, which puts ``PREFIX`` back in ``root_path``."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix.encode()
        self._upstream = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path
        assert path.startswith(self._prefix + b"/"), path
        forwarded = httpx.Request(
            request.method,
            request.url.copy_with(raw_path=path[len(self._prefix) :]),
            headers=request.headers,
            stream=request.stream,
        )
        return await self._upstream.handle_async_request(forwarded)

    async def aclose(self) -> None:
        await self._upstream.aclose()


@pytest.fixture
def behind_a_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    """``uvicorn --root-path /prefix`` (as ``UVICORN_ROOT_PATH``) serving the Starlette
    host of ``tests/servers`` (``Mount("/oauth2")``), its issuer ``.../prefix/oauth2``."""
    deployment = deploy(tmp_path)
    deployment = dataclasses.replace(
        deployment,
        issuer=f"{deployment.base_url}/prefix/oauth2",
        settings_json='{"client_registration": "open"}',
    )
    monkeypatch.setenv("UVICORN_ROOT_PATH", "/prefix")
    with serve("uvicorn", deployment) as server:
        yield server


@pytest.mark.slow
async def test_uvicorn_root_path_behind_a_proxy(behind_a_proxy: ServerProcess) -> None:
    deployment = behind_a_proxy.deployment
    async with httpx.AsyncClient(transport=PrefixStrippingProxy("/prefix"), timeout=10) as http:
        await check_oauth2(
            http,
            deployment.issuer,
            deployment.client,
            deployment.public_client_id,
            "http://127.0.0.1/cb",
        )
    assert "mounted at" not in behind_a_proxy.stderr()


def _scope(path: str, root_path: str = "", raw_path: bytes | None = None) -> Scope:
    return {"type": "http", "path": path, "root_path": root_path, "raw_path": raw_path}


@pytest.mark.parametrize(
    ("scope", "route", "mount"),
    [
        # Served alone, and under ASGI mounts: path includes root_path.
        (_scope("/token", "", b"/token"), "/token", ""),
        (_scope("/oauth2/token", "/oauth2", b"/oauth2/token"), "/token", "/oauth2"),
        (_scope("/p/oauth2/token", "/p/oauth2", b"/p/oauth2/token"), "/token", "/p/oauth2"),
        (_scope("/oauth2/", "/oauth2", b"/oauth2/"), "/", "/oauth2"),
        # A dispatcher that strips its prefix, with root_path grown or not.
        (_scope("/token", "/oauth2", b"/oauth2/token"), "/token", "/oauth2"),
        (_scope("/token", "", b"/oauth2/token"), "/token", "/oauth2"),
        (_scope("/register/a b", "", b"/oauth2/register/a%20b"), "/register/a b", "/oauth2"),
        # Litestar: stripped, a slash added, root_path as the server set it.
        (_scope("/token/", "", b"/oauth2/token"), "/token", "/oauth2"),
        (_scope("/token/", "/p", b"/p/oauth2/token"), "/token", "/p/oauth2"),
        (_scope("/", "", b"/oauth2"), "/", "/oauth2"),
        # The client's own trailing slash stays: /token/ is no endpoint.
        (_scope("/token/", "", b"/oauth2/token/"), "/token/", "/oauth2"),
        # No raw_path (it is optional): nothing to read but path and root_path.
        (_scope("/token/", "/oauth2"), "/token/", "/oauth2"),
    ],
)
def test_route_and_mount_paths(scope: Scope, route: str, mount: str) -> None:
    assert route_path(scope) == route
    assert mount_path(scope) == mount


async def test_check_mount_at_startup_reports_a_disagreement_once(
    oauth_app: OAuth2App, caplog: pytest.LogCaptureFixture
) -> None:
    assert oauth_app.check_mount("/oauth2/") is True
    assert oauth_app.check_mount("/auth") is False
    assert "mounted at '/auth' but the issuer 'https://as.example/oauth2' says" in caplog.text
    caplog.clear()
    # Checked at startup: the first request, mounted elsewhere, checks nothing more.
    host = Starlette(routes=[Mount("/elsewhere", app=oauth_app)])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=host), base_url=BASE_URL
    ) as http:
        metadata = await http.get("/elsewhere/.well-known/oauth-authorization-server")
    assert metadata.json()["token_endpoint"] == ISSUER + "/token"
    assert caplog.text == ""
