"""DPoP-bound access tokens at BearerTokenMiddleware (RFC 9449 §7, §9, §11.1).

Proofs are made here with PyJWT and ``cryptography``, a JOSE implementation the
server does not use. A bound token is a stored row with a ``jkt``, as the token
endpoint keeps one, or the answer of a stub introspector.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asgi_oauth import AuthorizationServer, IntrospectionResult
from asgi_oauth.app import OAuth2App
from asgi_oauth.crypto import hash_token
from asgi_oauth.dpop import DPoPNonces
from asgi_oauth.middleware import BearerCredentials, BearerTokenMiddleware, require_scopes
from asgi_oauth.models import Token
from asgi_oauth.storage import MemoryStorage
from asgi_oauth.types import DPOP_SIGNING_ALGORITHMS

from ..conftest import FakeClock
from ..openid_helpers import openid_settings
from .test_bearer import bearer, connect

pytestmark = pytest.mark.anyio

API = "https://api.example"
URL = API + "/things"
ALGS = " ".join(DPOP_SIGNING_ALGORITHMS)
RESOURCE = API + "/v1"
METADATA_URL = API + "/.well-known/oauth-protected-resource/v1"

Headers = list[tuple[str, str]]


# -- proofs, made as a client makes them --------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638: SHA-256 of the required members, sorted, without whitespace."""
    required = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    return b64(hashlib.sha256(json.dumps(required, separators=(",", ":")).encode()).digest())


