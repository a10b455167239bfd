"""What every grant shares: its context, its interface, and minting a token set."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..config import Settings
from ..crypto import hash_token, time_ordered_token
from ..errors import InvalidDPoPProofError
from ..jwt_access_tokens import JWT_ACCESS_TOKEN_TYPE, access_token_claims
from ..keys import KeySet
from ..models import Client, Token, TokenResponse
from ..openid import Authentication
from ..requests import OAuthRequest
from ..storage.base import Storage
from ..throttle import SharedThrottle, Throttle
from ..types import GrantType


class IdTokenFactory(Protocol):
    """Signs an ID token for a grant with the ``openid`` scope (the server's)."""

    def __call__(
        self,
        client: Client,
        authentication: Authentication,
        scope: frozenset[str],
        *,
        access_token: str | None = None,
        code: str | None = None,
        with_user_claims: bool = True,
    ) -> Awaitable[str]: ...


@dataclass(frozen=True, slots=True)
class GrantContext:
    storage: Storage
    settings: Settings
    throttle: Throttle
    #: Guessable secrets (passwords) are counted in the store, across instances.
    guesses: SharedThrottle
    clock: Callable[[], float] = field(default=time.time)
    #: Called after tokens were revoked, so in-process caches can forget them.
    revoked: Callable[[], None] = field(default=lambda: None)
    #: The signing keys, when OpenID Connect is on (ready before a grant runs).
    keys: KeySet | None = None
    id_token: IdTokenFactory | None = None

    def now(self) -> int:
        return int(self.clock())


class Grant(Protocol):
    """A grant type the token endpoint dispatches to (RFC 6749 §4, §6)."""

    @property
    def grant_type(self) -> GrantType:
        """The ``grant_type`` value this grant answers to."""

    async def issue(
        self, request: OAuthRequest, client: Client, dpop: DPoPBinding
    ) -> TokenResponse:
        """Validate the grant for this authenticated client and return new tokens."""


@dataclass(frozen=True, slots=True)
class DPoPBinding:
    """The DPoP key of a token request (RFC 9449 §5), if its proof checked out.

    The access token is bound to it; a public client's refresh token too, since
    that client has no other credential to protect it with.
    """

    jkt: str | None
    client_is_public: bool

    @property
    def refresh_jkt(self) -> str | None:
        return self.jkt if self.client_is_public else None

    def check_bound(self, bound_jkt: str | None, what: str) -> None:
        """Refuse a request whose proof's key is not the one ``what`` is bound to."""
        if bound_jkt is None:
            return
        if self.jkt is None:
            raise InvalidDPoPProofError(f"{what} is bound to a DPoP key: send a DPoP proof")
        if self.jkt != bound_jkt:  # thumbprints are public: no need for constant time
            raise InvalidDPoPProofError(f"the DPoP proof's key is not the one {what} is bound to")


@dataclass(frozen=True, slots=True)
class TokenSet:
    """Tokens minted for one response: the wire form and the rows to store."""

    response: TokenResponse
    rows: tuple[Token, ...]


def mint_tokens(
    ctx: GrantContext,
    client: Client,
    *,
    scope: frozenset[str],
    subject: str | None,
    family_id: str,
    with_refresh: bool,
    refresh_scope: frozenset[str] | None = None,
    parent_hash: str | None = None,
    resource: tuple[str, ...] = (),
    grant_resource: tuple[str, ...] | None = None,
    jkt: str | None = None,
    refresh_jkt: str | None = None,
) -> TokenSet:
    """A new access token (and refresh token) for one grant family.

    ``resource`` is the access token's audience (RFC 8707 §2); the refresh token
    keeps ``grant_resource`` (by default the same), what later requests may
    narrow. ``jkt`` binds the access token to a DPoP key (RFC 9449 §6),
    ``refresh_jkt`` the refresh token.
    """
    settings = ctx.settings
    now = ctx.now()
    audience = resource
    if (
        ctx.keys is not None
        and (client.access_token_format or settings.access_token_format) == "jwt"
    ):
        jti = time_ordered_token(16)
        # RFC 9068 §3: aud is required; without a resource, the server's default.
        audience = resource or (settings.jwt_audience,)
        claims = access_token_claims(
            jti=jti,
            issuer=settings.issuer,
            audience=audience,
            client_id=client.client_id,
            subject=subject,
            scope=scope,
            now=now,
            lifetime=settings.access_token_lifetime,
            jkt=jkt,
        )
        access_token = ctx.keys.sign(
            claims, alg=settings.access_token_signing_alg, typ=JWT_ACCESS_TOKEN_TYPE
        )
        key = hash_token(jti)
    else:
        access_token = time_ordered_token()
        key = hash_token(access_token)
    rows = [
        Token(
            token_hash=key,
            kind="access_token",
            client_id=client.client_id,
            scope=scope,
            family_id=family_id,
            issued_at=now,
            expires_at=now + settings.access_token_lifetime,
            subject=subject,
            audience=audience,
            parent_hash=parent_hash,
            jkt=jkt,
        )
    ]
    refresh_token = None
    if with_refresh:
        refresh_token = time_ordered_token()
        rows.append(
            Token(
                token_hash=hash_token(refresh_token),
                kind="refresh_token",
                client_id=client.client_id,
                scope=scope if refresh_scope is None else refresh_scope,
                family_id=family_id,
                issued_at=now,
                expires_at=now + settings.refresh_token_lifetime,
                subject=subject,
                audience=resource if grant_resource is None else grant_resource,
                parent_hash=parent_hash,
                jkt=refresh_jkt,
            )
        )
    response = TokenResponse(
        access_token=access_token,
        expires_in=settings.access_token_lifetime,
        scope=scope,
        refresh_token=refresh_token,
        # RFC 9449 §5: a bound token is no bearer token.
        token_type="Bearer" if jkt is None else "DPoP",
    )
    return TokenSet(response, tuple(rows))


def may_refresh(ctx: GrantContext, client: Client) -> bool:
    """Issue a refresh token only to clients allowed to use it (RFC 6749 §1.5)."""
    return "refresh_token" in client.grant_types and "refresh_token" in ctx.settings.enabled_grants


def new_family_id() -> str:
    """A unique grant id that sorts by creation time, for the same index locality as keys."""
    return time_ordered_token(12)
