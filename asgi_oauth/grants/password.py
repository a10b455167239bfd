"""The resource owner password credentials grant (RFC 6749 §4.3).

Off unless enabled: RFC 9700 §2.4 says it MUST NOT be used. Guessing is
throttled per username, and scrypt runs off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Literal

from ..crypto import verify_password
from ..errors import InvalidGrantError
from ..models import Client, TokenResponse
from ..requests import OAuthRequest
from ..scopes import narrow_scope, parse_scope
from .base import GrantContext, may_refresh, mint_tokens, new_family_id

logger = logging.getLogger("asgi_oauth")


@dataclass(frozen=True, slots=True)
class PasswordGrant:
    ctx: GrantContext
    grant_type: Literal["password"] = "password"

    async def issue(self, request: OAuthRequest, client: Client) -> TokenResponse:
        username = request.require("username")
        password = request.require("password")
        scope = narrow_scope(parse_scope(request.form.get("scope")), client.scope)
        throttle_key = request.throttle_key(f"user:{username}")
        retry_after = self.ctx.throttle.retry_after(throttle_key)
        if retry_after:
            raise InvalidGrantError(
                "too many failed sign-ins; retry later",
                status_code=429,
                headers={"Retry-After": str(retry_after)},
            )
        user = await self.ctx.storage.get_user(username)
        stored = user.password_hash if user is not None else None
        if not await asyncio.to_thread(verify_password, password, stored) or user is None:
            self.ctx.throttle.failed(throttle_key)
            logger.warning("password sign-in failed client_id=%r", client.client_id)
            raise InvalidGrantError("invalid username or password")
        self.ctx.throttle.succeeded(throttle_key)
        tokens = mint_tokens(
            self.ctx,
            client,
            scope=scope,
            subject=user.user_id,
            family_id=new_family_id(),
            with_refresh=may_refresh(self.ctx, client),
        )
        await self.ctx.storage.save_tokens(tokens.rows)
        return tokens.response
