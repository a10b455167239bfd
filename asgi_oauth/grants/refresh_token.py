"""The refresh token grant (RFC 6749 §6) with rotation and reuse detection.

Every refresh rotates the refresh token. A rotated-out token presented again
means it leaked: the whole family is revoked (RFC 9700 §4.14.2) — unless it
comes back within the configured grace period and its successor was never
used, which is a client that lost the response and gets a fresh pair.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from ..crypto import hash_token
from ..errors import InvalidGrantError
from ..events import security_event
from ..models import Client, Token, TokenResponse
from ..requests import OAuthRequest
from ..resources import requested_resources
from ..scopes import narrow_scope, parse_scope
from .base import DPoPBinding, GrantContext, mint_tokens


@dataclass(frozen=True, slots=True)
class RefreshTokenGrant:
    ctx: GrantContext
    grant_type: Literal["refresh_token"] = "refresh_token"

    async def issue(
        self, request: OAuthRequest, client: Client, dpop: DPoPBinding
    ) -> TokenResponse:
        storage, now = self.ctx.storage, self.ctx.now()
        token = await storage.get_token(hash_token(request.require("refresh_token")))
        if token is None or token.kind != "refresh_token" or token.client_id != client.client_id:
            raise InvalidGrantError("invalid refresh token")
        if token.revoked_at is not None:
            raise InvalidGrantError("refresh token revoked")
        if token.expires_at <= now:
            raise InvalidGrantError("refresh token expired")
        # §6: the new access token's scope can only narrow; the new refresh
        # token keeps the scope of the one it replaces.
        scope = narrow_scope(parse_scope(request.form.get("scope")), token.scope)
        # RFC 9449 §5: a public client's refresh token is used with its DPoP key only.
        dpop.check_bound(token.jkt, "this refresh token")
        # RFC 8707 §2.2: narrow the resources of the grant, never widen them.
        resource = requested_resources(
            request.form, self.ctx.settings.resources, within=token.audience or None
        )
        # A request that loses a race to rotate re-reads the token and is judged
        # like any later presentation: reuse, or a retry within the grace period.
        for _ in range(2):
            expected_successor = await self._expected_successor(token, now)
            tokens = mint_tokens(
                self.ctx,
                client,
                scope=scope,
                subject=token.subject,
                family_id=token.family_id,
                with_refresh=True,
                refresh_scope=token.scope,
                parent_hash=token.token_hash,
                resource=resource or token.audience,
                grant_resource=token.audience,
                jkt=dpop.jkt,
                # The successor stays bound to the key its predecessor was bound to.
                refresh_jkt=token.jkt,
            )
            if await storage.rotate_refresh_token(
                token.token_hash,
                expected_successor=expected_successor,
                tokens=tokens.rows,
                now=now,
            ):
                if expected_successor is not None:
                    self.ctx.revoked()  # the pair rotated out before the retry
                return tokens.response
            current = await storage.get_token(token.token_hash)
            if current is None or current.revoked_at is not None:
                break
            token = current
        raise InvalidGrantError("refresh token already used")

    async def _expected_successor(self, token: Token, now: int) -> str | None:
        """None for a first rotation, the current successor for a grace retry."""
        if token.replaced_by is None:
            return None
        grace = self.ctx.settings.refresh_token_grace_period
        if grace and token.rotated_at is not None and now - token.rotated_at <= grace:
            successor = await self.ctx.storage.get_token(token.replaced_by)
            if successor is not None and successor.replaced_by is None:
                return token.replaced_by
        revoked = await self.ctx.storage.revoke_family(token.family_id, now=now)
        self.ctx.revoked()
        security_event(
            "refresh_token_reuse_detected",
            level=logging.WARNING,
            client_id=token.client_id,
            sub=token.subject,
            revoked_tokens=revoked,
        )
        raise InvalidGrantError("refresh token already used")
