"""The authorization server: framework-free async operations behind every endpoint.

The ASGI app turns HTTP into ``OAuthRequest`` objects and calls these methods;
the middleware calls ``introspect_token`` in-process. Every failure the client
may see is an ``OAuth2Error``; a failing store becomes ``temporarily_unavailable``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Final
from urllib.parse import urlencode

from .authorization import (
    AuthorizationRedirectError,
    AuthorizationRequest,
    AuthorizationResponse,
    authorization_error,
    validate_authorization_request,
)
from .client_auth import authenticate_client
from .clients import RegisteredClient, new_client
from .config import Settings
from .crypto import generate_token, hash_password, hash_token, time_ordered_token
from .device import generate_user_code, hash_user_code, normalize_user_code
from .dpop import DPoPNonces, replay_key, verify_dpop_proof
from .errors import (
    AccessDeniedError,
    InvalidDPoPProofError,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Error,
    StorageError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from .errors import storage_guard as _storage_guard
from .events import security_event
from .grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    DeviceCodeGrant,
    Grant,
    GrantContext,
    PasswordGrant,
    RefreshTokenGrant,
)
from .grants.base import DPoPBinding, TokenSet, mint_tokens, new_family_id
from .jwt_access_tokens import JWT_ACCESS_TOKEN_TYPE, jti_key, looks_like_jwt
from .keys import InvalidJWTError, KeyEncryption, KeySet
from .models import (
    INACTIVE,
    AuthorizationCode,
    BrowserSession,
    Client,
    DeviceAuthorization,
    IntrospectionResult,
    PushedAuthorizationRequest,
    ResourceOwner,
    SigningKey,
    Token,
    TokenResponse,
    User,
)
from .openid import (
    Authentication,
    UserClaims,
    allowed_claims,
    id_token_claims,
    id_token_hint_subject,
)
from .registration import REGISTRATION_PATH, Registrar
from .requests import OAuthRequest
from .resources import requested_resources
from .scopes import narrow_scope, parse_scope
from .storage.base import Storage
from .storage.urls import DEFAULT_DATABASE_URL, open_storage
from .throttle import SharedThrottle, Throttle
from .types import (
    DEVICE_CODE,
    DPOP_SIGNING_ALGORITHMS,
    GRANT_TYPES,
    RESPONSE_MODES,
    SIGNING_ALGORITHMS,
    AccessTokenFormat,
    CodeChallengeMethod,
    GrantType,
    SigningAlgorithm,
)
from .users import authenticate_user

logger = logging.getLogger("asgi_oauth")

#: Endpoint paths below the issuer; the ASGI app routes these same paths.
AUTHORIZATION_PATH: Final = "/authorize"
TOKEN_PATH: Final = "/token"
INTROSPECTION_PATH: Final = "/introspect"
REVOCATION_PATH: Final = "/revoke"
METADATA_PATH: Final = "/.well-known/oauth-authorization-server"
DEVICE_AUTHORIZATION_PATH: Final = "/device_authorization"
#: RFC 7591 §3 and RFC 7592 §2: registration, and each client's configuration below it.
#: The pages people see: signing in, and typing a device's user code (RFC 8628 §3.3).
LOGIN_PATH: Final = "/login"
LOGOUT_PATH: Final = "/logout"
DEVICE_VERIFICATION_PATH: Final = "/device"
#: OpenID Connect: discovery (Discovery 1.0 §4, appended to the issuer), keys, userinfo.
OPENID_CONFIGURATION_PATH: Final = "/.well-known/openid-configuration"
JWKS_PATH: Final = "/jwks"
USERINFO_PATH: Final = "/userinfo"
#: RFC 9126 §5: where authorization requests are pushed.
PUSHED_AUTHORIZATION_REQUEST_PATH: Final = "/par"
#: RFC 9126 §2.2: the form of the request_uri values /par hands out.
REQUEST_URI_PREFIX: Final = "urn:ietf:params:oauth:request_uri:"


class AuthorizationServer:
    """Issues, introspects and revokes tokens on a ``Storage`` under ``Settings``.

    With ``Settings.key_encryption_key`` it is an OpenID Connect provider too;
    ``user_claims`` then says what ID tokens and userinfo tell of a user beyond
    ``sub`` (by default ``preferred_username``, with the ``profile`` scope).
    """

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        user_claims: UserClaims | None = None,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.keys: KeySet | None = None
        if settings.key_encryption_key is not None:
            self.keys = KeySet(storage, KeyEncryption(settings.key_encryption_key), clock=clock)
        self._user_claims = user_claims or self._stored_user_claims
        self.throttle = Throttle(settings.max_failed_attempts, settings.failed_attempts_window)
        self.guesses = SharedThrottle(
            storage, settings.max_failed_attempts, settings.failed_attempts_window, clock=clock
        )
        self._clock = clock
        # RFC 9449 §8: nonces every instance sharing ``secret_key`` accepts.
        nonce_secret = hashlib.sha256(
            b"asgi_oauth dpop nonce\x00" + (settings.secret_key or generate_token()).encode()
        ).digest()
        self.dpop_nonces = DPoPNonces(nonce_secret, clock=clock)
        self._revocation_listeners: list[Callable[[], None]] = []
        ctx = GrantContext(
            storage,
            settings,
            self.throttle,
            self.guesses,
            clock,
            self._notify_revoked,
            keys=self.keys,
            id_token=self._id_token if self.keys is not None else None,
        )
        self._ctx = ctx
        #: Dynamic client registration (RFC 7591, RFC 7592), when Settings allow it.
        self.registrar = Registrar(storage, settings, clock, revoked=self._notify_revoked)
        grants: tuple[Grant, ...] = (
            AuthorizationCodeGrant(ctx),
            ClientCredentialsGrant(ctx),
            RefreshTokenGrant(ctx),
            PasswordGrant(ctx),
            DeviceCodeGrant(ctx),
        )
        self._grants: dict[str, Grant] = {
            g.grant_type: g for g in grants if g.grant_type in settings.enabled_grants
        }
        self._next_purge = int(clock()) + settings.purge_interval
        self._purge_task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> AuthorizationServer:
        """A server on the store ``settings.database_url`` names (``./asgi_oauth.db`` if none),
        so the same code runs on SQLite or PostgreSQL: ``from_settings(Settings.from_env())``."""
        return cls(
            open_storage(settings.database_url or DEFAULT_DATABASE_URL), settings, clock=clock
        )

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
            jkt = await self._dpop_key(request, client, TOKEN_PATH)
            if self.keys is not None:
                await self.keys.ready()
            response = await grant.issue(request, client, DPoPBinding(jkt, client.is_public))
        security_event(
            "token_issued",
            client_id=client.client_id,
            grant_type=grant.grant_type,
            scope=response.scope,
            refresh_token=response.refresh_token is not None,
            dpop=True if jkt is not None else None,
        )
        self._maybe_purge()
        return response

    async def _dpop_key(
        self, request: OAuthRequest, client: Client, path: str, *, token_request: bool = True
    ) -> str | None:
        """The thumbprint of the key a request's DPoP proof shows possession of (RFC 9449 §5).

        Each proof is good once, across instances: its ``jti`` is kept in the store
        for as long as its ``iat`` would pass (§11.1).
        """
        if request.dpop is None:
            if client.dpop_bound_access_tokens and token_request:
                # RFC 9449 §5.2: this client's token requests always carry a proof.
                raise InvalidDPoPProofError("this client must send a DPoP proof")
            return None
        settings, now = self.settings, self.now()
        proof = verify_dpop_proof(
            request.dpop,
            method="POST",
            url=settings.issuer + path,
            now=now,
            leeway=settings.clock_skew,
            nonces=self.dpop_nonces if settings.dpop_nonce_required else None,
        )
        expires_at = proof.iat + settings.clock_skew + 1
        if not await self.storage.use_once(
            f"dpop:{replay_key(proof)}", expires_at=expires_at, now=now
        ):
            raise InvalidDPoPProofError("this DPoP proof was used before")
        return proof.jkt

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
            token = await self._find_token(token_value)
        if token is None or not (caller.is_resource_server or token.client_id == caller.client_id):
            return INACTIVE
        return self._describe(token)

    async def introspect_token(self, token_value: str) -> IntrospectionResult:
        """What ``introspect`` tells a resource server: for in-process middleware."""
        with _storage_guard:
            token = await self._find_token(token_value)
        return INACTIVE if token is None else self._describe(token)

    async def _find_token(self, token_value: str) -> Token | None:
        """The stored token ``token_value`` is; a JWT access token by its ``jti`` once
        its signature checks out (see ``jwt_access_tokens``)."""
        if self.keys is None or not looks_like_jwt(token_value):
            return await self.storage.get_token(hash_token(token_value))
        try:
            header, claims = await self.keys.verify_fresh(token_value)
        except InvalidJWTError:
            return None
        key = jti_key(claims)
        if header.get("typ") != JWT_ACCESS_TOKEN_TYPE or key is None:
            return None
        return await self.storage.get_token(key)

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
            token = await self._find_token(token_value)
            if token is None or token.client_id != client.client_id:
                return
            now = self.now()
            if token.kind == "refresh_token":
                # §2.1: revoking a refresh token SHOULD revoke the access tokens of its grant.
                await self.storage.revoke_family(token.family_id, now=now)
            else:
                await self.storage.revoke_token(token.token_hash, now=now)
        security_event("token_revoked", client_id=client.client_id, token_kind=token.kind)
        self._notify_revoked()

    async def pushed_authorization_request(self, request: OAuthRequest) -> dict[str, object]:
        """The pushed authorization request endpoint (RFC 9126 §2): check the request
        as ``/authorize`` would, keep it, and hand out a ``request_uri`` for it."""
        with _storage_guard:
            client = await authenticate_client(
                request, self.storage, self.throttle, allow_public=True
            )
            # §2.1: client authentication parameters are not part of the request.
            params = {k: v for k, v in request.form.items() if k != "client_secret"}
            if "request_uri" in params:
                raise InvalidRequestError("request_uri must not be pushed (RFC 9126 §2.1)")
            params["client_id"] = client.client_id
            jkt = await self._dpop_key(
                request, client, PUSHED_AUTHORIZATION_REQUEST_PATH, token_request=False
            )
            # RFC 9449 §10.1: a proof here binds the code, as dpop_jkt would.
            if jkt is not None and params.setdefault("dpop_jkt", jkt) != jkt:
                raise InvalidDPoPProofError("dpop_jkt is not the DPoP proof's key")
            try:
                validate_authorization_request(
                    params, frozenset(), client, self.settings, pushed=True
                )
            except AuthorizationRedirectError as exc:
                # §2.3: errors go back in the response, not to the redirect URI.
                raise exc.error from None
            request_uri = REQUEST_URI_PREFIX + generate_token()
            now, lifetime = self.now(), self.settings.pushed_authorization_request_lifetime
            await self.storage.save_pushed_authorization_request(
                PushedAuthorizationRequest(
                    request_uri_hash=hash_token(request_uri),
                    client_id=client.client_id,
                    params=params,
                    issued_at=now,
                    expires_at=now + lifetime,
                )
            )
        security_event("authorization_request_pushed", client_id=client.client_id)
        return {"request_uri": request_uri, "expires_in": lifetime}

    def metadata(self) -> dict[str, object]:
        """Authorization server metadata (RFC 8414 §2): what is enabled, URLs from the issuer."""
        settings = self.settings
        issuer = settings.issuer
        enabled = [g for g in GRANT_TYPES if g in settings.enabled_grants]
        client_auth = ["client_secret_basic", "client_secret_post"]
        metadata: dict[str, object] = {"issuer": issuer}
        if settings.response_types:
            metadata["authorization_endpoint"] = issuer + AUTHORIZATION_PATH
        metadata["token_endpoint"] = issuer + TOKEN_PATH
        if DEVICE_CODE in settings.enabled_grants:
            metadata["device_authorization_endpoint"] = issuer + DEVICE_AUTHORIZATION_PATH
        if settings.client_registration != "off":
            metadata["registration_endpoint"] = issuer + REGISTRATION_PATH
        metadata.update(
            {
                "introspection_endpoint": issuer + INTROSPECTION_PATH,
                "revocation_endpoint": issuer + REVOCATION_PATH,
                "grant_types_supported": enabled,
                "response_types_supported": list(settings.response_types),
                "response_modes_supported": list(RESPONSE_MODES),
                "token_endpoint_auth_methods_supported": [*client_auth, "none"],
                "introspection_endpoint_auth_methods_supported": client_auth,
                "revocation_endpoint_auth_methods_supported": [*client_auth, "none"],
                "code_challenge_methods_supported": (
                    ["S256", "plain"] if settings.allow_plain_pkce else ["S256"]
                ),
                # RFC 9207 §3: every authorization response carries ``iss``.
                "authorization_response_iss_parameter_supported": True,
                "dpop_signing_alg_values_supported": list(DPOP_SIGNING_ALGORITHMS),
            }
        )
        if settings.response_types:
            metadata["pushed_authorization_request_endpoint"] = (
                issuer + PUSHED_AUTHORIZATION_REQUEST_PATH
            )
            metadata["require_pushed_authorization_requests"] = (
                settings.require_pushed_authorization_requests
            )
        scopes = list(settings.scopes_supported)
        if settings.openid_enabled:
            scopes = ["openid", *(s for s in scopes if s != "openid")]
            metadata.update(
                {
                    "jwks_uri": issuer + JWKS_PATH,
                    "userinfo_endpoint": issuer + USERINFO_PATH,
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": list(SIGNING_ALGORITHMS),
                    "claims_parameter_supported": False,
                    "request_parameter_supported": False,
                    # Discovery §3: the default is true, so say no: a request_uri
                    # can only come from /par (RFC 9126), advertised on its own.
                    "request_uri_parameter_supported": False,
                }
            )
        if scopes:
            metadata["scopes_supported"] = scopes
        return metadata

    def openid_configuration(self) -> dict[str, object]:
        """OpenID Connect Discovery 1.0 §3: the RFC 8414 metadata, which carries it all."""
        if not self.settings.openid_enabled:
            raise InvalidRequestError("no such endpoint", status_code=404)
        return self.metadata()

    async def jwks(self) -> Mapping[str, object]:
        """The JWK Set of every published signing key (RFC 7517 §5)."""
        keys = self._require_keys()
        with _storage_guard:
            await keys.ready()
        return keys.jwks()

    async def userinfo(self, subject: str, scope: frozenset[str]) -> dict[str, object]:
        """The UserInfo response (OpenID Connect Core §5.3.2): what ``scope`` lets a
        client learn of the user a valid token with ``openid`` was issued for."""
        self._require_keys()
        claims = allowed_claims(await self._user_claims(subject, scope), scope)
        return {**claims, "sub": subject}

    async def rotate_signing_keys(
        self, algorithms: Iterable[SigningAlgorithm] | None = None
    ) -> list[SigningKey]:
        """Replace the signing keys; the old ones stay published until every ID token
        and JWT access token they signed has expired."""
        settings = self.settings
        keep = max(settings.id_token_lifetime, settings.access_token_lifetime) + settings.clock_skew
        rotated = await self._require_keys().rotate(keep_published=keep, algorithms=algorithms)
        security_event("signing_keys_rotated", kids=" ".join(k.kid for k in rotated))
        return rotated

    def _require_keys(self) -> KeySet:
        if self.keys is None:
            raise InvalidRequestError("no such endpoint", status_code=404)
        return self.keys

    async def _id_token(
        self,
        client: Client,
        authentication: Authentication,
        scope: frozenset[str],
        *,
        access_token: str | None = None,
        code: str | None = None,
        with_user_claims: bool = True,
    ) -> str:
        keys = self._require_keys()
        user_claims = None
        if with_user_claims:
            user_claims = allowed_claims(
                await self._user_claims(authentication.subject, scope), scope
            )
        claims = id_token_claims(
            issuer=self.settings.issuer,
            client=client,
            authentication=authentication,
            now=self.now(),
            lifetime=self.settings.id_token_lifetime,
            user_claims=user_claims,
            access_token=access_token,
            code=code,
        )
        return keys.sign(claims, alg=client.id_token_signed_response_alg, typ="JWT")

    async def _stored_user_claims(
        self, subject: str, scope: frozenset[str]
    ) -> Mapping[str, object]:
        """What the store knows of a user: their username, for the ``profile`` scope."""
        if "profile" not in scope:
            return {}
        with _storage_guard:
            user = await self.storage.get_user_by_id(subject)
        return {"preferred_username": user.username} if user is not None else {}

    # -- the authorization endpoint (RFC 6749 §3.1) --------------------------

    async def authorization_request(
        self, params: Mapping[str, str], repeated: frozenset[str] = frozenset()
    ) -> AuthorizationRequest:
        """Validate an authorization request (see ``authorization`` for what it raises)."""
        client = None
        client_id = params.get("client_id")
        if client_id is not None and "client_id" not in repeated:
            with _storage_guard:
                client = await self.storage.get_client(client_id)
        request_uri = params.get("request_uri", "")
        if client is not None and request_uri.startswith(REQUEST_URI_PREFIX):
            if "request_uri" in repeated:
                raise InvalidRequestError("repeated parameter: request_uri")
            request = await self._pushed_request(client, request_uri)
        else:
            request = validate_authorization_request(params, repeated, client, self.settings)
        if request.id_token_hint is not None:
            request = replace(request, hint_subject=await self._hint_subject(request))
        return request

    async def _pushed_request(self, client: Client, request_uri: str) -> AuthorizationRequest:
        """The request pushed to ``/par`` that ``request_uri`` names (RFC 9126 §4).

        Only its pushed parameters count. It must be this client's, unexpired and
        unused; otherwise the person is told, and nothing goes to a redirect URI
        the pushed request never vouched for.
        """
        key = hash_token(request_uri)
        with _storage_guard:
            pushed = await self.storage.get_pushed_authorization_request(key)
        if (
            pushed is None
            or pushed.client_id != client.client_id
            or pushed.consumed_at is not None
            or pushed.expires_at <= self.now()
        ):
            raise InvalidRequestError("request_uri is unknown, expired or already used")
        request = validate_authorization_request(
            pushed.params, frozenset(), client, self.settings, pushed=True
        )
        # Pages send back these two, not the pushed parameters, with the decision.
        own = {"client_id": client.client_id, "request_uri": request_uri}
        return replace(request, params=own, request_uri_hash=key, pushed_at=pushed.issued_at)

    async def _hint_subject(self, request: AuthorizationRequest) -> str:
        """Who ``id_token_hint`` names: an unexpired ID token we issued to this client."""
        settings = self.settings
        hint = request.id_token_hint or ""
        try:
            if self.keys is None:
                raise InvalidJWTError("OpenID Connect is off here")
            with _storage_guard:
                return await id_token_hint_subject(
                    self.keys,
                    hint,
                    issuer=settings.issuer,
                    client_id=request.client.client_id,
                    now=self.now(),
                    leeway=settings.clock_skew,
                )
        except InvalidJWTError as exc:
            raise authorization_error(
                InvalidRequestError(f"id_token_hint is not valid: {str(exc)[:64]}"),
                redirect_uri=request.redirect_uri,
                response_mode=request.response_mode,
                state=request.state,
                issuer=settings.issuer,
            ) from None

    async def needs_consent(self, request: AuthorizationRequest, owner: ResourceOwner) -> bool:
        """Whether to ask the user: ``prompt=consent``, or scopes not granted before."""
        if "consent" in request.prompt:
            return True
        if request.client.is_public and not request.redirect_uri.startswith("https://"):
            # RFC 8252 §8.6: a loopback or private-use redirect URI cannot prove which
            # app is asking, so a native app's request is never approved unasked.
            return True
        with _storage_guard:
            granted = await self.storage.get_consent(owner.subject, request.client.client_id)
        return granted is None or not request.scope <= granted

    async def authorize(
        self, request: AuthorizationRequest, owner: ResourceOwner, *, remember: bool = False
    ) -> AuthorizationResponse:
        """The user approved: issue what the response type asks for (§4.1.2, §4.2.2).

        ``remember`` keeps the consent, so the same scopes are not asked again.
        """
        client = request.client
        params: dict[str, str] = {}
        with _storage_guard:
            if remember:
                granted = await self.storage.get_consent(owner.subject, client.client_id)
                await self.storage.save_consent(
                    owner.subject, client.client_id, request.scope | (granted or frozenset())
                )
            returns = request.returns
            if self.keys is not None:
                await self.keys.ready()
            if request.request_uri_hash is not None and not (
                await self.storage.consume_pushed_authorization_request(
                    request.request_uri_hash, now=self.now()
                )
            ):
                # RFC 9126 §4: one pushed request, one authorization response.
                raise InvalidRequestError("request_uri is unknown, expired or already used")
            if "code" in returns:
                params["code"] = await self._issue_code(request, owner)
            if "token" in returns:
                params.update(await self._issue_implicit(request, owner.subject))
            if "id_token" in returns:
                authentication = Authentication(
                    owner.subject, owner.auth_time, owner.acr, owner.amr, request.nonce
                )
                params["id_token"] = await self._id_token(
                    client,
                    authentication,
                    request.scope,
                    access_token=params.get("access_token"),
                    code=params.get("code"),
                    # Core §5.4: a front-channel ID token carries user claims only
                    # when no access token can fetch them from userinfo. (The token
                    # endpoint's, sent to the client directly, always carries them.)
                    with_user_claims=request.response_type == "id_token",
                )
        security_event(
            "authorization_granted",
            client_id=client.client_id,
            sub=owner.subject,
            scope=request.scope,
            response_type=request.response_type,
        )
        if request.state is not None:
            params["state"] = request.state
        params["iss"] = self.settings.issuer
        return AuthorizationResponse(request.redirect_uri, request.response_mode, params)

    def authorization_failed(
        self, request: AuthorizationRequest, error: OAuth2Error
    ) -> AuthorizationResponse:
        """An error response for a valid request: the user denied, or could not be asked."""
        if isinstance(error, AccessDeniedError):
            security_event("consent_denied", client_id=request.client.client_id)
        elif error.status != 503:
            security_event(
                "authorization_refused", client_id=request.client.client_id, error=error.error
            )
        return authorization_error(
            error,
            redirect_uri=request.redirect_uri,
            response_mode=request.response_mode,
            state=request.state,
            issuer=self.settings.issuer,
        ).response

    async def _issue_code(self, request: AuthorizationRequest, owner: ResourceOwner) -> str:
        code = time_ordered_token()
        now = self.now()
        await self.storage.save_authorization_code(
            AuthorizationCode(
                code_hash=hash_token(code),
                client_id=request.client.client_id,
                subject=owner.subject,
                scope=request.scope,
                # §4.1.3: the token request repeats it only if the authorization request had it.
                redirect_uri=request.redirect_uri if request.redirect_uri_given else None,
                family_id=new_family_id(),
                issued_at=now,
                expires_at=now + self.settings.authorization_code_lifetime,
                code_challenge=request.code_challenge,
                code_challenge_method=request.code_challenge_method,
                nonce=request.nonce,
                auth_time=owner.auth_time,
                acr=owner.acr,
                amr=owner.amr,
                resource=request.resource,
                dpop_jkt=request.dpop_jkt,
            )
        )
        return code

    async def _issue_implicit(self, request: AuthorizationRequest, subject: str) -> dict[str, str]:
        # §4.2.2: an access token only, never a refresh token.
        tokens: TokenSet = mint_tokens(
            self._ctx,
            request.client,
            scope=request.scope,
            subject=subject,
            family_id=new_family_id(),
            with_refresh=False,
            resource=request.resource,
        )
        await self.storage.save_tokens(tokens.rows)
        return {k: str(v) for k, v in tokens.response.to_dict().items()}

    # -- the device authorization grant (RFC 8628) ---------------------------

    async def device_authorization(self, request: OAuthRequest) -> dict[str, object]:
        """The device authorization endpoint (RFC 8628 §3.1, §3.2)."""
        if DEVICE_CODE not in self.settings.enabled_grants:
            raise InvalidRequestError("no such endpoint", status_code=404)
        with _storage_guard:
            client = await authenticate_client(
                request, self.storage, self.throttle, allow_public=True
            )
            if DEVICE_CODE not in client.grant_types:
                raise UnauthorizedClientError("client may not use the device grant")
            scope = narrow_scope(parse_scope(request.form.get("scope")), client.scope)
            resource = requested_resources(request.form, self.settings.resources)
            now, settings = self.now(), self.settings
            device_code = time_ordered_token()
            for attempt in range(3):
                # A short user code can collide with a live or unpurged one: draw again.
                user_code = generate_user_code()
                device = DeviceAuthorization(
                    device_code_hash=hash_token(device_code),
                    user_code_hash=hash_user_code(user_code.replace("-", "")),
                    client_id=client.client_id,
                    scope=scope,
                    family_id=new_family_id(),
                    issued_at=now,
                    expires_at=now + settings.device_code_lifetime,
                    interval=settings.device_poll_interval,
                    resource=resource,
                )
                try:
                    await self.storage.save_device_authorization(device)
                    break
                except StorageError:
                    if attempt == 2:
                        raise
        verification_uri = settings.issuer + DEVICE_VERIFICATION_PATH
        complete = f"{verification_uri}?{urlencode({'user_code': user_code})}"
        return {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": complete,
            "expires_in": settings.device_code_lifetime,
            "interval": settings.device_poll_interval,
        }

    async def find_device_authorization(
        self, user_code: str, request: OAuthRequest
    ) -> tuple[DeviceAuthorization, Client]:
        """The pending request a person's typed user code names (RFC 8628 §3.3).

        Guesses are throttled per address (§5.1): a wrong, expired or used code
        counts as a failure, and a throttled address learns nothing more.
        """
        key = request.throttle_key("user_code")
        with _storage_guard:
            attempt = await self.guesses.attempt(
                key, InvalidGrantError, "too many wrong codes; retry later"
            )
            normalized = normalize_user_code(user_code)
            device = client = None
            if normalized is not None:
                device = await self.storage.get_device_authorization(hash_user_code(normalized))
                if device is not None:
                    client = await self.storage.get_client(device.client_id)
            # Every miss counts, and a hit does not clear the count: anyone can get a
            # valid code of their own, which must not buy more guesses at others'.
            if device is None or client is None or device.status != "pending":
                raise InvalidGrantError("that code is not valid; check it and try again")
            if device.expires_at <= self.now():
                raise InvalidGrantError("that code has expired; start again on your device")
            await self.guesses.refund(key, attempt)
        return device, client

    async def decide_device_authorization(
        self, device: DeviceAuthorization, owner: ResourceOwner, *, approved: bool
    ) -> None:
        """Record the user's decision; the device learns it at its next poll (§3.5)."""
        with _storage_guard:
            decided = await self.storage.decide_device_authorization(
                device.user_code_hash, subject=owner.subject, approved=approved, now=self.now()
            )
        if not decided:
            raise InvalidGrantError("that code was already used or has expired")
        security_event(
            "device_authorization_granted" if approved else "device_authorization_denied",
            client_id=device.client_id,
            sub=owner.subject,
            scope=device.scope,
        )

    async def open_session(self, user: User) -> tuple[str, int]:
        """Record a sign-in on the built-in page: the session id its cookie carries (the
        store keeps only its hash) and the time of the sign-in."""
        session_id, now = time_ordered_token(), self.now()
        session = BrowserSession(
            session_hash=hash_token(session_id),
            user_id=user.user_id,
            auth_time=now,
            expires_at=now + self.settings.session_lifetime,
        )
        with _storage_guard:
            await self.storage.save_session(session)
        return session_id, now

    async def session_user(self, session_id: str) -> User | None:
        """The user of a live sign-in session; None once it was ended (signed out, the
        user deleted) or expired."""
        with _storage_guard:
            session = await self.storage.get_session(hash_token(session_id))
            if session is None or session.expires_at <= self.now():
                return None
            return await self.storage.get_user_by_id(session.user_id)

    async def close_session(self, session_id: str) -> None:
        """End a sign-in session on the server: a copy of its cookie signs in no one."""
        with _storage_guard:
            await self.storage.delete_session(hash_token(session_id))

    async def authenticate_user(self, request: OAuthRequest, username: str, password: str) -> User:
        """The user these credentials name, for a sign-in page (throttled like the grant)."""
        with _storage_guard:
            return await authenticate_user(request, self.storage, self.guesses, username, password)

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
        """Issue a code for an approved request, checked like ``/authorize`` checks it.

        For host applications with their own consent screen, and for tests.
        """
        given = {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": scope,
            "code_challenge": code_challenge,
            "code_challenge_method": code_challenge_method,
            "nonce": nonce,
        }
        params = {k: v for k, v in given.items() if v is not None}
        try:
            request = await self.authorization_request(params)
        except AuthorizationRedirectError as exc:
            raise exc.error from None
        with _storage_guard:
            return await self._issue_code(request, ResourceOwner(subject))

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
    ) -> RegisteredClient:
        """Register a client; the returned secret is never shown again.

        An explicit ``client_id`` that is already registered is refused, so a
        restarted application cannot silently replace a client and its secret.
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
        )
        if not await self.storage.add_client(registered.client):
            raise ValueError(f"client_id already registered: {registered.client.client_id!r}")
        return registered

    async def create_user(self, username: str, password: str) -> User:
        """Add a resource owner; the password is kept as an scrypt hash only.

        A username that is taken is refused (``ValueError``), never replaced: the
        user who has it keeps their password, sessions and tokens.
        """
        if not username or not password:
            raise ValueError("username and password must not be empty")
        if not username.isprintable() or username != username.strip():
            raise ValueError("the username must be printable, without blanks around it")
        password_hash = await asyncio.to_thread(hash_password, password)
        user = User(
            user_id=generate_token(16),
            username=username,
            password_hash=password_hash,
            created_at=self.now(),
        )
        if not await self.storage.add_user(user):
            raise ValueError(f"username already taken: {username!r}")
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
        return await self.storage.purge_expired(now=self.now())

    async def close(self) -> None:
        if self._purge_task is not None:
            await asyncio.gather(self._purge_task, return_exceptions=True)
        await self.storage.close()

    def now(self) -> int:
        """The server clock, in whole seconds."""
        return int(self._clock())

    @property
    def clock(self) -> Callable[[], float]:
        """The server's clock, for what judges its tokens elsewhere in the process."""
        return self._clock

    def _describe(self, token: Token) -> IntrospectionResult:
        if not token.is_active(self.now()):
            return INACTIVE
        if token.kind == "refresh_token":
            token_type = "refresh_token"
        else:
            token_type = "Bearer" if token.jkt is None else "DPoP"
        return IntrospectionResult(
            active=True,
            scope=token.scope,
            client_id=token.client_id,
            token_type=token_type,
            exp=token.expires_at,
            iat=token.issued_at,
            iss=self.settings.issuer,
            sub=token.subject,
            aud=token.audience,
            jkt=token.jkt,
        )

    def _maybe_purge(self) -> None:
        """Purge expired rows now and then, in the background, so stores stay bounded."""
        interval = self.settings.purge_interval
        if not interval or self.now() < self._next_purge:
            return
        if self._purge_task is not None and not self._purge_task.done():
            return
        self._next_purge = self.now() + interval
        self._purge_task = asyncio.create_task(self._purge())

    async def _purge(self) -> None:
        try:
            purged = await self.purge_expired()
        except StorageError:
            logger.exception("purging expired codes and tokens failed")
        else:
            logger.info("purged expired codes and tokens count=%d", purged)
