"""Which paths need a token and which scopes: ``protect`` and ``public``, longest prefix wins."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from asgi_oauth import AuthorizationServer
from asgi_oauth.middleware import BearerTokenMiddleware
from asgi_oauth.middleware.rules import Rule, build_rules, match

from ..conftest import Credentials
from .test_bearer import access_token, bearer, challenge, connect, echo

pytestmark = pytest.mark.anyio

Protect = Mapping[str, str | Iterable[str]] | None


async def status_without_token(
    server: AuthorizationServer, path: str, protect: Protect, public: Iterable[str] = ()
) -> int:
    app = BearerTokenMiddleware(echo, introspector=server, protect=protect, public=public)
    async with connect(app) as client:
        return (await client.get(path)).status_code


@pytest.mark.parametrize(
    ("protect", "public", "path", "status"),
    [
        (None, (), "/", 401),
        (None, (), "/anything/at/all", 401),
        (None, ("/health",), "/health", 200),
        (None, ("/health",), "/health/live", 200),
        (None, ("/health",), "/healthz", 401),
        (None, ("/health/",), "/health", 200),
        ({"/api": ""}, (), "/api", 401),
        ({"/api": ""}, (), "/api/items", 401),
        ({"/api": ""}, (), "/apiary", 200),
        ({"/api": ""}, (), "/", 200),
        ({"/api": ""}, ("/api/health",), "/api/health", 200),
        ({"/api": ""}, ("/api/health",), "/api/healthcheck", 401),
        ({"/api": ""}, ("/api/health",), "/api/items", 401),
        ({"/api/private": ""}, ("/api",), "/api/private/x", 401),
        ({"/api/private": ""}, ("/api",), "/api/public", 200),
        ({"/": ""}, ("/",), "/x", 200),
    ],
)
async def test_longest_prefix_decides_whether_a_token_is_needed(
    server: AuthorizationServer,
    protect: Protect,
    public: tuple[str, ...],
    path: str,
    status: int,
) -> None:
    assert await status_without_token(server, path, protect, public) == status


@pytest.mark.parametrize("scopes", ["read write", ["read", "write"], ("write", "read")])
async def test_protect_values_are_a_string_or_a_list(
    server: AuthorizationServer, caller: Credentials, scopes: str | list[str]
) -> None:
    app = BearerTokenMiddleware(echo, introspector=server, protect={"/": scopes})
    async with connect(app) as client:
        short = await client.get("/", headers=bearer(await access_token(server, caller, "read")))
        both = await access_token(server, caller, "read write")
        enough = await client.get("/", headers=bearer(both))
    assert short.status_code == 403
    assert challenge(short)["scope"] == "read write"
    assert enough.status_code == 200


async def test_public_path_without_a_token_sees_an_anonymous_user(
    server: AuthorizationServer,
) -> None:
    async with connect(BearerTokenMiddleware(echo, introspector=server, public=["/"])) as client:
        seen = (await client.get("/")).json()
    assert seen["authenticated"] is False
    assert seen["scopes"] == []
    assert seen["error"] is None  # no token: the "missing" error, which has no code
    assert seen["error_status"] == 401


async def test_public_path_with_a_valid_token_still_sees_the_user(
    server: AuthorizationServer, caller: Credentials
) -> None:
    token = await access_token(server, caller, "read")
    app = BearerTokenMiddleware(echo, introspector=server, public=["/health"])
    async with connect(app) as client:
        seen = (await client.get("/health", headers=bearer(token))).json()
    assert seen["authenticated"] is True
    assert seen["client_id"] == caller.client_id
    assert seen["scopes"] == ["read"]


async def test_public_path_with_an_invalid_token_sees_an_anonymous_user_and_the_error(
    server: AuthorizationServer,
) -> None:
    app = BearerTokenMiddleware(echo, introspector=server, public=["/health"])
    async with connect(app) as client:
        response = await client.get("/health", headers=bearer("garbage"))
    assert response.status_code == 200
    seen = response.json()
    assert seen["authenticated"] is False
    assert seen["error"] == "invalid_token"
    assert seen["error_status"] == 401


async def test_path_outside_every_rule_with_a_valid_token_sees_the_user(
    server: AuthorizationServer, caller: Credentials
) -> None:
    token = await access_token(server, caller, "read")
    app = BearerTokenMiddleware(echo, introspector=server, protect={"/api": "admin"})
    async with connect(app) as client:
        seen = (await client.get("/elsewhere", headers=bearer(token))).json()
    assert seen["authenticated"] is True


async def test_malformed_header_on_a_public_path_passes_with_the_error_noted(
    server: AuthorizationServer,
) -> None:
    # A public path (an authorization server's own endpoints, say) answers bad
    # credentials itself; the middleware only notes what it found.
    app = BearerTokenMiddleware(echo, introspector=server, public=["/"])
    async with connect(app) as client:
        response = await client.get("/", headers={"authorization": "Bearer a b"})
    assert response.status_code == 200
    seen = response.json()
    assert seen["authenticated"] is False
    assert seen["error"] == "invalid_request"
    assert seen["error_status"] == 400


async def test_malformed_header_on_a_protected_path_is_400(server: AuthorizationServer) -> None:
    app = BearerTokenMiddleware(echo, introspector=server)
    async with connect(app) as client:
        response = await client.get("/", headers={"authorization": "Bearer a b"})
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


async def test_rules_match_the_path_below_a_starlette_mount(
    server: AuthorizationServer, caller: Credentials
) -> None:
    inner = BearerTokenMiddleware(
        echo, introspector=server, protect={"/admin": "admin"}, public=["/health"]
    )
    token = await access_token(server, caller, "read")
    async with connect(Starlette(routes=[Mount("/v1", app=inner)])) as client:
        health = await client.get("/v1/health")
        admin = await client.get("/v1/admin", headers=bearer(token))
        other = await client.get("/v1/other")
    assert health.status_code == 200
    assert health.json()["path"] == "/v1/health"
    assert admin.status_code == 403
    assert other.status_code == 200  # outside /admin: no rule applies


@pytest.mark.parametrize(
    ("path", "status"),
    [("/prefix/health", 200), ("/prefix/data", 401), ("/prefix", 401), ("/health", 200)],
)
async def test_rules_match_the_path_below_root_path(
    server: AuthorizationServer, path: str, status: int
) -> None:
    """``path`` includes ``root_path`` (ASGI 3); a server that strips it is understood too."""
    app = BearerTokenMiddleware(echo, introspector=server, public=["/health"])
    async with connect(app, root_path="/prefix") as client:
        assert (await client.get(path)).status_code == status


def test_rules_are_sorted_longest_prefix_first_and_normalised() -> None:
    rules = build_rules({"/": "", "/api/": "read write", "/api/admin": ["admin"]}, ["/api/health"])
    assert rules == (
        Rule("/api/health", False, frozenset()),
        Rule("/api/admin", True, frozenset({"admin"})),
        Rule("/api", True, frozenset({"read", "write"})),
        Rule("/", True, frozenset()),
    )


def test_public_overrides_protect_for_the_same_prefix() -> None:
    assert build_rules({"/api": "read"}, ["/api"]) == (Rule("/api", False, frozenset()),)


def test_no_rule_matches_a_path_outside_every_prefix() -> None:
    assert match(build_rules({"/api": ""}, ()), "/apiary") is None


@pytest.mark.parametrize(("protect", "public"), [({"api": ""}, ()), ({}, ("health",))])
def test_prefix_without_leading_slash_is_a_value_error(
    protect: dict[str, str], public: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError, match="starts with '/'"):
        build_rules(protect, public)
