"""The UserInfo endpoint (OpenID Connect Core §5.3): claims about the signed-in user.

It is a protected resource like any other: the bearer middleware checks the
access token (RFC 6750: header, or form body for POST; a DPoP-bound one with
its proof, RFC 9449 §7) with the very logic resource servers use, requires
the ``openid`` scope, and refuses a token meant only for other resources
(RFC 8707): this one is the authorization server's own. Browser clients may
call it (CORS, answered around it by ``OAuth2App``), as they call the token endpoint.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from ..errors import InvalidRequestError
from ..middleware import BearerTokenMiddleware, LocalIntrospector
from ..middleware.errors import BearerError, send_bearer_error
from ..middleware.users import BearerCredentials
from ..server import AuthorizationServer
from .responses import NO_STORE, send_error, send_json

_METHODS = ("GET", "POST")


class UserinfoEndpoint:
    def __init__(self, server: AuthorizationServer) -> None:
        self.server = server
        self._protected = BearerTokenMiddleware(
            self._respond,
            introspector=LocalIntrospector(server),
            protect={"/": ("openid",)},
            realm="userinfo",
            # RFC 8707: a token asked for another resource is not for this one.
            audiences=(server.settings.issuer, server.settings.jwt_audience),
            allow_form_token=True,
            # A proof's htu is the issuer's URL, whatever Host header came with it.
            origin=server.settings.issuer,
            dpop_nonces=server.dpop_nonces if server.settings.dpop_nonce_required else None,
            dpop_leeway=server.settings.clock_skew,
            cors_origins=(),  # OAuth2App's, with the origins clients registered
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in _METHODS:
            error = InvalidRequestError(
                "method not allowed", status_code=405, headers={"Allow": "GET, POST"}
            )
            await send_error(send, error, error_uri=self.server.settings.error_uri)
            return
        await self._protected(scope, receive, send)

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> None:
        credentials: BearerCredentials = scope["auth"]
        token = credentials.introspection
        if token is None or token.sub is None:
            # A client credentials token speaks for no user (Core §5.3.3).
            error = BearerError.invalid_token("the access token was issued to no user")
            challenge = credentials.challenge or self._protected.challenge
            await send_bearer_error(scope, send, error, challenge(error))
            return
        try:
            body = await self.server.openid.userinfo(token.sub, token.scope)
        except Exception as exc:
            await send_error(send, exc, error_uri=self.server.settings.error_uri)
            return
        await send_json(send, 200, body, NO_STORE)
