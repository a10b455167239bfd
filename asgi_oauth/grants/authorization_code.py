"""The authorization code grant at the token endpoint (RFC 6749 §4.1.3, RFC 7636 §4.5).

A code is redeemed once: the store marks it consumed and saves its tokens in
one step, and a code presented again revokes every token it led to (§4.1.2).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Literal

from .. import pkce
from ..crypto import hash_token
from ..errors import InvalidGrantError
from ..events import security_event
from ..models import AuthorizationCode, Client, TokenResponse
from ..openid import Authentication, is_openid
from ..requests import OAuthRequest
from ..resources import token_resources
from .base import DPoPBinding, GrantContext, may_refresh, mint_tokens


@dataclass(frozen=True, slots=True)
class AuthorizationCodeGrant:
    ctx: GrantContext
    grant_type: Literal["authorization_code"] = "authorization_code"

    async def issue(
        self, request: OAuthRequest, client: Client, dpop: DPoPBinding
    ) -> TokenResponse:
        storage, now = self.ctx.storage, self.ctx.now()
        code = await storage.get_authorization_code(hash_token(request.require("code")))
        # §4.1.3: the code must have been issued to this client.
        if code is None or code.client_id != client.client_id:
            raise InvalidGrantError("invalid authorization code")
        if code.consumed_at is not None:
            await self._revoke_replayed(code, now)
        if code.expires_at <= now:
            raise InvalidGrantError("authorization code expired")
        self._check_redirect_uri(code, client, request.form.get("redirect_uri"))
        self._check_pkce(code, client, request.form.get("code_verifier"))
        # RFC 9449 §10: a code asked for with dpop_jkt is redeemed with that key only.
        dpop.check_bound(code.dpop_jkt, "this code")
        # RFC 8707 §2.2: the token may be for fewer resources than the code, never more.
        resource = token_resources(
            request.form, self.ctx.settings, granted=code.resource, scope=code.scope
        )

        tokens = mint_tokens(
            self.ctx,
            client,
            scope=code.scope,
            subject=code.subject,
            family_id=code.family_id,
            with_refresh=may_refresh(self.ctx, client),
            resource=resource,
            grant_resource=code.resource,
            jkt=dpop.jkt,
            refresh_jkt=dpop.refresh_jkt,
        )
        response = tokens.response
        if is_openid(code.scope) and self.ctx.id_token is not None:
            # OpenID Connect Core §3.1.3.3; signed before the code is spent.
            authentication = Authentication(
                code.subject, code.auth_time, code.acr, code.amr, code.nonce
            )
            id_token = await self.ctx.id_token(
                client, authentication, code.scope, access_token=response.access_token
            )
            response = replace(response, id_token=id_token)
        if not await storage.redeem_authorization_code(code.code_hash, tokens=tokens.rows, now=now):
            # Another request redeemed it first: this one is a replay.
            await self._revoke_replayed(code, now)
        return response

    async def _revoke_replayed(self, code: AuthorizationCode, now: int) -> None:
        # §4.1.2: a code used twice MUST be refused; what it issued SHOULD be revoked.
        revoked = await self.ctx.storage.revoke_family(code.family_id, now=now)
        self.ctx.revoked()
        security_event(
            "authorization_code_replayed",
            level=logging.WARNING,
            client_id=code.client_id,
            revoked_tokens=revoked,
        )
        raise InvalidGrantError("authorization code already used")

    def _check_redirect_uri(
        self, code: AuthorizationCode, client: Client, given: str | None
    ) -> None:
        # §4.1.3: required, and identical, when it was part of the authorization request.
        if code.redirect_uri is not None:
            if given != code.redirect_uri:
                raise InvalidGrantError("redirect_uri does not match the authorization request")
        elif given is not None and given not in client.redirect_uris:
            raise InvalidGrantError("redirect_uri is not registered for this client")

    def _check_pkce(self, code: AuthorizationCode, client: Client, verifier: str | None) -> None:
        if code.code_challenge is None or code.code_challenge_method is None:
            if client.is_public or client.require_pkce or self.ctx.settings.require_pkce:
                raise InvalidGrantError("code was issued without PKCE")
            # RFC 9700 §2.1.1: a verifier without a challenge is a downgrade attempt.
            if verifier is not None:
                raise InvalidGrantError("code_verifier sent but no code_challenge was")
            return
        # RFC 7636 §4.6: transform the verifier and compare it with the challenge.
        if verifier is None or not pkce.verify(
            verifier, code.code_challenge, code.code_challenge_method
        ):
            raise InvalidGrantError("code_verifier does not match the code_challenge")
