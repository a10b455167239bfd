"""CORS for clients in a browser (Fetch standard): the authorization server's endpoints
that never use cookies and the bearer middleware answer preflights and let allowed
origins read their answers, errors included; the pages people see stay same-origin.

Headers only, so the apps run in this process behind ``httpx.ASGITransport``;
``tests/browser/test_cross_origin.py`` has Chromium enforce the same over HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from asgi_oauth import AuthorizationServer, Settings
from asgi_oauth.app import OAuth2App
from asgi_oauth.middleware import BearerTokenMiddleware
from asgi_oauth.storage import MemoryStorage

from .conftest import ISSUER, REDIRECT_URI, Credentials
from .helpers import request
from .openid_helpers import KEK

pytestmark = pytest.mark.anyio

ELSEWHERE = "https://anywhere.example"
LISTED = "https://spa.example"
REGISTERED = "https://registered.example"
#: What MCP and DPoP clients in a browser send (a browser lowercases them).
REQUESTED_HEADERS = (
    "authorization, content-type, dpop, mcp-protocol-version, mcp-session-id, last-event-id,"
    " mcp-method, mcp-name"
)
RESOURCE = "https://as.example/api"
PRM_PATH = "/.well-known/oauth-protected-resource/api"

#: Every endpoint that never uses cookies, and a method it takes.
ENDPOINTS = [
    ("GET", "/.well-known/oauth-authorization-server/oauth2"),
    ("GET", "/oauth2/.well-known/oauth-authorization-server"),
    ("GET", "/oauth2/.well-known/openid-configuration"),
    ("GET", "/oauth2/jwks"),
    ("POST", "/oauth2/register"),
    ("GET", "/oauth2/register/some-client"),
    ("PUT", "/oauth2/register/some-client"),
    ("DELETE", "/oauth2/register/some-client"),
    ("POST", "/oauth2/token"),
    ("POST", "/oauth2/revoke"),
    ("POST", "/oauth2/device_authorization"),
    ("POST", "/oauth2/par"),
    ("GET", "/oauth2/userinfo"),
    ("POST", "/oauth2/userinfo"),
]
#: The pages people see, and introspection (for resource servers): no CORS.
SAME_ORIGIN = [
    ("GET", "/oauth2/authorize?response_type=code&client_id=x"),
    ("GET", "/oauth2/login"),
    ("POST", "/oauth2/login"),
    ("GET", "/oauth2/device"),
    ("GET", "/oauth2/logout"),
    ("POST", "/oauth2/introspect"),
]


@asynccontextmanager
async def authorization_server(
    **settings: Any,
) -> AsyncIterator[tuple[httpx.AsyncClient, AuthorizationServer]]:
    """OAuth2App at /oauth2 (its metadata at the root too) and a protected /api beside it."""
    values: dict[str, Any] = {
        "issuer": ISSUER,
        "key_encryption_key": KEK,
        "client_registration": "open",
        "scopes_supported": ("read", "write"),
        **settings,
    }
    server = AuthorizationServer(MemoryStorage(), Settings(**values))
    oauth = OAuth2App(server)
    app = Starlette(routes=[Mount("/oauth2", oauth), oauth.metadata_route])
    async with connect(app, "https://as.example") as client:
        yield client, server
    await server.close()


@asynccontextmanager
async def connect(app: ASGIApp, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
        yield client


@pytest.fixture
async def oauth() -> AsyncIterator[tuple[httpx.AsyncClient, AuthorizationServer]]:
    async with authorization_server() as running:
        yield running


async def preflight(
    http: httpx.AsyncClient, method: str, path: str, origin: str = ELSEWHERE
) -> httpx.Response:
    """What a browser sends before a request that is not simple."""
    return await http.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": REQUESTED_HEADERS.replace(" ", ""),
        },
    )


def listed(response: httpx.Response, header: str) -> set[str]:
    return {v.strip().lower() for v in response.headers.get(header, "").split(",") if v.strip()}


def assert_preflight_allows(response: httpx.Response, method: str, origin: str = "*") -> None:
    assert response.status_code == 204, response.text
    assert response.headers["access-control-allow-origin"] == origin
    assert method.lower() in listed(response, "access-control-allow-methods")
    # Named one by one: a "*" would not cover Authorization (Fetch standard).
    wanted = {name.strip() for name in REQUESTED_HEADERS.split(",")}
    assert wanted <= listed(response, "access-control-allow-headers")
    assert int(response.headers["access-control-max-age"]) > 0
    assert "access-control-allow-credentials" not in response.headers


def assert_readable(response: httpx.Response, origin: str = "*") -> None:
    assert response.headers["access-control-allow-origin"] == origin
    assert {"www-authenticate", "dpop-nonce"} <= listed(response, "access-control-expose-headers")
    assert "access-control-allow-credentials" not in response.headers
    if origin != "*":
        assert "origin" in listed(response, "vary")


def assert_no_cors(response: httpx.Response) -> None:
    assert not [name for name in response.headers if name.startswith("access-control-")]


async def call(http: httpx.AsyncClient, method: str, path: str, origin: str) -> httpx.Response:
    """A request as a page's ``fetch`` sends it: a JSON body where the endpoint reads one."""
    json_body = path.startswith("/oauth2/register") and method in ("POST", "PUT")
    return await http.request(
        method, path, json={} if json_body else None, headers={"Origin": origin}
    )


