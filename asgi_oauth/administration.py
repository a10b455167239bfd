"""What a host application, a deployment script or the command line does besides
serving requests: people, clients and codes made by hand.

``AuthorizationServer`` has these methods; they are here to keep the server's own
module about wiring the endpoints together.
"""

from __future__ import annotations

from collections.abc import Iterable

from .client_config import ClientPlan, apply_clients_file
from .clients import RegisteredClient, new_client
from .config import Settings
from .endpoints.accounts import Accounts
from .endpoints.authorization import AuthorizationEndpoint
from .keys import KeySet
from .models import User
from .requests import OAuthRequest
from .storage.base import Storage
from .types import (
    AccessTokenFormat,
    ApplicationType,
    CodeChallengeMethod,
    GrantType,
    SigningAlgorithm,
)


class Administration:
    """People, clients and codes, for ``AuthorizationServer``."""

    storage: Storage
    settings: Settings
    keys: KeySet | None
    accounts: Accounts
    authorization: AuthorizationEndpoint

    async def authenticate_user(self, request: OAuthRequest, username: str, password: str) -> User:
        """The user these credentials name, for a sign-in page (throttled like the grant)."""
        return await self.accounts.authenticate(request, username, password)

    async def create_user(self, username: str, password: str) -> User:
        """Add a resource owner; a taken username is refused (``ValueError``)."""
        return await self.accounts.create_user(username, password)

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
        """Issue a code for an approved request, checked like ``/authorize`` checks it.

        For host applications with their own consent screen, and for tests.
        """
        given = {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "code_challenge": code_challenge,
            "code_challenge_method": code_challenge_method,
            "nonce": nonce,
        }
        params = {k: v for k, v in given.items() if v is not None}
        return await self.authorization.create_code(params, subject)

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
        access_token_format: AccessTokenFormat | None = None,
        id_token_signed_response_alg: SigningAlgorithm = "RS256",
        require_pushed_authorization_requests: bool = False,
        dpop_bound_access_tokens: bool = False,
        application_type: ApplicationType | None = None,
        client_secret: str | None = None,
        post_logout_redirect_uris: Iterable[str] = (),
        backchannel_logout_uri: str | None = None,
    ) -> RegisteredClient:
        """Register a client; the returned secret (``client_secret`` if given, at least
        43 characters) is never shown again. An explicit ``client_id`` already registered
        is refused: a restarted application cannot silently replace a client and its secret.
        """
        if access_token_format == "jwt" and self.keys is None:
            raise ValueError("JWT access tokens need signing keys: set key_encryption_key")
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
            access_token_format=access_token_format,
            id_token_signed_response_alg=id_token_signed_response_alg,
            require_pushed_authorization_requests=require_pushed_authorization_requests,
            dpop_bound_access_tokens=dpop_bound_access_tokens,
            application_type=application_type,
            client_secret=client_secret,
            post_logout_redirect_uris=post_logout_redirect_uris,
            backchannel_logout_uri=backchannel_logout_uri,
        )
        if not await self.storage.add_client(registered.client):
            raise ValueError(f"client_id already registered: {registered.client.client_id!r}")
        return registered

    async def apply_clients(
        self, path: str | None = None, *, prune: bool = False, dry_run: bool = False
    ) -> ClientPlan:
        """Make the stored clients what a clients file declares (``client_config``);
        ``path`` defaults to ``Settings.clients_file``. For a lifespan, at startup."""
        return await apply_clients_file(
            self.storage, self.settings, path, prune=prune, dry_run=dry_run
        )