class Holder:
    """A client's DPoP key (P-256), making proofs (RFC 9449 §4.2)."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.jwk: dict[str, str] = ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        self.jkt = thumbprint(self.jwk)

    def proof(
        self,
        token: str | None,
        method: str = "GET",
        url: str = URL,
        *,
        iat: int | None = None,
        nonce: str | None = None,
        signer: ec.EllipticCurvePrivateKey | None = None,
    ) -> str:
        claims: dict[str, object] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time()) if iat is None else iat,
        }
        if token is not None:
            claims["ath"] = b64(hashlib.sha256(token.encode()).digest())
        if nonce is not None:
            claims["nonce"] = nonce
        header = {"typ": "dpop+jwt", "jwk": self.jwk}
        return jwt.encode(claims, signer or self.key, algorithm="ES256", headers=header)

    def headers(self, token: str, **proof: Any) -> Headers:
        """``Authorization: DPoP`` and the proof, for a GET of ``URL`` unless told."""
        return [("authorization", f"DPoP {token}"), ("dpop", self.proof(token, **proof))]


async def stored_token(
    server: AuthorizationServer,
    audience: tuple[str, ...] = (),
    *,
    jkt: str | None = None,
    scope: str = "read",
    subject: str | None = "user-1",
) -> str:
    """An opaque access token saved as the token endpoint saves one: by its hash."""
    value = secrets.token_urlsafe(32)
    now = int(server.now())
    row = Token(
        token_hash=hash_token(value),
        kind="access_token",
        client_id="client-1",
        scope=frozenset(scope.split()),
        family_id=secrets.token_hex(8),
        issued_at=now,
        expires_at=now + 600,
        subject=subject,
        audience=audience,
        jkt=jkt,
    )
    await server.storage.save_tokens([row])
    return value


def challenges(response: httpx.Response) -> dict[str, dict[str, str]]:
    """Each challenge of the one ``WWW-Authenticate`` field, by scheme."""
    (header,) = response.headers.get_list("www-authenticate")
    parts = re.split(r"(?:^|, )(Bearer|DPoP) ", header)
    assert parts[0] == "", header
    return {
        scheme: dict(re.findall(r'([a-z_]+)="([^"]*)"', attributes))
        for scheme, attributes in zip(parts[1::2], parts[2::2], strict=True)
    }


def refused(response: httpx.Response, error: str, status: int = 401) -> dict[str, str]:
    """The DPoP challenge of a refusal with ``error``, checked to be the only one."""
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"
    found = challenges(response)
    assert list(found) == ["DPoP"], found
    assert found["DPoP"]["error"] == error
    assert found["DPoP"]["algs"] == ALGS
    return found["DPoP"]


# -- the protected app ---------------------------------------------------------------------


async def whoami(scope: Scope, receive: Receive, send: Send) -> None:
    """What the route learns: who calls, and whether the token was DPoP-bound."""
    auth: BearerCredentials = scope["auth"]
    body = {
        "authenticated": scope["user"].is_authenticated,
        "subject": getattr(scope["user"], "subject", None),
        "scopes": auth.scopes,
        "dpop": auth.dpop,
        "jkt": auth.jkt,
        "error": None if auth.error is None else auth.error.error,
    }
    await JSONResponse(body)(scope, receive, send)


def api(introspector: Any, **options: Any) -> BearerTokenMiddleware:
    """Every path needs a token; /admin needs admin; /open needs none."""
    return BearerTokenMiddleware(
        whoami,
        introspector=introspector,
        protect={"/": "", "/admin": "admin"},
        public=["/open"],
        **options,
    )


@pytest.fixture
def holder() -> Holder:
    return Holder()


@pytest.fixture
async def bound(server: AuthorizationServer, holder: Holder) -> str:
    return await stored_token(server, jkt=holder.jkt)


@pytest.fixture
async def client(server: AuthorizationServer) -> AsyncIterator[httpx.AsyncClient]:
    async with connect(api(server)) as client:
        yield client


# -- a good request ------------------------------------------------------------------------


async def test_a_bound_token_with_its_proof_reaches_the_route(
    client: httpx.AsyncClient, holder: Holder, bound: str
) -> None:
    response = await client.get("/things", headers=holder.headers(bound))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "authenticated": True,
        "subject": "user-1",
        "scopes": ["read"],
        "dpop": True,
        "jkt": holder.jkt,
        "error": None,
    }
    again = await client.get("/things", headers=holder.headers(bound))
    assert again.status_code == 200  # a fresh proof, the token's answer cached


async def test_a_proof_is_checked_on_every_request_though_the_token_is_cached(
    client: httpx.AsyncClient, holder: Holder, bound: str
) -> None:
    assert (await client.get("/things", headers=holder.headers(bound))).status_code == 200
    forged = holder.headers(bound, signer=ec.generate_private_key(ec.SECP256R1()))
    response = await client.get("/things", headers=forged)
    refused(response, "invalid_dpop_proof")


async def test_an_unbound_token_still_works_as_a_bearer_token(
    client: httpx.AsyncClient, server: AuthorizationServer
) -> None:
    token = await stored_token(server, jkt=None)
    response = await client.get("/things", headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["dpop"] is False
    assert response.json()["jkt"] is None


async def test_a_post_is_proved_with_its_method(
    client: httpx.AsyncClient, holder: Holder, bound: str
) -> None:
    response = await client.post("/things", headers=holder.headers(bound, method="POST"))
    assert response.status_code == 200


# -- proofs that do not fit ------------------------------------------------------------------


def _no_header(h: Holder, token: str) -> Headers:
    return [("authorization", f"DPoP {token}")]


def _two_headers(h: Holder, token: str) -> Headers:
    return [*h.headers(token), ("dpop", h.proof(token))]


def _bad_signature(h: Holder, token: str) -> Headers:
    return h.headers(token, signer=ec.generate_private_key(ec.SECP256R1()))


def _changed(**proof: Any) -> Callable[[Holder, str], Headers]:
    def make(h: Holder, token: str) -> Headers:
        return h.headers(token, **proof)

    return make


def _proof_for(token: str | None) -> Callable[[Holder, str], Headers]:
    def make(h: Holder, sent: str) -> Headers:
        return [("authorization", f"DPoP {sent}"), ("dpop", h.proof(token))]

    return make


def _not_a_jwt(h: Holder, token: str) -> Headers:
    return [("authorization", f"DPoP {token}"), ("dpop", "not.a-proof")]


BAD_PROOFS: dict[str, Callable[[Holder, str], Headers]] = {
    "no DPoP header": _no_header,
    "two DPoP headers": _two_headers,
    "bad signature": _bad_signature,
    "wrong htm": _changed(method="POST"),
    "wrong htu path": _changed(url=API + "/other"),
    "wrong htu host": _changed(url="https://other.example/things"),
    "http for https": _changed(url="http://api.example/things"),
    "stale iat": _changed(iat=int(time.time()) - 3600),
    "iat in the future": _changed(iat=int(time.time()) + 3600),
    "ath of another token": _proof_for("another-token"),
    "no ath": _proof_for(None),
    "not a JWS": _not_a_jwt,
}


@pytest.mark.parametrize("make", BAD_PROOFS.values(), ids=BAD_PROOFS.keys())
async def test_a_proof_that_does_not_fit_is_401_invalid_dpop_proof(
    client: httpx.AsyncClient, holder: Holder, bound: str, make: Callable[[Holder, str], Headers]
) -> None:
    response = await client.get("/things", headers=make(holder, bound))
    refused(response, "invalid_dpop_proof")


async def test_a_replayed_proof_is_refused(
    client: httpx.AsyncClient, holder: Holder, bound: str
) -> None:
    headers = holder.headers(bound)
    assert (await client.get("/things", headers=headers)).status_code == 200
    replayed = await client.get("/things", headers=headers)
    attributes = refused(replayed, "invalid_dpop_proof")
    assert attributes["error_description"] == "the DPoP proof was used before"


async def test_a_proof_by_another_key_than_the_tokens_is_invalid_token(
    client: httpx.AsyncClient, bound: str
) -> None:
    response = await client.get("/things", headers=Holder().headers(bound))
    attributes = refused(response, "invalid_token")
    assert attributes["error_description"] == "the access token is bound to another DPoP key"


async def test_a_bound_token_sent_as_a_bearer_token_is_refused(
    client: httpx.AsyncClient, bound: str
) -> None:
    """RFC 9449 §7.2: a stolen bound token is no bearer token."""
    response = await client.get("/things", headers=bearer(bound))
    assert response.status_code == 401
    assert challenges(response) == {
        "Bearer": {
            "realm": "api",
            "error": "invalid_token",
            "error_description": "a DPoP-bound access token needs the DPoP scheme",
        }
    }


async def test_an_unbound_token_with_the_dpop_scheme_is_invalid_token(
    client: httpx.AsyncClient, server: AuthorizationServer, holder: Holder
) -> None:
    token = await stored_token(server, jkt=None)
    response = await client.get("/things", headers=holder.headers(token))
    attributes = refused(response, "invalid_token")
    assert attributes["error_description"] == "the access token is not bound to a DPoP key"


async def test_a_bad_token_with_a_good_proof_is_invalid_token(
    client: httpx.AsyncClient, holder: Holder
) -> None:
    refused(await client.get("/things", headers=holder.headers("unknown")), "invalid_token")


async def test_malformed_dpop_credentials_are_400_invalid_request(
    client: httpx.AsyncClient, holder: Holder
) -> None:
    token = "not a token"
    headers = [("authorization", f"DPoP {token}"), ("dpop", holder.proof(token))]
    refused(await client.get("/things", headers=headers), "invalid_request", status=400)


async def test_too_little_scope_is_403_with_a_dpop_challenge(
    client: httpx.AsyncClient, holder: Holder, bound: str
) -> None:
    response = await client.get("/admin", headers=holder.headers(bound, url=API + "/admin"))
    assert refused(response, "insufficient_scope", status=403)["scope"] == "admin read"


# -- what introspection says -----------------------------------------------------------------


class Answer:
    """An introspector that says the same of every token (another server's answer)."""

    def __init__(self, info: IntrospectionResult) -> None:
        self.info = info

    async def introspect_token(self, token: str) -> IntrospectionResult:
        return self.info


async def test_a_token_another_server_says_is_bound_is_honoured(holder: Holder) -> None:
    info = IntrospectionResult(
        active=True, scope=frozenset({"read"}), sub="remote", token_type="DPoP", jkt=holder.jkt
    )
    async with connect(api(Answer(info))) as client:
        passed = await client.get("/things", headers=holder.headers("remote-token"))
        as_bearer = await client.get("/things", headers=bearer("remote-token"))
    assert passed.status_code == 200
    assert passed.json()["subject"] == "remote"
    assert challenges(as_bearer)["Bearer"]["error"] == "invalid_token"


async def test_a_dpop_token_type_without_a_key_is_no_token(holder: Holder) -> None:
    info = IntrospectionResult(active=True, scope=frozenset({"read"}), token_type="DPoP")
    async with connect(api(Answer(info))) as client:
        response = await client.get("/things", headers=bearer("remote-token"))
    assert response.status_code == 401
    assert challenges(response)["Bearer"]["error"] == "invalid_token"


# -- nonces, required DPoP and challenges -------------------------------------------------------


async def test_a_required_nonce_is_handed_out_and_then_accepted(
    server: AuthorizationServer, holder: Holder, bound: str
) -> None:
    """RFC 9449 §9: 401 use_dpop_nonce with a DPoP-Nonce header; the retry carries it."""
    nonces = DPoPNonces("a secret of the resource server, long enough")
    async with connect(api(server, dpop_nonces=nonces)) as client:
        first = await client.get("/things", headers=holder.headers(bound))
        refused(first, "use_dpop_nonce")
        nonce = first.headers["dpop-nonce"]
        wrong = await client.get("/things", headers=holder.headers(bound, nonce="made-up"))
        retried = await client.get("/things", headers=holder.headers(bound, nonce=nonce))
    refused(wrong, "use_dpop_nonce")
    assert wrong.headers["dpop-nonce"] == nonce
    assert retried.status_code == 200, retried.text


async def test_require_dpop_takes_no_bearer_token(
    server: AuthorizationServer, holder: Holder, bound: str
) -> None:
    token = await stored_token(server, jkt=None)
    async with connect(api(server, require_dpop=True)) as client:
        as_bearer = await client.get("/things", headers=bearer(token))
        without = await client.get("/things")
        with_proof = await client.get("/things", headers=holder.headers(bound))
    for response in (as_bearer, without):
        assert response.status_code == 401
        # RFC 6750 §3.1: a scheme not taken here is as no token: no error code.
        assert response.headers["www-authenticate"] == f'DPoP realm="api", algs="{ALGS}"'
        assert response.json() == {"error_description": "a DPoP-bound access token is required"}
    assert with_proof.status_code == 200


@pytest.mark.parametrize("option", ["allow_query_token", "allow_form_token"])
async def test_require_dpop_with_query_or_form_tokens_is_a_value_error(
    server: AuthorizationServer, option: str
) -> None:
    options: dict[str, Any] = {option: True}
    with pytest.raises(ValueError, match="require_dpop"):
        BearerTokenMiddleware(whoami, introspector=server, require_dpop=True, **options)


async def test_a_request_without_a_token_is_offered_both_schemes(
    server: AuthorizationServer,
) -> None:
    async with connect(api(server, resource=RESOURCE)) as client:
        response = await client.get("/things")
    assert response.status_code == 401
    assert challenges(response) == {
        "Bearer": {"realm": "api", "resource_metadata": METADATA_URL},
        "DPoP": {"realm": "api", "algs": ALGS, "resource_metadata": METADATA_URL},
    }


async def test_metadata_names_the_proof_algorithms_and_whether_dpop_is_required(
    server: AuthorizationServer,
) -> None:
    async with connect(api(server, resource=RESOURCE)) as client:
        either = (await client.get("/.well-known/oauth-protected-resource/v1")).json()
    async with connect(api(server, resource=RESOURCE, require_dpop=True)) as client:
        only = (await client.get("/.well-known/oauth-protected-resource/v1")).json()
    assert either["dpop_signing_alg_values_supported"] == list(DPOP_SIGNING_ALGORITHMS)
    assert "dpop_bound_access_tokens_required" not in either
    assert either["bearer_methods_supported"] == ["header"]
    assert only["dpop_signing_alg_values_supported"] == list(DPOP_SIGNING_ALGORITHMS)
    assert only["dpop_bound_access_tokens_required"] is True
    assert only["bearer_methods_supported"] == []


# -- the URL a proof names -------------------------------------------------------------------


async def test_with_a_resource_the_proof_names_its_origin_whatever_the_host_header(
    server: AuthorizationServer, holder: Holder, bound: str
) -> None:
    lying = [("host", "evil.example")]
    async with connect(api(server, resource=RESOURCE)) as client:
        for_host = await client.get(
            "/things", headers=holder.headers(bound, url="https://evil.example/things") + lying
        )
        for_origin = await client.get("/things", headers=holder.headers(bound) + lying)
    refused(for_host, "invalid_dpop_proof")
    assert for_origin.status_code == 200


async def test_without_a_resource_the_host_header_names_the_origin(
    server: AuthorizationServer, holder: Holder, bound: str
) -> None:
    url = "https://other.example/things"
    async with connect(api(server)) as client:
        response = await client.get(
            "/things", headers=[*holder.headers(bound, url=url), ("host", "other.example")]
        )
    assert response.status_code == 200


async def test_an_explicit_origin_wins(
    server: AuthorizationServer, holder: Holder, bound: str
) -> None:
    async with connect(api(server, origin="https://public.example:8443")) as client:
        api_example = await client.get("/things", headers=holder.headers(bound))
        public = await client.get(
            "/things", headers=holder.headers(bound, url="https://public.example:8443/things")
        )
    refused(api_example, "invalid_dpop_proof")
    assert public.status_code == 200


async def test_the_proof_names_the_mount_path_too(
    server: AuthorizationServer, holder: Holder, bound: str
) -> None:
    app = Starlette(routes=[Mount("/v1", app=api(server, resource=RESOURCE))])
    async with connect(app) as client:
        mounted = await client.get(
            "/v1/things", headers=holder.headers(bound, url=RESOURCE + "/things")
        )
        unmounted = await client.get("/v1/things", headers=holder.headers(bound))
    assert mounted.status_code == 200, mounted.text
    refused(unmounted, "invalid_dpop_proof")


async def test_an_origin_that_is_no_http_url_is_a_value_error(server: AuthorizationServer) -> None:
    with pytest.raises(ValueError, match="origin must be an http"):
        BearerTokenMiddleware(whoami, introspector=server, origin="api.example")


# -- public paths, route-level checks, websockets --------------------------------------------


async def test_on_a_public_path_a_bad_proof_leaves_the_caller_anonymous(
    client: httpx.AsyncClient, holder: Holder, bound: str
) -> None:
    response = await client.get("/open", headers=holder.headers(bound, url=URL))
    assert response.status_code == 200
    assert response.json()["authenticated"] is False
    assert response.json()["error"] == "invalid_dpop_proof"


@require_scopes("write")
async def writer(request: Request) -> Response:
    return JSONResponse({"writer": request.user.identity})


async def test_route_level_checks_answer_with_a_dpop_challenge(
    server: AuthorizationServer, holder: Holder, bound: str
) -> None:
    app = Starlette(routes=[Route("/write", writer)])
    protected = BearerTokenMiddleware(app, introspector=server, public=["/"])
    url = API + "/write"
    async with connect(protected) as client:
        too_little = await client.get("/write", headers=holder.headers(bound, url=url))
        bad_proof = await client.get("/write", headers=holder.headers(bound))
    assert refused(too_little, "insufficient_scope", status=403)["scope"] == "read write"
    refused(bad_proof, "invalid_dpop_proof")


async def test_a_websocket_is_proved_as_the_get_that_opens_it(
    server: AuthorizationServer, holder: Holder, bound: str
) -> None:
    seen: list[BearerCredentials] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["auth"])

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        raise AssertionError(f"refused: {message}")

    proof = holder.proof(bound, "GET", API + "/ws")
    scope = {
        "type": "websocket",
        "scheme": "wss",
        "path": "/ws",
        "query_string": b"",
        "headers": [
            (b"host", b"api.example"),
            (b"authorization", f"DPoP {bound}".encode()),
            (b"dpop", proof.encode()),
        ],
    }
    await BearerTokenMiddleware(app, introspector=server)(scope, receive, send)
    (credentials,) = seen
    assert credentials.dpop and credentials.jkt == holder.jkt