# -- the authorization server ---------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_any_origin_may_preflight_every_endpoint_without_cookies(
    oauth: tuple[httpx.AsyncClient, AuthorizationServer], method: str, path: str
) -> None:
    http, _ = oauth
    assert_preflight_allows(await preflight(http, method, path), method)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_any_origin_may_read_every_answer_errors_included(
    oauth: tuple[httpx.AsyncClient, AuthorizationServer], method: str, path: str
) -> None:
    http, _ = oauth
    response = await call(http, method, path, ELSEWHERE)
    assert response.status_code < 500, response.text
    assert_readable(response)


async def test_successes_and_refusals_alike_are_readable(
    oauth: tuple[httpx.AsyncClient, AuthorizationServer],
) -> None:
    http, server = oauth
    origin = {"Origin": ELSEWHERE}
    registered = await http.post(
        "/oauth2/register",
        json={"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none"},
        headers=origin,
    )
    assert registered.status_code == 201, registered.text
    assert_readable(registered)
    bad_grant = await http.post("/oauth2/token", data={"grant_type": "x"}, headers=origin)
    assert bad_grant.status_code == 400
    assert bad_grant.json()["error"] == "unsupported_grant_type"
    assert_readable(bad_grant)
    no_token = await http.get("/oauth2/userinfo", headers=origin)
    assert no_token.status_code == 401
    assert no_token.headers["www-authenticate"].startswith("Bearer")
    assert_readable(no_token)
    wrong_type = await http.post("/oauth2/register", content=b"{}", headers=origin)
    assert wrong_type.status_code == 415
    assert_readable(wrong_type)
    secret = await server.register_client(name="c", grant_types=["client_credentials"])
    creds = Credentials(secret.client.client_id, secret.client_secret)
    token = await http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=creds.basic, headers=origin
    )
    assert token.status_code == 200, token.text
    assert_readable(token)


@pytest.mark.parametrize(("method", "path"), SAME_ORIGIN)
async def test_pages_and_introspection_carry_no_cors_headers(
    oauth: tuple[httpx.AsyncClient, AuthorizationServer], method: str, path: str
) -> None:
    http, _ = oauth
    assert_no_cors(await call(http, method, path, ELSEWHERE))
    refused = await preflight(http, method, path)
    assert refused.status_code >= 400
    assert_no_cors(refused)


