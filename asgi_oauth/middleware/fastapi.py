"""A FastAPI security dependency for routes behind ``BearerTokenMiddleware``.

Use it with ``Security(oauth2, scopes=[...])``: FastAPI's OpenAPI then shows the
OAuth2 authorization-code scheme with the server's token and authorize URLs,
and the route gets the ``BearerUser`` the middleware found, or a 401/403 with
an RFC 6750 challenge. Needs ``fastapi`` installed.
"""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.security import OAuth2AuthorizationCodeBearer, SecurityScopes

from .decorators import challenge, scope_error
from .errors import response_headers
from .users import BearerUser


class OAuth2Scopes(OAuth2AuthorizationCodeBearer):
    def __init__(
        self,
        *,
        issuer: str,
        scopes: dict[str, str] | None = None,
        realm: str = "api",
        description: str | None = None,
    ) -> None:
        """``issuer`` is the authorization server's issuer URL; ``scopes`` maps each
        scope to the description the API documentation shows."""
        issuer = issuer.rstrip("/")
        super().__init__(
            authorizationUrl=issuer + "/authorize",
            tokenUrl=issuer + "/token",
            scopes=scopes or {},
            description=description,
            auto_error=True,
        )
        self.realm = realm

    async def __call__(  # type: ignore[override]
        self, request: Request, security_scopes: SecurityScopes
    ) -> BearerUser:
        auth = request.scope.get("auth")
        error = scope_error(auth, frozenset(security_scopes.scopes))
        if error is not None:
            raise HTTPException(
                status_code=error.status,
                detail=error.body(),
                headers=response_headers(error, challenge(auth, error, self.realm)),
            )
        user: BearerUser = request.scope["user"]
        return user
