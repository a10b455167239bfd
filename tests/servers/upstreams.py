"""Fake upstream identity providers that sign-in tests drive over real HTTP.

* :class:`GitHubLike`: GitHub's OAuth app endpoints with their quirks (token errors
  as HTTP 200, form-encoded answers unless JSON is asked for, comma-separated scope);
  see https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps.
* :class:`FakeOpenIDProvider`: a small OpenID Connect provider (Core 1.0 §3.1,
  Discovery 1.0 §4, RFC 9207 ``iss``) whose answers tests can bend.

Both hold their state in plain attributes the test changes between sign-ins; codes
are single-use and bound to client and redirect_uri, PKCE is S256 (RFC 7636 §4.6).
``tests.upstream_helpers.serve_upstream`` runs one on a loopback port.
"""

from __future__ import annotations

import base64
import enum
import functools
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, unquote_plus, urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send


class Marker(enum.Enum):
    DELETE = "delete"
    ISSUER = "issuer"


#: In ``id_token_overrides`` / ``userinfo_overrides``: remove that claim.
DELETE: Final = Marker.DELETE
#: ``FakeOpenIDProvider.response_iss`` default: send the provider's own issuer.
ISSUER: Final = Marker.ISSUER
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

OCTOCAT: dict[str, Any] = {
    "id": 583231,
    "login": "octocat",
    "name": "The Octocat",
    "email": None,
    "avatar_url": "https://avatars.githubusercontent.com/u/583231?v=4",
    "html_url": "https://github.com/octocat",
}
OCTOCAT_EMAILS: list[dict[str, Any]] = [
    {"email": "octocat@github.com", "primary": True, "verified": True, "visibility": "private"},
]
JANE: dict[str, Any] = {
    "sub": "248289761001",
    "name": "Jane Doe",
    "email": "janedoe@example.com",
    "email_verified": True,
    "picture": "https://op.example/jane.png",
}


@functools.cache
def _shared_key(kid: str) -> RSAKey:
    """RSA keys are slow to make; every provider in a run may share one per kid."""
    key: RSAKey = RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"})
    return key


