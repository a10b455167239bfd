"""The resource owner password credentials grant (RFC 6749 §4.3).

Off unless enabled: RFC 9700 §2.4 says it MUST NOT be used. Passwords are
checked by ``users.authenticate_user``, throttled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..models import Client, TokenResponse
from ..requests import OAuthRequest
from ..resources import token_resources
from ..scopes import narrow_scope, parse_scope
from ..users import authenticate_user
from .base import DPoPBinding, GrantContext, may_refresh, mint_tokens, new_family_id


@dataclass(frozen=True, slots=True)
class PasswordGrant:
    ctx: GrantContext
    grant_type: Literal["password"] = "password"

    async def issue(
        self, request: OAuthRequest, client: Client, dpop: DPoPBinding
    ) -> TokenResponse:
        username = request.require("username")
        password = request.require("password")
        scope = narrow_scope(parse_scope(request.form.get("scope")), client.scope)
        resource = token_resources(request.form, self.ctx.settings, scope=scope)
        user = await authenticate_user(
            request, self.ctx.storage, self.ctx.guesses, username, password
        )
        tokens = mint_tokens(
            self.ctx,
            client,
            scope=scope,
            subject=user.user_id,
            family_id=new_family_id(),
            with_refresh=may_refresh(self.ctx, client),
            resource=resource,
            jkt=dpop.jkt,
            refresh_jkt=dpop.refresh_jkt,
        )
        await self.ctx.storage.save_tokens(tokens.rows)
        return tokens.response
