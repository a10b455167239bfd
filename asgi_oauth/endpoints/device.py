"""The device authorization grant's endpoints (RFC 8628): a device asks for codes
(§3.1), and a person types its user code on the verification page and decides (§3.3).
The device's polling is a grant at the token endpoint (``grants.device_code``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from ..client_auth import authenticate_client
from ..client_lookup import ClientLookup
from ..config import Settings
from ..crypto import hash_token, time_ordered_token
from ..device import generate_user_code, hash_user_code, normalize_user_code
from ..errors import (
    N_,
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    StorageError,
    UnauthorizedClientError,
    storage_guard,
)
from ..events import security_event
from ..grants.base import new_family_id
from ..models import Client, DeviceAuthorization, ResourceOwner
from ..rate_limits import RateLimits
from ..requests import OAuthRequest
from ..resources import requested_resources
from ..scopes import grantable_by, narrow_scope, parse_scope
from ..storage.base import Storage
from ..throttle import SharedThrottle, Throttle
from ..types import DEVICE_CODE
from .paths import DEVICE_VERIFICATION_PATH


@dataclass(frozen=True, slots=True)
class DeviceAuthorizationEndpoint:
    """Starts device authorizations and records people's decisions on them."""

    storage: Storage
    clients: ClientLookup
    settings: Settings
    throttle: Throttle
    guesses: SharedThrottle
    clock: Callable[[], float]
    #: Request budgets; None when no limit is set.
    limits: RateLimits | None

    async def start(self, request: OAuthRequest) -> dict[str, object]:
        """The device authorization endpoint (§3.1, §3.2)."""
        settings = self.settings
        if DEVICE_CODE not in settings.enabled_grants:
            raise InvalidRequestError("no such endpoint", status_code=404)
        if self.limits is not None:
            await self.limits.by_address("device_authorization", request)
        with storage_guard:
            client = await authenticate_client(
                request, self.clients, self.throttle, allow_public=True
            )
            if self.limits is not None:
                await self.limits.by_client("device_authorization", client.client_id, request)
            if DEVICE_CODE not in client.grant_types:
                raise UnauthorizedClientError("client may not use the device grant")
            scope = narrow_scope(parse_scope(request.form.get("scope")), client.scope)
            resource = requested_resources(request.form, settings.resources)
            now = int(self.clock())
            device_code = time_ordered_token()
            for attempt in range(3):
                # A short user code can collide with a live or unpurged one: draw again.
                user_code = generate_user_code()
                device = DeviceAuthorization(
                    device_code_hash=hash_token(device_code),
                    user_code_hash=hash_user_code(user_code.replace("-", "")),
                    client_id=client.client_id,
                    scope=scope,
                    family_id=new_family_id(),
                    issued_at=now,
                    expires_at=now + settings.device_code_lifetime,
                    interval=settings.device_poll_interval,
                    resource=resource,
                )
                try:
                    await self.storage.save_device_authorization(device)
                    break
                except StorageError:
                    if attempt == 2:
                        raise
        verification_uri = settings.issuer + DEVICE_VERIFICATION_PATH
        complete = f"{verification_uri}?{urlencode({'user_code': user_code})}"
        return {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": complete,
            "expires_in": settings.device_code_lifetime,
            "interval": settings.device_poll_interval,
        }

    async def find(
        self, user_code: str, request: OAuthRequest
    ) -> tuple[DeviceAuthorization, Client]:
        """The pending request a person's typed user code names (§3.3).

        Guesses are throttled per address (§5.1): a wrong, expired or used code
        counts as a failure, and a throttled address learns nothing more.
        """
        key = request.throttle_key("user_code")
        with storage_guard:
            attempt = await self.guesses.attempt(
                key, InvalidGrantError, N_("too many wrong codes; retry later")
            )
            normalized = normalize_user_code(user_code)
            device = client = None
            if normalized is not None:
                device = await self.storage.get_device_authorization(hash_user_code(normalized))
                if device is not None:
                    client = await self.clients.find(device.client_id, unusable=InvalidGrantError)
            # Every miss counts, and a hit does not clear the count: anyone can get a
            # valid code of their own, which must not buy more guesses at others'.
            if device is None or client is None or device.status != "pending":
                raise InvalidGrantError(N_("that code is not valid; check it and try again"))
            if device.expires_at <= int(self.clock()):
                raise InvalidGrantError(N_("that code has expired; start again on your device"))
            await self.guesses.refund(key, attempt)
        return device, client

    async def decide(
        self, device: DeviceAuthorization, owner: ResourceOwner, *, approved: bool
    ) -> None:
        """Record the person's decision; the device learns it at its next poll (§3.5).
        A person may not approve scopes beyond their limit (``ResourceOwner.scopes``)."""
        if approved and grantable_by(device.scope, owner.scopes) != device.scope:
            raise AccessDeniedError(N_("you may not grant everything this device asks for"))
        with storage_guard:
            decided = await self.storage.decide_device_authorization(
                device.user_code_hash,
                subject=owner.subject,
                approved=approved,
                now=int(self.clock()),
            )
        if not decided:
            raise InvalidGrantError(N_("that code was already used or has expired"))
        security_event(
            "device_authorization_granted" if approved else "device_authorization_denied",
            client_id=device.client_id,
            sub=owner.subject,
            scope=device.scope,
        )