def s256(verifier: str) -> str:
    """The S256 code challenge of ``verifier`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Grant:
    """What a code (or later a token) stands for."""

    client_id: str
    redirect_uri: str | None
    scope: str
    person: dict[str, Any]
    code_challenge: str | None = None
    nonce: str | None = None
    prompt: str | None = None
    max_age: str | None = None
    auth_time: int = 0
    expires_at: float = float("inf")


@dataclass
class Upstream:
    """State both fakes share; ``base_url`` is set by ``serve_upstream``."""

    clients: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    base_url: str = "http://upstream.invalid"
    deny: bool = False
    down: bool = False
    clock: Callable[[], float] = time.time
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: int = 0
    codes: dict[str, Grant] = field(default_factory=dict)
    access_tokens: dict[str, Grant] = field(default_factory=dict)
    refresh_tokens: dict[str, Grant] = field(default_factory=dict)
    app: Starlette = field(init=False, repr=False)

    def add_client(self, client_id: str, secret: str | None, redirect_uri: str) -> None:
        """Register a client; ``secret=None``: a public client, which must use PKCE."""
        self.clients[client_id] = (secret, redirect_uri)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.down:
            await PlainTextResponse("upstream down", 503)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def check_authorize(self, query: dict[str, str]) -> str | Response:
        """The redirect_uri to answer at, or a 400 for a request that must not redirect."""
        self.authorize_requests.append(query)
        registered = self.clients.get(query.get("client_id", ""))
        if registered is None:
            return PlainTextResponse("unknown client_id", 400)
        redirect_uri = query.get("redirect_uri", registered[1])
        if redirect_uri != registered[1]:
            return PlainTextResponse("redirect_uri is not the registered one", 400)
        if query.get("code_challenge_method", "S256") != "S256":
            return PlainTextResponse("only S256 is supported", 400)
        return redirect_uri

    def authenticate(self, request: Request, form: dict[str, str]) -> str | None:
        """The client_id of a correctly authenticated client (RFC 6749 §2.3.1), else None."""
        auth = request.headers.get("authorization", "")
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        if auth[:6].lower() == "basic ":
            try:
                pair = base64.b64decode(auth[6:], validate=True).decode()
            except ValueError:
                return None
            basic_id, _, basic_secret = pair.partition(":")
            client_id, secret = unquote_plus(basic_id), unquote_plus(basic_secret)
        registered = self.clients.get(client_id)
        if registered is None or registered[0] != secret:
            return None
        return client_id

    def redeem(self, client_id: str, form: dict[str, str]) -> Grant | None:
        """The grant of a good code; the code is gone after its first use, good or bad."""
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or grant.client_id != client_id:
            return None
        if form.get("redirect_uri", grant.redirect_uri) != grant.redirect_uri:
            return None
        if grant.code_challenge is not None:
            if s256(form.get("code_verifier", "")) != grant.code_challenge:
                return None
        elif "code_verifier" in form or self.clients[client_id][0] is None:
            return None  # RFC 9700 §2.1.1; a public client without PKCE gets no tokens.
        return grant

    def rotate(self, client_id: str, form: dict[str, str]) -> Grant | None:
        grant = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
        return grant if grant is not None and grant.client_id == client_id else None

    def bearer(self, request: Request, *schemes: str) -> Grant | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        grant = self.access_tokens.get(token.strip()) if scheme.lower() in schemes else None
        return grant if grant is not None and grant.expires_at > self.clock() else None

    def new_access_token(self, grant: Grant, prefix: str, lifetime: float) -> str:
        token = prefix + secrets.token_urlsafe(27)
        self.access_tokens[token] = replace(grant, expires_at=self.clock() + lifetime)
        return token


def _redirect(uri: str, params: Mapping[str, str | None]) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return RedirectResponse(f"{uri}{'&' if '?' in uri else '?'}{query}", 302)


async def _form(request: Request) -> dict[str, str]:
    return dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))


@dataclass
class GitHubLike(Upstream):
    """GitHub's ``/login/oauth/*`` and ``/user`` API; ``person`` is who is signed in there."""

    person: dict[str, Any] = field(default_factory=lambda: dict(OCTOCAT))
    emails: list[dict[str, Any]] = field(default_factory=lambda: list(OCTOCAT_EMAILS))
    orgs: list[dict[str, Any]] = field(default_factory=lambda: [{"login": "acme", "id": 1}])
    expiring_tokens: bool = False
    token_lifetime: int = 28800
    refresh_token_lifetime: int = 15897600

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[
            Route("/login/oauth/authorize", self.authorize),
            Route("/login/oauth/access_token", self.token, methods=["POST"]),
            Route("/user", self.user),
            Route("/user/emails", self.user),
            Route("/user/orgs", self.user),
        ])  # fmt: skip

    async def authorize(self, request: Request) -> Response:
        query = dict(request.query_params)
        checked = self.check_authorize(query)
        if isinstance(checked, Response):
            return checked
        state = query.get("state")
        if self.deny:
            reason = "The user has denied your application access."
            return _redirect(
                checked,
                {"error": "access_denied", "error_description": reason, "state": state},
            )
        code = secrets.token_hex(10)
        self.codes[code] = Grant(
            client_id=query["client_id"],
            redirect_uri=query.get("redirect_uri"),
            scope=",".join(query.get("scope", "").replace(",", " ").split()),
            person=dict(self.person),
            code_challenge=query.get("code_challenge"),
        )
        return _redirect(checked, {"code": code, "state": state})

    async def token(self, request: Request) -> Response:
        """Errors are HTTP 200 with an ``error`` field, as GitHub answers them."""
        self.token_requests += 1
        form = await _form(request)
        as_json = "application/json" in request.headers.get("accept", "")
        client_id = self.authenticate(request, form)
        grant_type = form.get("grant_type", "authorization_code")
        grant: Grant | None = None
        error = "incorrect_client_credentials"
        if client_id is not None and grant_type == "refresh_token" and self.expiring_tokens:
            grant, error = self.rotate(client_id, form), "bad_refresh_token"
        elif client_id is not None and grant_type == "authorization_code":
            grant, error = self.redeem(client_id, form), "bad_verification_code"
        elif client_id is not None:
            error = "unsupported_grant_type"
        if grant is None:
            body: dict[str, Any] = {"error": error, "error_description": error.replace("_", " ")}
        else:
            body = self.issue(grant)
        if as_json:
            return JSONResponse(body)
        return Response(urlencode(body), media_type="application/x-www-form-urlencoded")

    def issue(self, grant: Grant) -> dict[str, Any]:
        lifetime = self.token_lifetime if self.expiring_tokens else float("inf")
        access = self.new_access_token(grant, "gho_", lifetime)
        body: dict[str, Any] = {"access_token": access, "token_type": "bearer"}
        body["scope"] = grant.scope
        if self.expiring_tokens:
            refresh = "ghr_" + secrets.token_urlsafe(54)
            self.refresh_tokens[refresh] = grant
            body.update(expires_in=self.token_lifetime, refresh_token=refresh)
            body["refresh_token_expires_in"] = self.refresh_token_lifetime
        return body

    async def user(self, request: Request) -> Response:
        grant = self.bearer(request, "bearer", "token")
        if grant is None:
            return JSONResponse({"message": "Bad credentials"}, 401)
        answers = {"/user": grant.person, "/user/emails": self.emails, "/user/orgs": self.orgs}
        return JSONResponse(answers[request.url.path])


