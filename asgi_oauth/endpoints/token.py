"""The token endpoint (RFC 6749 §3.2): authenticate the client, hand the request to
its grant. Each grant type is its own module in ``asgi_oauth.grants``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..client_auth import authenticate_client
from ..client_lookup import ClientLookup
from ..errors import UnauthorizedClientError, UnsupportedGrantTypeError, storage_guard
from ..events import security_event
from ..grants import Grant
from ..grants.base import DPoPBinding
from ..keys import KeySet
from ..models import TokenResponse
from ..rate_limits import RateLimits
from ..requests import OAuthRequest
from ..throttle import Throttle
from .dpop import DPoPProofs
from .paths import TOKEN_PATH


@dataclass(frozen=True, slots=True)
class TokenEndpoint:
    """Dispatches by ``grant_type`` to the grants the settings enable."""

    clients: ClientLookup
    throttle: Throttle
    grants: Mapping[str, Grant]
    proofs: DPoPProofs
    keys: KeySet | None
    #: Request budgets; None when no limit is set.
    limits: RateLimits | None
    #: Called after each issuance (the server's background housekeeping).
    issued: Callable[[], None] = lambda: None

    async def handle(self, request: OAuthRequest) -> TokenResponse:
        if self.limits is not None:
            await self.limits.by_address("token", request)
        grant_type = request.require("grant_type")
        grant = self.grants.get(grant_type)
        if grant is None:
            raise UnsupportedGrantTypeError(f"unsupported grant_type: {grant_type[:64]}")
        with storage_guard:
            client = await authenticate_client(
                request, self.clients, self.throttle, allow_public=True
            )
            if self.limits is not None:
                await self.limits.by_client("token", client.client_id, request)
            if grant.grant_type not in client.grant_types:
                raise UnauthorizedClientError(f"client may not use {grant.grant_type}")
            jkt = await self.proofs.key(request, client, TOKEN_PATH)
            if self.keys is not None:
                await self.keys.ready()
            response = await grant.issue(request, client, DPoPBinding(jkt, client.is_public))
        security_event(
            "token_issued",
            client_id=client.client_id,
            grant_type=grant.grant_type,
            scope=response.scope,
            refresh_token=response.refresh_token is not None,
            dpop=True if jkt is not None else None,
        )
        self.issued()
        return response
