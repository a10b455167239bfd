"""``BearerTokenMiddleware``: protect an ASGI application's routes with bearer tokens.

Pure ASGI, for ``http`` and ``websocket`` scopes (``lifespan`` passes through).
It finds the token (RFC 6750 §2), asks an ``Introspector`` what it means (the
same logic as the ``/introspect`` endpoint), checks the scopes the path needs,
and tells the route who is calling in ``scope["auth"]`` and ``scope["user"]``.
When the introspector cannot decide, the request is refused: it fails closed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping

from starlette.authentication import UnauthenticatedUser
from starlette.types import ASGIApp, Receive, Scope, Send

from ..models import IntrospectionResult
from ..server import AuthorizationServer
from .errors import BearerError, send_bearer_error
from .extraction import check_syntax, extract_token, header_token
from .introspectors import (
    CachingIntrospector,
    IntrospectionUnavailable,
    Introspector,
    LocalIntrospector,
)
from .metadata import metadata_document, metadata_path, metadata_url
from .rules import Rule, build_rules, match
from .users import BearerCredentials, BearerUser

logger = logging.getLogger("asgi_oauth")

_ANONYMOUS = UnauthenticatedUser()
_MAX_PRINCIPALS = 10_000


class BearerTokenMiddleware:
    """Require a valid bearer token, with scopes, on the paths ``protect`` names.

    ``protect`` maps path prefixes to the scopes they need; by default every
    path needs a valid token. ``public`` prefixes (your authorization server's
    mount, a health check) pass without one. ``resource`` is this API's
    identifier URL: with it the middleware serves RFC 9728 metadata and its
    challenges point there.
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
        authorization_servers: Iterable[str] | None = None,
        scopes_supported: Iterable[str] = (),
        resource_name: str | None = None,
        allow_query_token: bool = False,
        allow_form_token: bool = False,
        max_body_size: int = 64 * 1024,
    ) -> None:
        self.app = app
        if isinstance(introspector, AuthorizationServer):
            introspector = LocalIntrospector(introspector)
        self.introspector = introspector
        self._cached = (
            introspector.cached if isinstance(introspector, CachingIntrospector) else None
        )
        self._rules = build_rules({"/": ()} if protect is None else protect, public)
        self._realm = realm
        self._allow_query = allow_query_token
        self._allow_form = allow_form_token
        self._max_body = max_body_size
        self._principals: dict[str, tuple[IntrospectionResult, BearerCredentials, BearerUser]] = {}
        self._metadata_path: str | None = None
        self._metadata_body = b""
        self._resource_metadata: str | None = None
        if resource is not None:
            servers = list(authorization_servers or ())
            if not servers and isinstance(introspector, LocalIntrospector):
                servers = [introspector.issuer]
            methods = ["header"] + ["body"] * allow_form_token + ["query"] * allow_query_token
            known = {s for rule in self._rules for s in rule.scopes} | set(scopes_supported)
            document = metadata_document(
                resource,
                authorization_servers=servers,
                scopes_supported=known,
                bearer_methods_supported=methods,
                resource_name=resource_name,
            )
            self._metadata_path = metadata_path(resource)
            self._metadata_body = json.dumps(document, separators=(",", ":")).encode()
            self._resource_metadata = metadata_url(resource)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        if kind == "http" and scope["path"] == self._metadata_path:
            await self._send_metadata(send)
            return
        rule = match(self._rules, _route_path(scope))
        try:
            if self._allow_query or self._allow_form:
                token, receive = await extract_token(
                    scope,
                    receive,
                    allow_query=self._allow_query,
                    allow_form=self._allow_form,
                    max_body_size=self._max_body,
                )
            else:
                token = header_token(scope)
            if token is None:
                raise BearerError.missing()
            info = self._cached(token) if self._cached is not None else None
            if info is None:
                check_syntax(token)
                try:
                    info = await self.introspector.introspect_token(token)
                except IntrospectionUnavailable as exc:
                    logger.error("refusing a request: token introspection failed: %s", exc)
                    raise BearerError.unavailable() from exc
            scope["auth"], scope["user"] = self._authorize(token, info, rule)
        except BearerError as error:
            if rule is not None and rule.required:
                await send_bearer_error(scope, send, error, self.challenge(error))
                return
            # A path that needs no token is not refused for a bad one; its routes can
            # tell from request.auth.error (require_scopes and OAuth2Scopes do).
            credentials = BearerCredentials(error=error, challenge=self.challenge)
            scope["auth"], scope["user"] = credentials, _ANONYMOUS
        await self.app(scope, receive, send)

    def challenge(self, error: BearerError) -> str:
        """The ``WWW-Authenticate`` value this middleware sends with ``error``."""
        return error.challenge(self._realm, self._resource_metadata)

    def _authorize(
        self, token: str, info: IntrospectionResult, rule: Rule | None
    ) -> tuple[BearerCredentials, BearerUser]:
        """What routes see, if the token is good for this path (built once per answer)."""
        known = self._principals.get(token)
        if known is None or known[0] is not info:
            known = None
            if not _usable(info):
                raise BearerError.invalid_token()
        if rule is not None and not rule.scopes <= info.scope:
            raise BearerError.insufficient_scope(rule.scopes)
        if known is not None:
            return known[1], known[2]
        principal = BearerCredentials(info, challenge=self.challenge), BearerUser(info)
        if len(self._principals) >= _MAX_PRINCIPALS:
            self._principals.clear()
        self._principals[token] = (info, *principal)
        return principal

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
    """An active access token: refresh tokens and other kinds are no bearer credentials."""
    if not info.active:
        return False
    return info.token_type is None or info.token_type.lower() == "bearer"


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        return path[len(root_path) :] or "/"
    return path