@dataclass
class FakeOpenIDProvider(Upstream):
    """An OpenID Connect provider; the attributes after ``person`` bend its answers."""

    person: dict[str, Any] = field(default_factory=lambda: dict(JANE))
    token_lifetime: int = 3600
    key: RSAKey = field(default_factory=lambda: _shared_key("op-key-1"))
    metadata_issuer: str | None = None
    response_iss: str | Literal[Marker.ISSUER] | None = ISSUER
    auth_time: int | None = None
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    userinfo_overrides: dict[str, Any] = field(default_factory=dict)
    sign_with_foreign_key: bool = False
    alg_none: bool = False

    @property
    def issuer(self) -> str:
        return self.base_url

    def __post_init__(self) -> None:
        self.app = Starlette(routes=[
            Route("/.well-known/openid-configuration", self.discovery),
            Route("/jwks", self.jwks),
            Route("/authorize", self.authorize),
            Route("/token", self.token, methods=["POST"]),
            Route("/userinfo", self.userinfo, methods=["GET", "POST"]),
        ])  # fmt: skip

    async def discovery(self, request: Request) -> Response:
        """OpenID Connect Discovery 1.0 §3; ``metadata_issuer`` fakes an issuer mismatch."""
        base = self.base_url
        return JSONResponse(
            {
                "issuer": self.metadata_issuer or self.issuer,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "userinfo_endpoint": f"{base}/userinfo",
                "jwks_uri": f"{base}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_methods_supported": AUTH_METHODS,
                "scopes_supported": ["openid", "profile", "email", "groups", "offline_access"],
                "authorization_response_iss_parameter_supported": True,
            }
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        query = dict(request.query_params)
        checked = self.check_authorize(query)
        if isinstance(checked, Response):
            return checked
        iss = self.issuer if self.response_iss is ISSUER else self.response_iss
        answer: dict[str, str | None] = {"state": query.get("state"), "iss": iss}
        if query.get("response_type") != "code":
            return _redirect(checked, {"error": "unsupported_response_type", **answer})
        if self.deny:
            reason = "The person declined to sign in."
            return _redirect(
                checked, {"error": "access_denied", "error_description": reason, **answer}
            )
        code = secrets.token_urlsafe(24)
        self.codes[code] = Grant(
            client_id=query["client_id"],
            redirect_uri=query.get("redirect_uri"),
            scope=query.get("scope", ""),
            person=dict(self.person),
            code_challenge=query.get("code_challenge"),
            nonce=query.get("nonce"),
            prompt=query.get("prompt"),
            max_age=query.get("max_age"),
            auth_time=int(self.clock()) if self.auth_time is None else self.auth_time,
        )
        return _redirect(checked, {"code": code, **answer})

    async def token(self, request: Request) -> Response:
        """RFC 6749 §4.1.3 and §6; errors as §5.2 says; public clients must use PKCE."""
        self.token_requests += 1
        form = await _form(request)
        client_id = self.authenticate(request, form)
        if client_id is None:
            headers = {"WWW-Authenticate": 'Basic realm="op"'}
            return _error("invalid_client", 401, headers)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            grant = self.redeem(client_id, form)
        elif grant_type == "refresh_token":
            grant = self.rotate(client_id, form)
        else:
            return _error("unsupported_grant_type", 400)
        if grant is None:
            return _error("invalid_grant", 400)
        access = self.new_access_token(grant, "", self.token_lifetime)
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer"}
        body.update(expires_in=self.token_lifetime, scope=grant.scope)
        body["id_token"] = self.id_token(grant, with_nonce=grant_type == "authorization_code")
        if "offline_access" in grant.scope.split():
            body["refresh_token"] = secrets.token_urlsafe(32)
            self.refresh_tokens[body["refresh_token"]] = grant
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    def id_token(self, grant: Grant, *, with_nonce: bool) -> str:
        """OpenID Connect Core §2; the knobs apply last, so each can break one thing."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            **grant.person,
            "iss": self.issuer,
            "sub": grant.person["sub"],
            "aud": grant.client_id,
            "azp": grant.client_id,
            "iat": now,
            "exp": now + self.token_lifetime,
            "auth_time": grant.auth_time,
        }
        if with_nonce and grant.nonce is not None:
            claims["nonce"] = grant.nonce
        claims = _merged(claims, self.id_token_overrides)
        if self.alg_none:
            return ".".join(_b64json(part) for part in ({"alg": "none"}, claims)) + "."
        key = _shared_key(f"foreign-{self.key.kid}") if self.sign_with_foreign_key else self.key
        return jwt.encode({"alg": "RS256", "kid": self.key.kid, "typ": "JWT"}, claims, key)

    async def userinfo(self, request: Request) -> Response:
        """OpenID Connect Core §5.3; ``userinfo_overrides`` can fake a ``sub`` mismatch."""
        grant = self.bearer(request, "bearer")
        if grant is None:
            headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            return JSONResponse({"error": "invalid_token"}, 401, headers)
        claims = {**grant.person, "sub": grant.person["sub"]}
        return JSONResponse(_merged(claims, self.userinfo_overrides))


def _merged(claims: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**claims, **overrides}
    return {name: value for name, value in merged.items() if value is not DELETE}


def _b64json(value: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _error(code: str, status: int, headers: Mapping[str, str] | None = None) -> Response:
    body = {"error": code, "error_description": code.replace("_", " ")}
    return JSONResponse(body, status, {"Cache-Control": "no-store", **(headers or {})})
