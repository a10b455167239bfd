"""The refresh token grant (RFC 6749 §6) with rotation and reuse detection.

Every refresh rotates the refresh token. A rotated-out token presented again
means it leaked: the whole family is revoked (RFC 9700 §4.14.2). With a grace
period, a client that lost the response may present the old token again while
its successor is unused, and gets the very response it lost, sealed under the
old token when it was sent: a retry never mints a second pair, so a thief
replaying the old token holds what the client holds, and whichever of them uses
the successor second is caught as reuse.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Literal

from ..crypto import Sealer, hash_token
from ..errors import InvalidGrantError
from ..events import security_event
from ..models import Client, Token, TokenResponse
from ..requests import OAuthRequest
from ..resources import token_resources
from ..scopes import narrow_scope, parse_scope
from .base import DPoPBinding, GrantContext, TokenSet, mint_tokens

_SEAL_PURPOSE = b"asgi_oauth refresh retry"


@dataclass(frozen=True, slots=True)
class RefreshTokenGrant:
    ctx: GrantContext
    grant_type: Literal["refresh_token"] = "refresh_token"

    async def issue(
        self, request: OAuthRequest, client: Client, dpop: DPoPBinding
    ) -> TokenResponse:
        storage, now = self.ctx.storage, self.ctx.now()
        presented = request.require("refresh_token")
        token = await storage.get_token(hash_token(presented))
        if token is None or token.kind != "refresh_token" or token.client_id != client.client_id:
            raise InvalidGrantError("invalid refresh token")
        if token.revoked_at is not None:
            raise InvalidGrantError("refresh token revoked")
        if token.expires_at <= now:
            raise InvalidGrantError("refresh token expired")
        # RFC 9449 §5: a public client's refresh token is used with its DPoP key only.
        dpop.check_bound(token.jkt, "this refresh token")
        if token.replaced_by is not None:
            return await self._presented_again(token, presented, dpop, now)
        # §6: the new access token's scope can only narrow; the new refresh
        # token keeps the scope of the one it replaces.
        scope = narrow_scope(parse_scope(request.form.get("scope")), token.scope)
        # RFC 8707 §2.2: narrow the resources of the grant, never widen them.
        resource = token_resources(
            request.form, self.ctx.settings, granted=token.audience, scope=scope
        )
        tokens = mint_tokens(
            self.ctx,
            client,
            scope=scope,
            subject=token.subject,
            family_id=token.family_id,
            with_refresh=True,
            refresh_scope=token.scope,
            parent_hash=token.token_hash,
            resource=resource,
            grant_resource=token.audience,
            jkt=dpop.jkt,
            # The successor stays bound to the key its predecessor was bound to.
            refresh_jkt=token.jkt,
        )
        sealed = None
        if self.ctx.settings.refresh_token_grace_period:
            sealed = _seal(presented, token.token_hash, tokens, dpop.jkt)
        if await storage.rotate_refresh_token(
            token.token_hash, tokens=tokens.rows, now=now, sealed_response=sealed
        ):
            return tokens.response
        # Another request rotated it first, or the family was revoked meanwhile: judged
        # like any later presentation.
        current = await storage.get_token(token.token_hash)
        if current is None or current.revoked_at is not None or current.replaced_by is None:
            raise InvalidGrantError("refresh token revoked")
        return await self._presented_again(current, presented, dpop, now)

    async def _presented_again(
        self, token: Token, presented: str, dpop: DPoPBinding, now: int
    ) -> TokenResponse:
        """A rotated-out token: the lost response again, within the grace period and
        while its successor is unused; otherwise reuse, which revokes the family."""
        grace = self.ctx.settings.refresh_token_grace_period
        rotated_at, sealed = token.rotated_at, token.sealed_response
        if grace and rotated_at is not None and now - rotated_at <= grace and sealed is not None:
            assert token.replaced_by is not None
            successor = await self.ctx.storage.get_token(token.replaced_by)
            if successor is not None and successor.is_active(now):
                response, jkt = _unseal(presented, token.token_hash, sealed, now)
                if jkt != dpop.jkt:
                    raise InvalidGrantError("a retry must use the DPoP key of the first request")
                security_event("refresh_token_retried", client_id=token.client_id)
                return response
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


def _seal(presented: str, token_hash: str, tokens: TokenSet, jkt: str | None) -> str:
    """The response, with when its access token expires and the DPoP key it is bound to,
    encrypted under the presented refresh token: the store alone cannot read it."""
    (access,) = [row for row in tokens.rows if row.kind == "access_token"]
    payload = {"response": tokens.response.to_dict(), "exp": access.expires_at, "jkt": jkt}
    plaintext = json.dumps(payload, separators=(",", ":")).encode()
    return Sealer(presented, purpose=_SEAL_PURPOSE).seal(plaintext, context=token_hash)


def _unseal(
    presented: str, token_hash: str, sealed: str, now: int
) -> tuple[TokenResponse, str | None]:
    try:
        plaintext = Sealer(presented, purpose=_SEAL_PURPOSE).open(sealed, context=token_hash)
        payload = json.loads(plaintext)
    except ValueError:
        raise InvalidGrantError("refresh token already used") from None
    body = payload["response"]
    response = TokenResponse(
        access_token=body["access_token"],
        # RFC 6749 §5.1: the lifetime left, not the one the lost response said.
        expires_in=max(0, payload["exp"] - now),
        scope=frozenset(body.get("scope", "").split()),
        refresh_token=body.get("refresh_token"),
        token_type=body["token_type"],
    )
    return response, payload["jkt"]
