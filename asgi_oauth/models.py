"""What the server stores: clients, users, authorization codes and tokens.

Secrets never appear here in the clear: a client secret, a code or a token is
kept only as its hash (see ``crypto``), so what a store holds is useless to a
thief.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .types import (
    AccessTokenFormat,
    ApplicationType,
    CodeChallengeMethod,
    GrantType,
    SigningAlgorithm,
    TokenKind,
)


@dataclass(frozen=True, slots=True)
class Client:
    """A registered client (RFC 6749 §2). ``secret_hash`` is None for a public client."""

    client_id: str
    secret_hash: str | None = None
    name: str = ""
    redirect_uris: tuple[str, ...] = ()
    grant_types: frozenset[GrantType] = frozenset({"authorization_code", "refresh_token"})
    #: The scopes this client may ask for; also its default when it asks for none.
    scope: frozenset[str] = frozenset()
    #: Browser origins allowed to call the token, revoke and metadata endpoints (CORS).
    allowed_origins: tuple[str, ...] = ()
    #: A resource server may introspect tokens issued to other clients (RFC 7662 §4).
    is_resource_server: bool = False
    require_pkce: bool = False
    created_at: int = 0
    #: Opaque or JWT (RFC 9068) access tokens; None follows ``Settings.access_token_format``.
    access_token_format: AccessTokenFormat | None = None
    #: How this client's ID tokens are signed (OpenID Connect Registration §2).
    id_token_signed_response_alg: SigningAlgorithm = "RS256"
    #: RFC 9126 §6: this client's authorization requests must be pushed first.
    require_pushed_authorization_requests: bool = False
    #: RFC 9449 §5.2: this client's token requests must carry a DPoP proof.
    dpop_bound_access_tokens: bool = False
    #: RFC 7592 §3: the hash of the token that reads, updates and deletes this
    #: registration; None for a client not registered dynamically.
    registration_access_token_hash: str | None = None
    #: The RFC 7591 §2 metadata a dynamically registered client gave that the
    #: server does not act on (``client_uri``, ``contacts``...), as a JSON object.
    registration_metadata: str = ""
    #: Read from a client ID metadata document at the URL ``client_id`` names, not
    #: registered here (draft-ietf-oauth-client-id-metadata-document); never stored.
    metadata_document: bool = False
    #: OpenID Connect Registration §2: which redirect URIs it may use (see
    #: ``clients.validate_redirect_uri``); None for a client registered before the
    #: field existed, held to the rules of both kinds.
    application_type: ApplicationType | None = None
    #: OpenID Connect RP-Initiated Logout 1.0 §3.1: where ``/logout`` may send the
    #: person back to, each compared exactly (see ``clients.validate_logout_uri``).
    post_logout_redirect_uris: tuple[str, ...] = ()
    #: OpenID Connect Back-Channel Logout 1.0 §2.2: where a logout token is POSTed
    #: when someone who consented to this client signs out; None: not told.
    backchannel_logout_uri: str | None = None

    @property
    def is_public(self) -> bool:
        return self.secret_hash is None


@dataclass(frozen=True, slots=True)
class User:
    """A resource owner known to the store; ``password_hash`` is an scrypt hash."""

    user_id: str
    username: str
    #: ``crypto.NO_PASSWORD`` for someone who signs in only through an upstream provider.
    password_hash: str
    created_at: int = 0


@dataclass(frozen=True, slots=True)
class FederatedIdentity:
    """A person's account at an upstream identity provider, linked to a local user.

    The link is (``issuer``, ``subject``): the provider's stable identifier for the
    person, never an e-mail address, which can change hands. ``claims`` is the JSON of
    what the provider last said about them (name, e-mail, picture); ``tokens`` the
    provider's tokens, sealed with the key-encryption key, when the provider is
    configured to keep them.
    """

    issuer: str
    subject: str
    user_id: str
    #: The configured provider's id (``UpstreamProvider.id``) it was last signed in through.
    provider: str
    claims: str = "{}"
    tokens: str | None = None
    created_at: int = 0
    updated_at: int = 0


@dataclass(frozen=True, slots=True)
class AuthorizationCode:
    """An issued authorization code (RFC 6749 §4.1.2), stored by its hash."""

    code_hash: str
    client_id: str
    subject: str
    scope: frozenset[str]
    #: The redirect_uri sent with the authorization request, or None if it was omitted.
    redirect_uri: str | None
    family_id: str
    issued_at: int
    expires_at: int
    code_challenge: str | None = None
    code_challenge_method: CodeChallengeMethod | None = None
    nonce: str | None = None
    consumed_at: int | None = None
    #: When and how the user signed in, for the ID token (OpenID Connect Core §2).
    auth_time: int | None = None
    acr: str | None = None
    amr: tuple[str, ...] = ()
    #: RFC 8707 §2.1: the resources the tokens may be for (their audience).
    resource: tuple[str, ...] = ()
    #: RFC 9449 §10: the thumbprint of the DPoP key the code must be redeemed with.
    dpop_jkt: str | None = None


#: Where a device authorization stands (RFC 8628 §3.3 to §3.5).
DeviceStatus = Literal["pending", "approved", "denied", "consumed"]


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """A device authorization request (RFC 8628 §3.2), stored by the hashes of its codes.

    ``interval`` grows by five seconds each time the device polls too fast (§3.5).
    """

    device_code_hash: str
    user_code_hash: str
    client_id: str
    scope: frozenset[str]
    family_id: str
    issued_at: int
    expires_at: int
    interval: int
    status: DeviceStatus = "pending"
    subject: str | None = None
    last_polled_at: int | None = None
    #: RFC 8707 §2: the resources the tokens may be for (their audience).
    resource: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ResourceOwner:
    """The person behind an authorization: who they are and when they signed in.

    The built-in login page makes one from a store ``User``; a host application
    with its own sessions returns one from its ``current_user`` hook.
    """

    subject: str
    name: str = ""
    #: Seconds since the epoch at sign-in, when known.
    auth_time: int | None = None
    #: How they signed in (OpenID Connect Core §2, RFC 8176): ``("pwd",)`` for a password.
    acr: str | None = None
    amr: tuple[str, ...] = ()
    #: The scopes this person may grant clients (their upstream groups'); None: any.
    #: The scopes that ask about the person (``openid``, ``profile``...) stay grantable.
    scopes: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A key that signs ID tokens and JWT access tokens, as the store keeps it.

    ``public_jwk`` is the public JWK as JSON text. ``private_jwk`` is the
    private JWK encrypted with the key-encryption key (see ``keys``), so the
    store alone cannot sign. One key per algorithm signs at a time; a rotation
    retires it, and it stays published until ``expires_at``, when every token
    it signed has expired.
    """

    kid: str
    alg: SigningAlgorithm
    public_jwk: str
    private_jwk: str
    created_at: int
    retired_at: int | None = None
    expires_at: int | None = None

    @property
    def is_active(self) -> bool:
        return self.retired_at is None


