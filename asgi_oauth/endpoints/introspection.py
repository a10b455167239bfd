"""The introspection endpoint (RFC 7662), and the in-process call the middleware makes:
one path to a token's state, so the two can never disagree."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..client_auth import authenticate_client
from ..client_lookup import ClientLookup
from ..config import Settings
from ..crypto import hash_token
from ..errors import storage_guard
from ..jwt_access_tokens import JWT_ACCESS_TOKEN_TYPE, jti_key, looks_like_jwt
from ..keys import InvalidJWTError, KeySet
from ..models import INACTIVE, IntrospectionResult, Token
from ..rate_limits import RateLimits
from ..requests import OAuthRequest
from ..storage.base import Storage
from ..throttle import Throttle


@dataclass(frozen=True, slots=True)
class Introspection:
    """Tells a token's state to those allowed to know it."""

    storage: Storage
    clients: ClientLookup
    settings: Settings
    throttle: Throttle
    keys: KeySet | None
    clock: Callable[[], float]
    #: Request budgets; None when no limit is set.
    limits: RateLimits | None

    async def introspect(self, request: OAuthRequest) -> IntrospectionResult:
        """§2: only the client a token was issued to, or a resource server, learns its
        state; anyone else is told ``{"active": false}`` (§4)."""
        if self.limits is not None:
            await self.limits.by_address("introspection", request)
        token_value = request.require("token")
        with storage_guard:
            caller = await authenticate_client(
                request, self.clients, self.throttle, allow_public=False
            )
            if self.limits is not None:
                await self.limits.by_client("introspection", caller.client_id, request)
            token = await find_token(self.storage, self.keys, token_value)
        if token is None or not (caller.is_resource_server or token.client_id == caller.client_id):
            return INACTIVE
        return self.describe(token)

    async def introspect_token(self, token_value: str) -> IntrospectionResult:
        """What ``introspect`` tells a resource server: for in-process middleware."""
        with storage_guard:
            token = await find_token(self.storage, self.keys, token_value)
        return INACTIVE if token is None else self.describe(token)

    def describe(self, token: Token) -> IntrospectionResult:
        """§2.2: the response for a stored token, inactive once expired or revoked."""
        if not token.is_active(int(self.clock())):
            return INACTIVE
        if token.kind == "refresh_token":
            token_type = "refresh_token"
        else:
            token_type = "Bearer" if token.jkt is None else "DPoP"
        return IntrospectionResult(
            active=True,
            scope=token.scope,
            client_id=token.client_id,
            token_type=token_type,
            exp=token.expires_at,
            iat=token.issued_at,
            iss=self.settings.issuer,
            sub=token.subject,
            aud=token.audience,
            jkt=token.jkt,
        )


async def find_token(storage: Storage, keys: KeySet | None, token_value: str) -> Token | None:
    """The stored token ``token_value`` is; a JWT access token by its ``jti`` once its
    signature checks out (see ``jwt_access_tokens``)."""
    if keys is None or not looks_like_jwt(token_value):
        return await storage.get_token(hash_token(token_value))
    try:
        header, claims = await keys.verify_fresh(token_value)
    except InvalidJWTError:
        return None
    key = jti_key(claims)
    if header.get("typ") != JWT_ACCESS_TOKEN_TYPE or key is None:
        return None
    return await storage.get_token(key)