async def test_a_narrowed_list_refuses_other_origins() -> None:
    async with authorization_server(cors_origins=(LISTED,)) as (http, _):
        for method, path in ENDPOINTS:
            refused = await preflight(http, method, path, "https://evil.example")
            assert refused.status_code == 403, path
            assert_no_cors(refused)
            answer = await call(http, method, path, "https://evil.example")
            assert_no_cors(answer)
            # The answer depends on Origin: no cache may hand it to the listed origin.
            assert "origin" in listed(answer, "vary"), path
            assert_preflight_allows(await preflight(http, method, path, LISTED), method, LISTED)
            assert_readable(await call(http, method, path, LISTED), LISTED)


@pytest.mark.parametrize("cors_origins", [(LISTED,), ()])
async def test_origins_clients_registered_stay_allowed_when_narrowed(
    cors_origins: tuple[str, ...],
) -> None:
    async with authorization_server(cors_origins=cors_origins) as (http, server):
        await server.register_client(
            name="SPA", redirect_uris=[REDIRECT_URI], public=True, allowed_origins=[REGISTERED]
        )
        for method, path in ENDPOINTS:
            allowed = await preflight(http, method, path, REGISTERED)
            assert_preflight_allows(allowed, method, REGISTERED)
            assert_readable(await call(http, method, path, REGISTERED), REGISTERED)
        assert (await preflight(http, "POST", "/oauth2/token")).status_code == 403


async def test_an_options_request_that_is_no_preflight_is_not_allowed(
    oauth: tuple[httpx.AsyncClient, AuthorizationServer],
) -> None:
    http, _ = oauth
    response = await http.options("/oauth2/token")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


# -- the bearer middleware --------------------------------------------------------


