"""``BearerTokenMiddleware``: protect an ASGI application's routes with access tokens.

Pure ASGI, for ``http`` and ``websocket`` scopes (``lifespan`` passes through).
It finds the token (RFC 6750 §2) and, for a DPoP one, checks the proof of
possession (RFC 9449 §7.1); asks an ``Introspector`` what the token means (the
same logic as the ``/introspect`` endpoint); checks that it is meant for this
resource (RFC 8707), bound to the proof's key, and has the scopes the path
needs; and tells the route who is calling in ``scope["auth"]`` and
``scope["user"]``. When the introspector cannot decide, the request is
refused: it fails closed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping

from starlette.authentication import UnauthenticatedUser
from starlette.types import ASGIApp, Receive, Scope, Send

from ..dpop import DPoPNonces, DPoPProof
from ..models import IntrospectionResult
from ..observability.instruments import Instruments
from ..server import AuthorizationServer
from ..types import DPOP_SIGNING_ALGORITHMS
from .cors import ResourceCORS
from .errors import BearerError, send_bearer_error
from .extraction import check_syntax, extract_token, header_token
from .introspectors import (
    CachingIntrospector,
    IntrospectionUnavailable,
    Introspector,
    LocalIntrospector,
)
from .metadata import metadata_document, metadata_path, metadata_url
from .proofs import ProofChecker
from .rules import Rule, build_rules, match
from .users import BearerCredentials, BearerUser

logger = logging.getLogger("asgi_oauth")

_ANONYMOUS = UnauthenticatedUser()
_MAX_PRINCIPALS = 10_000


class BearerTokenMiddleware:
    """Require a valid access token, with scopes, on the paths ``protect`` names.

    ``protect`` maps path prefixes to the scopes they need; by default every
    path needs a valid token. ``public`` prefixes (your authorization server's
    mount, a health check) and paths outside ``protect`` pass without one; a
    route there sees the caller a middleware further out (another resource's,
    in the same app) published, else the token's user or an anonymous one with
    ``request.auth.error``. ``resource`` is this API's identifier URL: with it
    the middleware serves RFC 9728 metadata, its challenges point there, and a
    token whose ``aud`` names only other resources is refused (RFC 8707). A
    token asked for without a resource is for any: one with no ``aud``, or
    naming an authorization server (as JWT access tokens do then), is
    accepted. ``audiences`` are more ``aud`` values this API answers to; without
    ``resource``, a token must name one of them (or have no ``aud``), and no
    metadata is served.

    DPoP-bound tokens (RFC 9449) come as ``Authorization: DPoP`` with a proof,
    whose ``htu`` is checked against ``origin`` (by default ``resource``'s;
    without either, the ``Host`` header). A bound token sent as a bearer token
    is refused (§7.2). ``dpop_nonces`` makes every proof carry a server nonce
    (§9); ``require_dpop`` refuses bearer tokens altogether; ``dpop_leeway``
    is how many seconds a proof's ``iat`` may be from now.

    ``cors_origins`` (``*``: any; ``()``: off) may read the protected paths' and the
    metadata's answers from a browser; preflights there are answered without a token.
    ``error_uri`` (RFC 6750 §3) names a page explaining errors, in every challenge with
    an error; an in-process server's ``Settings.error_uri`` by default.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        introspector: Introspector | AuthorizationServer,
        protect: Mapping[str, str | Iterable[str]] | None = None,
        public: Iterable[str] = (),
        realm: str = "api",
        resource: str | None = None,
        audiences: Iterable[str] = (),
        authorization_servers: Iterable[str] | None = None,
        scopes_supported: Iterable[str] = (),
        resource_name: str | None = None,
        allow_query_token: bool = False,
        allow_form_token: bool = False,
        max_body_size: int = 64 * 1024,
        origin: str | None = None,
        dpop_nonces: DPoPNonces | None = None,
        require_dpop: bool = False,
        dpop_leeway: int = 60,
        cors_origins: Iterable[str] = ("*",),
        instruments: Instruments | None = None,
        error_uri: str | None = None,
    ) -> None:
        if require_dpop and (allow_query_token or allow_form_token):
            raise ValueError("require_dpop takes tokens from the Authorization header only")
        self.app = app
        self._cors = ResourceCORS(cors_origins)
        #: Metrics and traces of each decision, when given (``asgi_oauth.observability``).
        self._instruments = instruments if instruments is not None and instruments.active else None
        if isinstance(introspector, AuthorizationServer):
            introspector = LocalIntrospector(introspector)
        self.introspector = introspector
        if error_uri is None and isinstance(introspector, LocalIntrospector):
            error_uri = introspector.server.settings.error_uri
        self._error_uri = error_uri
        stream = getattr(introspector, "revocation_stream", None)
        metrics = self._instruments.metrics if self._instruments is not None else None
        if metrics is not None and stream is not None:
            metrics.watch("revocation_stream", lambda: bool(stream.live))
        self._cached = (
            introspector.cached if isinstance(introspector, CachingIntrospector) else None
        )
        self._rules = build_rules({"/": ()} if protect is None else protect, public)
        self._realm = realm
        self._allow_query = allow_query_token
        self._allow_form = allow_form_token
        self._max_body = max_body_size
        self._require_dpop = require_dpop
        self._missing = "a bearer token is required"
        if require_dpop:
            self._missing = "a DPoP-bound access token is required"
        self._principals: dict[str, tuple[IntrospectionResult, BearerCredentials, BearerUser]] = {}
        self._metadata_path: str | None = None
        self._metadata_body = b""
        self._resource_metadata: str | None = None
        self._audiences = frozenset(audiences)
        if resource is not None:
            servers = list(authorization_servers or ())
            defaults = set(servers)
            if isinstance(introspector, LocalIntrospector):
                servers = servers or [introspector.issuer]
                defaults |= {introspector.issuer, introspector.server.settings.jwt_audience}
            self._audiences |= {resource, *defaults}
            methods = ["header"] + ["body"] * allow_form_token + ["query"] * allow_query_token
            known = {s for rule in self._rules for s in rule.scopes} | set(scopes_supported)
            document = metadata_document(
                resource,
                authorization_servers=servers,
                scopes_supported=known,
                # RFC 9728 §2: an empty list says no bearer token is taken.
                bearer_methods_supported=[] if require_dpop else methods,
                resource_name=resource_name,
                dpop_signing_alg_values_supported=DPOP_SIGNING_ALGORITHMS,
                dpop_bound_access_tokens_required=require_dpop,
            )
            self._metadata_path = metadata_path(resource)
            self._metadata_body = json.dumps(document, separators=(",", ":")).encode()
            self._resource_metadata = metadata_url(resource)
        self._proofs = ProofChecker(
            origin=origin or resource, nonces=dpop_nonces, leeway=dpop_leeway
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        if kind == "http" and scope["path"] == self._metadata_path:
            if not await self._cors.preflight(scope, send, ("GET",)):
                await self._send_metadata(self._cors.readable(scope, send, cacheable=True))
            return
        rule = match(self._rules, _route_path(scope))
        if rule is not None and rule.required and self._cors.from_browser(scope):
            if await self._cors.preflight(scope, send):
                return  # a preflight carries no token, and never reaches the app
            send = self._cors.readable(scope, send)
        if (rule is None or not rule.required) and ("auth" in scope or "user" in scope):
            # Not ours to judge, and a middleware further out already has: keep its answer.
            await self.app(scope, receive, send)
            return
        dpop = cached = False
        try:
            if self._allow_query or self._allow_form:
                presented, receive = await extract_token(
                    scope,
                    receive,
                    allow_query=self._allow_query,
                    allow_form=self._allow_form,
                    max_body_size=self._max_body,
                )
            else:
                presented = header_token(scope)
            if presented is None or (self._require_dpop and not presented[1]):
                # RFC 6750 §3.1: a token sent with a scheme not taken here is no token.
                raise BearerError.missing(self._missing)
            token, dpop = presented
            # Every time, cached token or not: a proof is good for one request only.
            proof = self._proofs.check(scope, token) if dpop else None
            info = self._cached(token) if self._cached is not None else None
            cached = info is not None
            if info is None:
                check_syntax(token, "DPoP" if dpop else "Bearer")
                try:
                    info = await self._introspect(token)
                except IntrospectionUnavailable as exc:
                    logger.error("refusing a request: token introspection failed: %s", exc)
                    raise BearerError.unavailable() from exc
            scope["auth"], scope["user"] = self._authorize(token, info, rule, proof)
        except BearerError as error:
            challenge = self.dpop_challenge if dpop else self.challenge
            if rule is not None and rule.required:
                error = error.needing(rule.scopes)
                if self._instruments is not None:
                    self._record("refused", error.error or "missing_token", cached)
                await send_bearer_error(scope, send, error, challenge(error))
                return
            # A path that needs no token is not refused for a bad one; its routes can
            # tell from request.auth.error (require_scopes and OAuth2Scopes do).
            credentials = BearerCredentials(error=error, challenge=challenge)
            scope["auth"], scope["user"] = credentials, _ANONYMOUS
            if self._instruments is not None:
                self._record("anonymous", error.error or "missing_token", cached)
        else:
            if self._instruments is not None:
                self._record("accepted", "", cached)
        await self.app(scope, receive, send)

    async def _introspect(self, token: str) -> IntrospectionResult:
        if self._instruments is None:
            return await self.introspector.introspect_token(token)
        kind = type(self.introspector).__name__
        with self._instruments.span("introspect", {"asgi_oauth.introspector": kind}):
            return await self.introspector.introspect_token(token)

    def _record(self, outcome: str, reason: str, cached: bool) -> None:
        assert self._instruments is not None
        if self._instruments.metrics is not None:
            self._instruments.metrics.middleware(outcome, reason, cached=cached)

    def challenge(self, error: BearerError) -> str:
        """The ``WWW-Authenticate`` value this middleware sends with ``error`` when the
        request had no DPoP-bound token."""
        if self._require_dpop:
            return self.dpop_challenge(error)
        bearer = error.challenge(self._realm, self._resource_metadata, self._error_uri)
        if error.error is None:
            # No token: either scheme will do (RFC 9449 §7.2). Both challenges share
            # one field, comma-separated (RFC 9110 §11.6.1), so a header mapping (a
            # Starlette response, FastAPI's HTTPException) carries them whole.
            return f"{bearer}, {self.dpop_challenge(error)}"
        return bearer

    def dpop_challenge(self, error: BearerError) -> str:
        """The ``WWW-Authenticate`` value for ``error`` with the DPoP scheme (RFC 9449 §7.1)."""
        return error.dpop_challenge(
            self._realm, DPOP_SIGNING_ALGORITHMS, self._resource_metadata, self._error_uri
        )

    def _authorize(
        self, token: str, info: IntrospectionResult, rule: Rule | None, proof: DPoPProof | None
    ) -> tuple[BearerCredentials, BearerUser]:
        """What routes see, if the token is good for this path (built once per answer)."""
        known = self._principals.get(token)
        if known is None or known[0] is not info:
            known = None
            self._judge(info)
        if info.jkt is not None:
            if proof is None:
                # RFC 9449 §7.2: a bound token sent as a bearer token is refused.
                raise BearerError.invalid_token("a DPoP-bound access token needs the DPoP scheme")
            if proof.jkt != info.jkt:
                raise BearerError.invalid_token("the access token is bound to another DPoP key")
        elif proof is not None:
            raise BearerError.invalid_token("the access token is not bound to a DPoP key")
        if rule is not None and not rule.scopes <= info.scope:
            raise BearerError.insufficient_scope(rule.scopes, info.scope)
        if known is not None:
            return known[1], known[2]
        challenge = self.challenge if info.jkt is None else self.dpop_challenge
        principal = BearerCredentials(info, challenge=challenge), BearerUser(info)
        if len(self._principals) >= _MAX_PRINCIPALS:
            self._principals.clear()
        self._principals[token] = (info, *principal)
        return principal

    def _judge(self, info: IntrospectionResult) -> None:
        """Refuse a token that is no access token, or is meant for another resource."""
        if not _usable(info):
            raise BearerError.invalid_token()
        if self._audiences and info.aud and self._audiences.isdisjoint(info.aud):
            raise BearerError.invalid_token("the access token is meant for another resource")

    async def _send_metadata(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"cache-control", b"public, max-age=3600"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self._metadata_body})


def _usable(info: IntrospectionResult) -> bool:
    """An active access token: refresh tokens and other kinds are no credentials here."""
    if not info.active:
        return False
    if info.token_type is None:
        return True
    kind = info.token_type.lower()
    # RFC 9449 §6.2: a DPoP token is known by the key it is bound to.
    return kind == "bearer" or (kind == "dpop" and info.jkt is not None)


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        return path[len(root_path) :] or "/"
    return path
