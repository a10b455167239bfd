"""The client credentials grant (RFC 6749 §4.4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import UnauthorizedClientError
from ..models import Client, TokenResponse
from ..requests import OAuthRequest
from ..resources import token_resources
from ..scopes import narrow_scope, parse_scope
from .base import DPoPBinding, GrantContext, mint_tokens, new_family_id


@dataclass(frozen=True, slots=True)
class ClientCredentialsGrant:
    ctx: GrantContext
    grant_type: Literal["client_credentials"] = "client_credentials"

    async def issue(
        self, request: OAuthRequest, client: Client, dpop: DPoPBinding
    ) -> TokenResponse:
        # §4.4: only confidential clients may use this grant.
        if client.is_public:
            raise UnauthorizedClientError("public clients cannot use client_credentials")
        scope = narrow_scope(parse_scope(request.form.get("scope")), client.scope)
        # §4.4.3: a refresh token SHOULD NOT be included.
        tokens = mint_tokens(
            self.ctx,
            client,
            scope=scope,
            subject=None,
            family_id=new_family_id(),
            with_refresh=False,
            resource=token_resources(request.form, self.ctx.settings, scope=scope),
            jkt=dpop.jkt,
        )
        await self.ctx.storage.save_tokens(tokens.rows)
        return tokens.response