class Api:
    """The protected application: it records every request that reaches it."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    def routes(self) -> list[Route]:
        async def data(request: Request) -> Response:
            self.methods.append(request.method)
            return JSONResponse({"ok": True}, headers={"Mcp-Session-Id": "s-1"})

        async def own_cors(request: Request) -> Response:
            self.methods.append(request.method)
            return JSONResponse({}, headers={"Access-Control-Allow-Origin": "https://own.example"})

        async def public(request: Request) -> Response:
            return JSONResponse({})

        return [
            Route("/api/data", data, methods=["GET", "POST", "DELETE"]),
            Route("/api/own", own_cors),
            Route("/health", public),
        ]


@asynccontextmanager
async def protected(
    api: Api, cors_origins: Iterable[str] | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, AuthorizationServer]]:
    server = AuthorizationServer(MemoryStorage(), Settings(issuer=ISSUER))
    options: dict[str, Any] = {} if cors_origins is None else {"cors_origins": cors_origins}
    app = BearerTokenMiddleware(
        Starlette(routes=api.routes()),
        introspector=server,
        protect={"/api": "read"},
        public=["/health"],
        resource=RESOURCE,
        **options,
    )
    async with connect(app, "https://as.example") as client:
        yield client, server
    await server.close()


async def token_for(server: AuthorizationServer, scope: str) -> dict[str, str]:
    registered = await server.register_client(
        name="c", grant_types=["client_credentials"], scope=["read", "write"]
    )
    creds = Credentials(registered.client.client_id, registered.client_secret)
    issued = await server.token(request(creds, grant_type="client_credentials", scope=scope))
    return {"Authorization": f"Bearer {issued.access_token}"}


def assert_resource_readable(response: httpx.Response, origin: str = "*") -> None:
    assert_readable(response, origin)
    assert "mcp-session-id" in listed(response, "access-control-expose-headers")


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
async def test_a_preflight_on_a_protected_path_needs_no_token_and_never_reaches_the_app(
    method: str,
) -> None:
    api = Api()
    async with protected(api) as (http, _):
        response = await preflight(http, method, "/api/data")
    assert_preflight_allows(response, method)
    assert api.methods == []


async def test_a_preflight_may_ask_for_a_tools_own_parameter_headers() -> None:
    """MCP 2026-07-28: ``Mcp-Param-<Name>`` headers, named by each tool."""
    async with protected(Api()) as (http, _):
        response = await http.options(
            "/api/data",
            headers={
                "Origin": ELSEWHERE,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,mcp-param-region,x-other",
            },
        )
    allowed = listed(response, "access-control-allow-headers")
    assert {"authorization", "mcp-param-region"} <= allowed
    assert "x-other" not in allowed


async def test_a_forged_preflight_still_needs_a_token_when_cors_is_off() -> None:
    api = Api()
    async with protected(api, cors_origins=()) as (http, _):
        response = await preflight(http, "POST", "/api/data")
        metadata = await http.get(PRM_PATH, headers={"Origin": ELSEWHERE})
        no_token = await http.post("/api/data", headers={"Origin": ELSEWHERE})
    assert response.status_code == 401
    assert_no_cors(response)
    assert api.methods == []
    assert metadata.status_code == 200
    assert_no_cors(metadata)
    assert no_token.status_code == 401
    assert_no_cors(no_token)


async def test_refusals_expose_the_challenge() -> None:
    async with protected(Api()) as (http, server):
        origin = {"Origin": ELSEWHERE}
        missing = await http.post("/api/data", headers=origin)
        invalid = await http.post("/api/data", headers={**origin, "Authorization": "Bearer nope"})
        too_little = await http.post(
            "/api/data", headers={**origin, **await token_for(server, "write")}
        )
    assert missing.status_code == 401
    assert "resource_metadata=" in missing.headers["www-authenticate"]
    assert invalid.status_code == 401
    assert too_little.status_code == 403
    for refusal in (missing, invalid, too_little):
        assert_resource_readable(refusal)


async def test_the_apps_answers_on_protected_paths_are_readable() -> None:
    async with protected(Api()) as (http, server):
        authorization = await token_for(server, "read")
        answer = await http.post("/api/data", headers={"Origin": ELSEWHERE, **authorization})
        own = await http.get("/api/own", headers={"Origin": ELSEWHERE, **authorization})
        public = await http.get("/health", headers={"Origin": ELSEWHERE})
    assert answer.status_code == 200
    assert answer.headers["mcp-session-id"] == "s-1"
    assert_resource_readable(answer)
    # The app's own CORS answer stands, alone.
    assert own.headers.get_list("access-control-allow-origin") == ["https://own.example"]
    assert "access-control-expose-headers" not in own.headers
    # Not protected, not the middleware's to answer for.
    assert_no_cors(public)


async def test_protected_resource_metadata_is_readable() -> None:
    async with protected(Api()) as (http, _):
        allowed = await preflight(http, "GET", PRM_PATH)
        metadata = await http.get(PRM_PATH, headers={"Origin": ELSEWHERE})
    assert_preflight_allows(allowed, "GET")
    assert metadata.status_code == 200
    assert metadata.json()["resource"] == RESOURCE
    assert_resource_readable(metadata)


async def test_a_narrowed_middleware_refuses_other_origins() -> None:
    api = Api()
    async with protected(api, cors_origins=(LISTED,)) as (http, server):
        refused = await preflight(http, "POST", "/api/data", "https://evil.example")
        refused_metadata = await preflight(http, "GET", PRM_PATH, "https://evil.example")
        other = await http.post("/api/data", headers={"Origin": "https://evil.example"})
        allowed = await preflight(http, "POST", "/api/data", LISTED)
        authorization = await token_for(server, "read")
        answer = await http.post("/api/data", headers={"Origin": LISTED, **authorization})
    for refusal in (refused, refused_metadata):
        assert refusal.status_code == 403
        assert_no_cors(refusal)
    assert other.status_code == 401
    assert_no_cors(other)
    assert "origin" in listed(other, "vary")
    assert_preflight_allows(allowed, "POST", LISTED)
    assert_resource_readable(answer, LISTED)
    assert api.methods == ["POST"]