# -- the UserInfo endpoint --------------------------------------------------------------------


@pytest.fixture
async def provider() -> AsyncIterator[tuple[AuthorizationServer, httpx.AsyncClient]]:
    settings = openid_settings()
    server = AuthorizationServer(MemoryStorage(), settings, clock=FakeClock(time.time()))
    oauth_app = OAuth2App(server)
    app: ASGIApp = Starlette(routes=[Mount(settings.issuer_path, app=oauth_app)])
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://as.example"
        ) as http:
            yield server, http
    finally:
        await server.close()


async def test_userinfo_takes_a_bound_token_proved_for_its_url(
    provider: tuple[AuthorizationServer, httpx.AsyncClient], holder: Holder
) -> None:
    server, http = provider
    user = await server.create_user("alice", "correct horse battery staple")
    token = await stored_token(server, jkt=holder.jkt, scope="openid", subject=user.user_id)
    url = server.settings.issuer + "/userinfo"
    path = server.settings.issuer_path + "/userinfo"
    answered = await http.get(path, headers=holder.headers(token, url=url))
    as_bearer = await http.get(path, headers=bearer(token))
    lying = holder.headers(token, url="https://evil.example/oauth2/userinfo")
    for_host = await http.get(path, headers=[*lying, ("host", "evil.example")])
    assert answered.status_code == 200, answered.text
    assert answered.json() == {"sub": user.user_id}
    assert challenges(as_bearer)["Bearer"]["error"] == "invalid_token"
    refused(for_host, "invalid_dpop_proof")


async def test_userinfo_refuses_a_bound_token_of_no_user_with_a_dpop_challenge(
    provider: tuple[AuthorizationServer, httpx.AsyncClient], holder: Holder
) -> None:
    server, http = provider
    token = await stored_token(server, jkt=holder.jkt, scope="openid", subject=None)
    url = server.settings.issuer + "/userinfo"
    response = await http.get(
        server.settings.issuer_path + "/userinfo", headers=holder.headers(token, url=url)
    )
    attributes = refused(response, "invalid_token")
    assert attributes["realm"] == "userinfo"
