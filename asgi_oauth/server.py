"""``AuthorizationServer``: the façade that builds each endpoint and keeps one public API.

Every endpoint is its own object in ``asgi_oauth.endpoints`` with the few things it
needs (store, settings, clock, keys); this class wires them together. The ASGI app
and the middleware call the endpoint objects or these methods; every failure a
client may see is an ``OAuth2Error``, and a failing store ``temporarily_unavailable``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping

from .administration import Administration
from .authorization import AuthorizationRequest, AuthorizationResponse
from .availability import Availability
from .client_documents.directory import ClientDocuments, DocumentPolicy
from .client_lookup import ClientLookup
from .config import Settings
from .crypto import generate_token
from .dpop import DPoPNonces
from .endpoints.accounts import Accounts
from .endpoints.authorization import AuthorizationEndpoint
from .endpoints.backchannel import BackchannelLogout
from .endpoints.connected_apps import ConnectedApps
from .endpoints.device import DeviceAuthorizationEndpoint
from .endpoints.dpop import DPoPProofs
from .endpoints.housekeeping import Housekeeping
from .endpoints.introspection import Introspection
from .endpoints.logout import EndSession
from .endpoints.metadata import openid_configuration, server_metadata
from .endpoints.openid import OpenIDProvider
from .endpoints.par import PushedAuthorization
from .endpoints.registration import Registrar
from .endpoints.revocation import Revocation, RevocationListeners
from .endpoints.token import TokenEndpoint
from .errors import OAuth2Error
from .federation.accounts import FederationPolicy
from .federation.broker import Federation
from .grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    DeviceCodeGrant,
    Grant,
    GrantContext,
    PasswordGrant,
    RefreshTokenGrant,
)
from .keys import KeyEncryption, KeySet
from .models import (
    Client,
    DeviceAuthorization,
    IntrospectionResult,
    ResourceOwner,
    SigningKey,
    TokenResponse,
)
from .observability.instruments import Instruments
from .observability.storage import instrumented
from .openid import UserClaims
from .rate_limits import RateLimits
from .requests import OAuthRequest
from .storage.base import Storage
from .storage.urls import DEFAULT_DATABASE_URL, open_storage
from .throttle import SharedThrottle, Throttle
from .types import (
    SigningAlgorithm,
)

__all__ = ["AuthorizationServer"]


class AuthorizationServer(Administration):
    """Issues, introspects and revokes tokens on a ``Storage`` under ``Settings``.

    With ``Settings.key_encryption_key`` it is an OpenID Connect provider too;
    ``user_claims`` then says what ID tokens and userinfo tell of a user beyond
    ``sub`` (by default ``preferred_username``, with the ``profile`` scope).
    ``client_document_policy`` decides, beside the host settings, which client
    ID metadata documents may be fetched: called with the URL, true to allow.
    ``federation_policy`` decides who may sign in through an upstream provider
    (``Settings.upstream_providers``) and what they may grant.
    """

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        user_claims: UserClaims | None = None,
        client_document_policy: DocumentPolicy | None = None,
        federation_policy: FederationPolicy | None = None,
        instruments: Instruments | None = None,
    ) -> None:
        #: Where metrics and traces go (``asgi_oauth.observability``); none by default.
        self.instruments = instruments or Instruments()
        self.storage = storage = instrumented(storage, self.instruments)
        self.settings = settings
        self._clock = clock
        self.keys: KeySet | None = None
        if settings.key_encryption_key is not None:
            self.keys = KeySet(storage, KeyEncryption(settings.key_encryption_key), clock=clock)
        self.throttle = Throttle(settings.max_failed_attempts, settings.failed_attempts_window)
        self.guesses = SharedThrottle(
            storage, settings.max_failed_attempts, settings.failed_attempts_window, clock=clock
        )
        # RFC 9449 §8: nonces every instance sharing ``secret_key`` accepts.
        nonce_secret = hashlib.sha256(
            b"asgi_oauth dpop nonce\x00" + (settings.secret_key or generate_token()).encode()
        ).digest()
        self.dpop_nonces = DPoPNonces(nonce_secret, clock=clock)
        self._revoked = RevocationListeners()
        if self.instruments.metrics is not None:
            self._revoked.add(self.instruments.metrics.revoked)
        self.housekeeping = Housekeeping(storage, settings.purge_interval, clock)
        #: How a request's client_id becomes a client: the store, or a metadata document.
        self.clients = ClientLookup(
            storage,
            ClientDocuments(settings, policy=client_document_policy, instruments=instruments)
            if settings.client_id_metadata_documents
            else None,
        )
        self.federation = Federation(
            storage, settings, policy=federation_policy, clock=clock, instruments=instruments
        )
        federated = self.federation.claims if settings.upstream_providers else None
        self.openid = OpenIDProvider(
            storage, settings, self.keys, clock, user_claims, federated_claims=federated
        )
        ctx = GrantContext(
            storage,
            settings,
            self.throttle,
            self.guesses,
            clock,
            self._revoked,
            keys=self.keys,
            id_token=self.openid.id_token if self.keys is not None else None,
        )
        grants: tuple[Grant, ...] = (
            AuthorizationCodeGrant(ctx),
            ClientCredentialsGrant(ctx),
            RefreshTokenGrant(ctx),
            PasswordGrant(ctx),
            DeviceCodeGrant(ctx),
        )
        enabled: dict[str, Grant] = {
            g.grant_type: g for g in grants if g.grant_type in settings.enabled_grants
        }
        proofs = DPoPProofs(storage, settings, self.dpop_nonces, clock)
        self.rate_limits = limits = RateLimits.of(storage, settings, clock)
        self.token_endpoint = TokenEndpoint(
            self.clients, self.throttle, enabled, proofs, self.keys, limits, self.housekeeping.tick
        )
        self.introspection = Introspection(
            storage, self.clients, settings, self.throttle, self.keys, clock, limits
        )
        self.revocation = Revocation(
            storage, self.clients, self.throttle, self.keys, clock, self._revoked
        )
        self.pushed = PushedAuthorization(
            storage, self.clients, settings, self.throttle, proofs, clock, limits
        )
        self.authorization = AuthorizationEndpoint(ctx, self.clients, self.pushed, self.openid)
        self.device = DeviceAuthorizationEndpoint(
            storage, self.clients, settings, self.throttle, self.guesses, clock, limits
        )
        self.accounts = Accounts(storage, settings, self.guesses, clock)
        #: Signing out at a client's request (OpenID Connect RP-Initiated Logout 1.0), and
        #: telling clients over the back channel when OpenID Connect is on.
        self.end_session = EndSession(
            self.clients,
            settings,
            self.keys,
            clock,
            None if self.keys is None else BackchannelLogout(storage, settings, self.keys, clock),
        )
        #: The clients each person approved, and withdrawing one (``/account``).
        self.connected_apps = ConnectedApps(storage, self.clients, clock, self._revoked)
        #: Dynamic client registration (RFC 7591, RFC 7592), when Settings allow it.
        self.registrar = Registrar(storage, settings, clock, revoked=self._revoked, limits=limits)
        #: The maintenance switch the app's endpoints follow (``asgi_oauth.availability``).
        self.availability = Availability(storage, settings, clock=clock)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        instruments: Instruments | None = None,
    ) -> AuthorizationServer:
        """A server on the store ``settings.database_url`` names (``./asgi_oauth.db`` if none),
        so the same code runs on SQLite or PostgreSQL: ``from_settings(Settings.from_env())``."""
        storage = open_storage(settings.database_url or DEFAULT_DATABASE_URL)
        return cls(storage, settings, clock=clock, instruments=instruments)

    # -- the endpoints (each method is its endpoint object's) ----------------

    async def token(self, request: OAuthRequest) -> TokenResponse:
        """The token endpoint (RFC 6749 §3.2)."""
        return await self.token_endpoint.handle(request)

    async def introspect(self, request: OAuthRequest) -> IntrospectionResult:
        """The introspection endpoint (RFC 7662 §2)."""
        return await self.introspection.introspect(request)

    async def introspect_token(self, token_value: str) -> IntrospectionResult:
        """What ``introspect`` tells a resource server: for in-process middleware."""
        return await self.introspection.introspect_token(token_value)

    async def revoke(self, request: OAuthRequest) -> None:
        """The revocation endpoint (RFC 7009 §2.1)."""
        await self.revocation.revoke(request)

    async def pushed_authorization_request(self, request: OAuthRequest) -> dict[str, object]:
        """The pushed authorization request endpoint (RFC 9126 §2)."""
        return await self.pushed.push(request)

    def metadata(self) -> dict[str, object]:
        """Authorization server metadata (RFC 8414 §2): what is enabled, URLs from the issuer."""
        return server_metadata(self.settings)

    def openid_configuration(self) -> dict[str, object]:
        """OpenID Connect Discovery 1.0 §3 (404 without OpenID Connect)."""
        return openid_configuration(self.settings)

    async def jwks(self) -> Mapping[str, object]:
        """The JWK Set of every published signing key (RFC 7517 §5)."""
        return await self.openid.jwks()

    async def userinfo(self, subject: str, scope: frozenset[str]) -> dict[str, object]:
        """The UserInfo response (OpenID Connect Core §5.3.2)."""
        return await self.openid.userinfo(subject, scope)

    async def rotate_signing_keys(
        self, algorithms: Iterable[SigningAlgorithm] | None = None
    ) -> list[SigningKey]:
        """Replace the signing keys; the old ones stay published until every ID token
        and JWT access token they signed has expired."""
        return await self.openid.rotate_signing_keys(algorithms)

    async def authorization_request(
        self, params: Mapping[str, str], repeated: frozenset[str] = frozenset()
    ) -> AuthorizationRequest:
        """Validate an authorization request (see ``authorization`` for what it raises)."""
        return await self.authorization.request(params, repeated)

    async def needs_consent(self, request: AuthorizationRequest, owner: ResourceOwner) -> bool:
        """Whether to ask the user: ``prompt=consent``, or scopes not granted before."""
        return await self.authorization.needs_consent(request, owner)

    async def authorize(
        self, request: AuthorizationRequest, owner: ResourceOwner, *, remember: bool = False
    ) -> AuthorizationResponse:
        """The user approved: issue what the response type asks for (RFC 6749 §4.1.2)."""
        return await self.authorization.authorize(request, owner, remember=remember)

    def authorization_failed(
        self, request: AuthorizationRequest, error: OAuth2Error
    ) -> AuthorizationResponse:
        """An error response for a valid request: the user denied, or could not be asked."""
        return self.authorization.failed(request, error)

    async def device_authorization(self, request: OAuthRequest) -> dict[str, object]:
        """The device authorization endpoint (RFC 8628 §3.1, §3.2)."""
        return await self.device.start(request)

    async def find_device_authorization(
        self, user_code: str, request: OAuthRequest
    ) -> tuple[DeviceAuthorization, Client]:
        """The pending request a person's typed user code names (RFC 8628 §3.3)."""
        return await self.device.find(user_code, request)

    async def decide_device_authorization(
        self, device: DeviceAuthorization, owner: ResourceOwner, *, approved: bool
    ) -> None:
        """Record the user's decision; the device learns it at its next poll (§3.5)."""
        await self.device.decide(device, owner, approved=approved)

    # -- maintenance ---------------------------------------------------------

    @property
    def available(self) -> bool:
        """Whether the app's endpoints answer: the setting, this process's switch and the
        store's all on (``asgi_oauth.availability``). Setting it switches this process
        alone, at once; the store's switch, if off, still keeps it unavailable."""
        return self.availability.available

    @available.setter
    def available(self, value: bool) -> None:
        self.availability.local = value

    async def set_available(self, available: bool) -> None:
        """Switch every process and instance sharing the store (``asgi-oauth maintenance``);
        the others follow within ``availability.REFRESH_INTERVAL`` seconds."""
        await self.availability.set_shared(available)

    # -- housekeeping --------------------------------------------------------

    def add_revocation_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever this server revokes tokens (caches forget at once)."""
        self._revoked.add(listener)

    async def purge_expired(self) -> int:
        """Delete expired codes and tokens; returns how many went."""
        return await self.housekeeping.purge_expired()

    async def close(self) -> None:
        await self.housekeeping.close()
        if self.end_session.backchannel is not None:
            await self.end_session.backchannel.aclose()
        await self.federation.aclose()
        if self.clients.documents is not None:
            await self.clients.documents.aclose()
        await self.storage.close()

    def now(self) -> int:
        """The server clock, in whole seconds."""
        return int(self._clock())

    @property
    def clock(self) -> Callable[[], float]:
        """The server's clock, for what judges its tokens elsewhere in the process."""
        return self._clock
