"""The authorization server: framework-free async operations behind every endpoint.

The ASGI app turns HTTP into ``OAuthRequest`` objects and calls these methods;
the middleware calls ``introspect_token`` in-process. Every failure the client
may see is an ``OAuth2Error``; a failing store becomes ``temporarily_unavailable``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Final

from . import pkce
from .client_auth import authenticate_client
from .clients import RegisteredClient, new_client
from .config import Settings
from .crypto import generate_token, hash_password, hash_token, time_ordered_token
from .errors import (
    InvalidRequestError,
    StorageError,
    TemporarilyUnavailableError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from .grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    Grant,
    GrantContext,
    PasswordGrant,
    RefreshTokenGrant,
)
from .grants.base import new_family_id
from .models import INACTIVE, AuthorizationCode, IntrospectionResult, Token, TokenResponse, User
from .requests import OAuthRequest
from .scopes import narrow_scope, parse_scope
from .storage.base import Storage
from .throttle import Throttle
from .types import GRANT_TYPES, CodeChallengeMethod, GrantType

logger = logging.getLogger("asgi_oauth")

#: Endpoint paths below the issuer; the ASGI app routes these same paths.
TOKEN_PATH: Final = "/token"
INTROSPECTION_PATH: Final = "/introspect"
REVOCATION_PATH: Final = "/revoke"
METADATA_PATH: Final = "/.well-known/oauth-authorization-server"


class AuthorizationServer:
    """Issues, introspects and revokes tokens on a ``Storage`` under ``Settings``."""

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.throttle = Throttle(settings.max_failed_attempts, settings.failed_attempts_window)
        self._clock = clock
        self._revocation_listeners: list[Callable[[], None]] = []
        ctx = GrantContext(storage, settings, self.throttle, clock, self._notify_revoked)
        grants: tuple[Grant, ...] = (
            AuthorizationCodeGrant(ctx),
            ClientCredentialsGrant(ctx),
            RefreshTokenGrant(ctx),
            PasswordGrant(ctx),
        )
        self._grants: dict[str, Grant] = {
            g.grant_type: g for g in grants if g.grant_type in settings.enabled_grants
        }
        self._next_purge = int(clock()) + settings.purge_interval
        self._purge_task: asyncio.Task[None] | None = None

    # -- endpoints -----------------------------------------------------------

    async def token(self, request: OAuthRequest) -> TokenResponse:
        """The token endpoint (RFC 6749 §3.2)."""
        grant_type = request.require("grant_type")
        grant = self._grants.get(grant_type)
        if grant is None:
            raise UnsupportedGrantTypeError(f"unsupported grant_type: {grant_type[:64]}")
        with _storage_guard:
            client = await authenticate_client(
                request, self.storage, self.throttle, allow_public=True
            )
            if grant.grant_type not in client.grant_types:
                raise UnauthorizedClientError(f"client may not use {grant.grant_type}")
            response = await grant.issue(request, client)
        self._maybe_purge()
        return response

    async def introspect(self, request: OAuthRequest) -> IntrospectionResult:
        """The introspection endpoint (RFC 7662 §2).

        Only the client a token was issued to, or a resource server, learns
        its state; anyone else is told ``{"active": false}`` (§4).
        """
        token_value = request.require("token")
        with _storage_guard:
            caller = await authenticate_client(
                request, self.storage, self.throttle, allow_public=False
            )
            token = await self.storage.get_token(hash_token(token_value))
        if token is None or not (caller.is_resource_server or token.client_id == caller.client_id):
            return INACTIVE
        return self._describe(token)

    async def introspect_token(self, token_value: str) -> IntrospectionResult:
        """What ``introspect`` tells a resource server: for in-process middleware."""
        with _storage_guard:
            token = await self.storage.get_token(hash_token(token_value))
        return INACTIVE if token is None else self._describe(token)

    async def revoke(self, request: OAuthRequest) -> None:
        """The revocation endpoint (RFC 7009 §2.1).

        An unknown token, or one issued to another client, is answered like a
        revoked one (§2.2) so the endpoint tells nothing. ``token_type_hint``
        needs no trust: one lookup finds either kind.
        """
        token_value = request.require("token")
        with _storage_guard:
            client = await authenticate_client(
                request, self.storage, self.throttle, allow_public=True
            )
            token = await self.storage.get_token(hash_token(token_value))
            if token is None or token.client_id != client.client_id:
                return
            now = self._now()
            if token.kind == "refresh_token":
                # §2.1: revoking a refresh token SHOULD revoke the access tokens of its grant.
                await self.storage.revoke_family(token.family_id, now=now)
            else:
                await self.storage.revoke_token(token.token_hash, now=now)
        self._notify_revoked()

    def metadata(self) -> dict[str, object]:
        """Authorization server metadata (RFC 8414 §2), all URLs from the issuer."""
        issuer = self.settings.issuer
        enabled = [g for g in GRANT_TYPES if g in self.settings.enabled_grants]
        methods = ["S256", "plain"] if self.settings.allow_plain_pkce else ["S256"]
        metadata: dict[str, object] = {
            "issuer": issuer,
            "token_endpoint": issuer + TOKEN_PATH,
            "introspection_endpoint": issuer + INTROSPECTION_PATH,
            "revocation_endpoint": issuer + REVOCATION_PATH,
            "grant_types_supported": enabled,
            "response_types_supported": ["code"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "introspection_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
            ],
            "revocation_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "code_challenge_methods_supported": methods,
        }
        if self.settings.scopes_supported:
            metadata["scopes_supported"] = list(self.settings.scopes_supported)
        return metadata

    # -- issuing codes, registering clients and users ------------------------

    async def create_authorization_code(
        self,
        *,
        client_id: str,
        subject: str,
        redirect_uri: str | None = None,
        scope: str | None = None,
        code_challenge: str | None = None,
        code_challenge_method: CodeChallengeMethod | None = None,
        nonce: str | None = None,
    ) -> str:
        """Issue a code for an approved authorization request (RFC 6749 §4.1.2)."""
        with _storage_guard:
            client = await self.storage.get_client(client_id)
        if client is None:
            raise InvalidRequestError("unknown client")
        if "authorization_code" not in client.grant_types:
            raise UnauthorizedClientError("client may not use authorization_code")
        if redirect_uri is not None and redirect_uri not in client.redirect_uris:
            raise InvalidRequestError("redirect_uri is not registered for this client")
        if redirect_uri is None and len(client.redirect_uris) != 1:
            raise InvalidRequestError("redirect_uri required")
        if code_challenge is None:
            if client.is_public or client.require_pkce or self.settings.require_pkce:
                raise InvalidRequestError("code_challenge required (RFC 7636)")
            code_challenge_method = None
        else:
            # RFC 7636 §4.3: the method defaults to plain.
            code_challenge_method = code_challenge_method or "plain"
            if code_challenge_method == "plain" and not self.settings.allow_plain_pkce:
                raise InvalidRequestError("transform algorithm not supported")
            if not pkce.is_valid_challenge(code_challenge, code_challenge_method):
                raise InvalidRequestError("malformed code_challenge")
        granted = narrow_scope(parse_scope(scope), client.scope)
        code = time_ordered_token()
        now = self._now()
        with _storage_guard:
            await self.storage.save_authorization_code(
                AuthorizationCode(
                    code_hash=hash_token(code),
                    client_id=client.client_id,
                    subject=subject,
                    scope=granted,
                    redirect_uri=redirect_uri,
                    family_id=new_family_id(),
                    issued_at=now,
                    expires_at=now + self.settings.authorization_code_lifetime,
                    code_challenge=code_challenge,
                    code_challenge_method=code_challenge_method,
                    nonce=nonce,
                )
            )
        return code

    async def register_client(
        self,
        *,
        name: str,
        redirect_uris: Iterable[str] = (),
        grant_types: Iterable[GrantType] = ("authorization_code", "refresh_token"),
        scope: Iterable[str] = (),
        public: bool = False,
        allowed_origins: Iterable[str] = (),
        is_resource_server: bool = False,
        require_pkce: bool = False,
        client_id: str | None = None,
    ) -> RegisteredClient:
        """Register a client; the returned secret is never shown again.

        An explicit ``client_id`` that is already registered is refused, so a
        restarted application cannot silently replace a client and its secret.
        """
        if client_id is not None and await self.storage.get_client(client_id) is not None:
            raise ValueError(f"client_id already registered: {client_id!r}")
        registered = new_client(
            name=name,
            redirect_uris=redirect_uris,
            grant_types=grant_types,
            scope=scope,
            public=public,
            allowed_origins=allowed_origins,
            is_resource_server=is_resource_server,
            require_pkce=require_pkce,
            insecure_transport=self.settings.insecure_transport,
            client_id=client_id,
        )
        await self.storage.save_client(registered.client)
        return registered

    async def create_user(self, username: str, password: str) -> User:
        """Add a resource owner; the password is kept as an scrypt hash only."""
        if not username or not password:
            raise ValueError("username and password must not be empty")
        password_hash = await asyncio.to_thread(hash_password, password)
        user = User(
            user_id=generate_token(16),
            username=username,
            password_hash=password_hash,
            created_at=self._now(),
        )
        await self.storage.save_user(user)
        return user

    # -- housekeeping --------------------------------------------------------

    def add_revocation_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever this server revokes tokens (caches forget at once)."""
        self._revocation_listeners.append(listener)

    def _notify_revoked(self) -> None:
        for listener in self._revocation_listeners:
            listener()

    async def purge_expired(self) -> int:
        """Delete expired codes and tokens; returns how many went."""
        return await self.storage.purge_expired(now=self._now())

    async def close(self) -> None:
        if self._purge_task is not None:
            await asyncio.gather(self._purge_task, return_exceptions=True)
        await self.storage.close()

    def _now(self) -> int:
        return int(self._clock())

    def _describe(self, token: Token) -> IntrospectionResult:
        if not token.is_active(self._now()):
            return INACTIVE
        return IntrospectionResult(
            active=True,
            scope=token.scope,
            client_id=token.client_id,
            token_type="Bearer" if token.kind == "access_token" else "refresh_token",
            exp=token.expires_at,
            iat=token.issued_at,
            iss=self.settings.issuer,
            sub=token.subject,
            aud=token.audience,
        )

    def _maybe_purge(self) -> None:
        """Purge expired rows now and then, in the background, so stores stay bounded."""
        interval = self.settings.purge_interval
        if not interval or self._now() < self._next_purge:
            return
        if self._purge_task is not None and not self._purge_task.done():
            return
        self._next_purge = self._now() + interval
        self._purge_task = asyncio.create_task(self._purge())

    async def _purge(self) -> None:
        try:
            purged = await self.purge_expired()
        except StorageError:
            logger.exception("purging expired codes and tokens failed")
        else:
            logger.info("purged expired codes and tokens count=%d", purged)


class _StorageGuard:
    """Turns a ``StorageError`` into ``temporarily_unavailable`` (a stateless singleton)."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, StorageError):
            raise TemporarilyUnavailableError.from_storage(exc) from exc


_storage_guard = _StorageGuard()