@dataclass(frozen=True, slots=True)
class Token:
    """An issued access or refresh token, stored by its hash.

    Tokens that come from one grant share a ``family_id``, so a replayed code
    or a reused refresh token can revoke everything it led to (RFC 9700 §4.14.2).
    ``parent_hash`` names the refresh token a token was rotated out of;
    ``replaced_by`` names the refresh token that rotated this one out.
    ``audience`` is an access token's ``aud`` and, on a refresh token, the
    resources its grant may still be narrowed to (RFC 8707 §2.2). ``jkt`` binds
    a token to a DPoP key (RFC 9449 §6): an access token always when the
    request had a proof, a refresh token when its client is public (§5).
    """

    token_hash: str
    kind: TokenKind
    client_id: str
    scope: frozenset[str]
    family_id: str
    issued_at: int
    expires_at: int
    subject: str | None = None
    audience: tuple[str, ...] = ()
    parent_hash: str | None = None
    replaced_by: str | None = None
    rotated_at: int | None = None
    revoked_at: int | None = None
    jkt: str | None = None
    #: On a rotated-out refresh token with a grace period: the response that rotated
    #: it out, encrypted under the token itself (``crypto.seal``), so a retry that
    #: presents the token gets the same response again and nothing else can read it.
    sealed_response: str | None = None

    def is_active(self, now: int) -> bool:
        return self.revoked_at is None and self.rotated_at is None and now < self.expires_at


@dataclass(frozen=True, slots=True)
class BrowserSession:
    """A sign-in on the built-in page, stored by the hash of the id its cookie carries,
    so signing out, a new password or deleting the user ends it on the server too."""

    session_hash: str
    user_id: str
    auth_time: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class ConnectedApp:
    """A client a person approved, as their connected applications page lists it: read
    from the consent and the tokens, so issuing a token writes nothing more."""

    client_id: str
    scope: frozenset[str]
    #: When the person last approved it; 0 for a consent kept before this was recorded.
    granted_at: int
    #: The latest ``issued_at`` of their tokens for it still in the store; None if none.
    last_used: int | None = None


@dataclass(frozen=True, slots=True)
class PushedAuthorizationRequest:
    """An authorization request pushed to ``/par`` (RFC 9126 §2), stored by the hash
    of its ``request_uri``: bound to its client, used once, short-lived."""

    request_uri_hash: str
    client_id: str
    #: The request's parameters, as the client pushed them.
    params: Mapping[str, str]
    issued_at: int
    expires_at: int
    consumed_at: int | None = None


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """A successful token response (RFC 6749 §5.1)."""

    access_token: str
    expires_in: int
    scope: frozenset[str]
    refresh_token: str | None = None
    token_type: str = "Bearer"
    #: OpenID Connect Core §3.1.3.3: when the grant had the ``openid`` scope.
    id_token: str | None = None

    def to_dict(self) -> dict[str, str | int]:
        body: dict[str, str | int] = {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
        }
        if self.scope:
            body["scope"] = " ".join(sorted(self.scope))
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        if self.id_token is not None:
            body["id_token"] = self.id_token
        return body


@dataclass(frozen=True, slots=True)
class IntrospectionResult:
    """What RFC 7662 §2.2 says about a token; ``active=False`` says nothing else."""

    active: bool
    scope: frozenset[str] = frozenset()
    client_id: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    iss: str | None = None
    sub: str | None = None
    aud: tuple[str, ...] = ()
    #: RFC 9449 §6.2: the thumbprint of the DPoP key the token is bound to.
    jkt: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        if not self.active:
            return {"active": False}
        body: dict[str, object] = {"active": True, "scope": " ".join(sorted(self.scope))}
        for name in ("client_id", "token_type", "exp", "iat", "iss", "sub"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.aud:
            body["aud"] = self.aud[0] if len(self.aud) == 1 else list(self.aud)
        if self.jkt is not None:
            body["cnf"] = {"jkt": self.jkt}
        body.update(self.extra)
        return body


INACTIVE = IntrospectionResult(active=False)
