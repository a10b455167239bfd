"""Pushed authorization requests (RFC 9126): a client sends its authorization request
to ``/par`` first, and the authorization endpoint later takes only its ``request_uri``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

from ..authorization import (
    AuthorizationRedirectError,
    AuthorizationRequest,
    validate_authorization_request,
)
from ..client_auth import authenticate_client
from ..client_lookup import ClientLookup
from ..config import Settings
from ..crypto import generate_token, hash_token
from ..errors import N_, InvalidDPoPProofError, InvalidRequestError, storage_guard
from ..events import security_event
from ..models import Client, PushedAuthorizationRequest
from ..rate_limits import RateLimits
from ..requests import OAuthRequest
from ..storage.base import Storage
from ..throttle import Throttle
from .dpop import DPoPProofs
from .paths import PUSHED_AUTHORIZATION_REQUEST_PATH

#: §2.2: the form of the request_uri values /par hands out.
REQUEST_URI_PREFIX: Final = "urn:ietf:params:oauth:request_uri:"


@dataclass(frozen=True, slots=True)
class PushedAuthorization:
    """Keeps pushed requests, each for one use by the client that pushed it."""

    storage: Storage
    clients: ClientLookup
    settings: Settings
    throttle: Throttle
    proofs: DPoPProofs
    clock: Callable[[], float]
    #: Request budgets; None when no limit is set.
    limits: RateLimits | None

    async def push(self, request: OAuthRequest) -> dict[str, object]:
        """§2: check the request as ``/authorize`` would, keep it, and hand out a
        ``request_uri`` for it."""
        if self.limits is not None:
            await self.limits.by_address("pushed_authorization_request", request)
        with storage_guard:
            client = await authenticate_client(
                request, self.clients, self.throttle, allow_public=True
            )
            if self.limits is not None:
                await self.limits.by_client(
                    "pushed_authorization_request", client.client_id, request
                )
            # §2.1: client authentication parameters are not part of the request.
            params = {k: v for k, v in request.form.items() if k != "client_secret"}
            if "request_uri" in params:
                raise InvalidRequestError("request_uri must not be pushed (RFC 9126 §2.1)")
            params["client_id"] = client.client_id
            jkt = await self.proofs.key(
                request, client, PUSHED_AUTHORIZATION_REQUEST_PATH, token_request=False
            )
            # RFC 9449 §10.1: a proof here binds the code, as dpop_jkt would.
            if jkt is not None and params.setdefault("dpop_jkt", jkt) != jkt:
                raise InvalidDPoPProofError("dpop_jkt is not the DPoP proof's key")
            try:
                validate_authorization_request(
                    params, frozenset(), client, self.settings, pushed=True
                )
            except AuthorizationRedirectError as exc:
                # §2.3: errors go back in the response, not to the redirect URI.
                raise exc.error from None
            request_uri = REQUEST_URI_PREFIX + generate_token()
            now = int(self.clock())
            lifetime = self.settings.pushed_authorization_request_lifetime
            await self.storage.save_pushed_authorization_request(
                PushedAuthorizationRequest(
                    request_uri_hash=hash_token(request_uri),
                    client_id=client.client_id,
                    params=params,
                    issued_at=now,
                    expires_at=now + lifetime,
                )
            )
        security_event("authorization_request_pushed", client_id=client.client_id)
        return {"request_uri": request_uri, "expires_in": lifetime}

    async def pushed_request(self, client: Client, request_uri: str) -> AuthorizationRequest:
        """The request pushed that ``request_uri`` names (§4).

        Only its pushed parameters count. It must be this client's, unexpired and
        unused; otherwise the person is told, and nothing goes to a redirect URI
        the pushed request never vouched for.
        """
        key = hash_token(request_uri)
        with storage_guard:
            pushed = await self.storage.get_pushed_authorization_request(key)
        if (
            pushed is None
            or pushed.client_id != client.client_id
            or pushed.consumed_at is not None
            or pushed.expires_at <= int(self.clock())
        ):
            raise InvalidRequestError(N_("request_uri is unknown, expired or already used"))
        request = validate_authorization_request(
            pushed.params, frozenset(), client, self.settings, pushed=True
        )
        # Pages send back these two, not the pushed parameters, with the decision; and
        # the pushed ui_locales (OpenID Connect Core §3.1.2.1), the pages' language.
        own = {"client_id": client.client_id, "request_uri": request_uri}
        if "ui_locales" in pushed.params:
            own["ui_locales"] = pushed.params["ui_locales"]
        return replace(request, params=own, request_uri_hash=key, pushed_at=pushed.issued_at)

    async def consume(self, request_uri_hash: str) -> None:
        """§4: one pushed request, one authorization response."""
        used = await self.storage.consume_pushed_authorization_request(
            request_uri_hash, now=int(self.clock())
        )
        if not used:
            raise InvalidRequestError(N_("request_uri is unknown, expired or already used"))
