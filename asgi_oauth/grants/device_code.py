"""The device authorization grant at the token endpoint (RFC 8628 §3.4, §3.5).

The device polls with its device code until the user decided. Each poll is
recorded by the store in one step, so a device polling too fast gets
``slow_down`` and a longer interval; an approved code is exchanged once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..crypto import hash_token
from ..errors import (
    AccessDeniedError,
    AuthorizationPendingError,
    ExpiredTokenError,
    InvalidGrantError,
    SlowDownError,
)
from ..models import Client, TokenResponse
from ..requests import OAuthRequest
from ..resources import token_resources
from .base import DPoPBinding, GrantContext, may_refresh, mint_tokens


@dataclass(frozen=True, slots=True)
class DeviceCodeGrant:
    ctx: GrantContext
    grant_type: Literal["urn:ietf:params:oauth:grant-type:device_code"] = (
        "urn:ietf:params:oauth:grant-type:device_code"
    )

    async def issue(
        self, request: OAuthRequest, client: Client, dpop: DPoPBinding
    ) -> TokenResponse:
        storage, now = self.ctx.storage, self.ctx.now()
        device_code_hash = hash_token(request.require("device_code"))
        # §3.4: the device code must have been issued to this client.
        device = await storage.poll_device_authorization(
            device_code_hash, client_id=client.client_id, now=now
        )
        if device is None:
            raise InvalidGrantError("invalid device code")
        if device.status == "consumed":
            raise InvalidGrantError("device code already used")
        if device.expires_at <= now:
            raise ExpiredTokenError("the device code expired; start again")
        if device.status == "denied":
            raise AccessDeniedError("the user denied the request")
        if device.status == "pending":
            last = device.last_polled_at
            if last is not None and now - last < device.interval:
                raise SlowDownError(f"poll at most every {device.interval + 5} seconds")
            raise AuthorizationPendingError("waiting for the user")
        # RFC 8707 §2.2: the token may be for fewer resources than the grant, never more.
        resource = token_resources(
            request.form, self.ctx.settings, granted=device.resource, scope=device.scope
        )
        tokens = mint_tokens(
            self.ctx,
            client,
            scope=device.scope,
            subject=device.subject,
            family_id=device.family_id,
            with_refresh=may_refresh(self.ctx, client),
            resource=resource,
            grant_resource=device.resource,
            jkt=dpop.jkt,
            refresh_jkt=dpop.refresh_jkt,
        )
        if not await storage.redeem_device_code(device_code_hash, tokens=tokens.rows, now=now):
            raise InvalidGrantError("device code already used")
        return tokens.response
