"""Server settings: one frozen object, passed explicitly, validated on creation
(``setting_checks``: a refused setting raises ``SettingsError``, naming it)."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, get_type_hints
from urllib.parse import urlsplit

from .clients import validate_origin
from .resources import is_resource_indicator
from .setting_checks import SettingsError, SettingsTypeError, checked, parse_env
from .types import (
    DEVICE_CODE,
    AccessTokenFormat,
    ClientRegistration,
    GrantType,
    ResponseType,
    SigningAlgorithm,
)

if TYPE_CHECKING:
    from .federation.providers import UpstreamProvider

__all__ = ["Settings", "SettingsError", "SettingsTypeError"]


@dataclass(frozen=True, slots=True)
class Settings:
    """How the authorization server behaves.

    ``issuer`` is the URL the server is reached at, including the path it is
    mounted at (``https://api.example.com/oauth2``); every URL the server
    publishes is built from it, never from a request's Host header (RFC 8414 §2).

    Each value is checked against its annotation when the settings are made: one of
    the wrong type or out of range raises ``SettingsError``, naming the setting. A
    list given for a tuple or frozenset is made one; one string is never split.
    """

    issuer: str
    #: Where the store lives (``sqlite:///path``, ``postgresql://...``): see
    #: ``AuthorizationServer.from_settings``. None means ``DEFAULT_DATABASE_URL``.
    database_url: str | None = None
    access_token_lifetime: int = 3600
    refresh_token_lifetime: int = 30 * 24 * 3600
    authorization_code_lifetime: int = 60
    #: RFC 9700 §2.1.2 wants https everywhere; this allows http for local development.
    insecure_transport: bool = False
    #: Legacy grants stay off until enabled: RFC 9700 §2.4 forbids the password
    #: grant and §2.1.2 the implicit grant (``response_type=token``).
    enabled_grants: frozenset[GrantType] = frozenset(
        {"authorization_code", "client_credentials", "refresh_token", DEVICE_CODE}
    )
    #: ``response_type=none`` (OAuth 2.0 Multiple Response Types §4): a redirect
    #: telling the client the user approved, with nothing issued.
    allow_response_type_none: bool = False
    #: RFC 7636: S256 is always accepted; ``plain`` only when this is set.
    allow_plain_pkce: bool = False
    #: PKCE is always required of public clients; this requires it of every client.
    require_pkce: bool = False
    #: RFC 9700 §4.14.2: seconds in which a rotated-out refresh token may be
    #: presented again (a client that lost the response) and get a fresh pair
    #: instead of revoking its family. 0 disables the grace period.
    refresh_token_grace_period: int = 0
    #: Largest request body the endpoints read (RFC 6749 bodies are small).
    max_body_size: int = 64 * 1024
    #: Failed client or password authentications tolerated per key and window.
    max_failed_attempts: int = 10
    failed_attempts_window: int = 300
    #: Requests per ``rate_limit_window`` and endpoint (token, introspection, device
    #: authorization, PAR, registration) from one authenticated client, and from one
    #: address; over it, 429 with ``Retry-After``. Counted in the store, so the budget
    #: holds across instances, at the cost of one store write per request: None (off)
    #: unless set.
    rate_limit_per_client: int | None = None
    rate_limit_per_address: int | None = None
    #: Seconds of the fixed window the two rate limits count in.
    rate_limit_window: int = 60
    #: Seconds between automatic purges of expired codes and tokens (0: never).
    purge_interval: int = 600
    scopes_supported: tuple[str, ...] = field(default_factory=tuple)
    #: What the consent page tells a person each scope means: one text for every
    #: language, or ``{lang: text}`` (``{"en": "Read your files", "fr": "Lire vos
    #: fichiers"}``), English standing in for a language it lacks.
    scope_descriptions: Mapping[str, str | Mapping[str, str]] = field(default_factory=dict)
    #: Key that signs session cookies; random per process when unset, which
    #: signs everyone out at a restart and cannot serve several instances.
    secret_key: str | None = None
    #: Seconds a sign-in on the built-in login page lasts.
    session_lifetime: int = 8 * 3600
    #: RFC 8628 §3.2: how long a device code lives and how often it may be polled.
    device_code_lifetime: int = 600
    device_poll_interval: int = 5
    #: Encrypts the private signing keys in the store (see ``keys``). Setting it
    #: turns OpenID Connect on: ID tokens, JWKS, discovery and userinfo.
    key_encryption_key: str | None = None
    id_token_lifetime: int = 3600
    #: ``jwt`` issues RFC 9068 access tokens that resource servers check locally;
    #: a client's own ``access_token_format`` overrides this.
    access_token_format: AccessTokenFormat = "opaque"
    #: RS256 is what RFC 9068 §2.1 requires resource servers to accept. ES256 and
    #: EdDSA (Ed25519, RFC 8037) cost about a tenth of RS256's CPU per token; EdDSA
    #: is not the fastest: with OpenSSL's x86-64 P-256 code, ES256 is a little
    #: cheaper (docs/performance.md). Pick one every resource server checks.
    access_token_signing_alg: SigningAlgorithm = "RS256"
    #: The ``aud`` of a JWT access token (RFC 9068 §3); None means the issuer.
    access_token_audience: str | None = None
    #: Seconds of clock difference tolerated when checking a JWT's times, and how
    #: old or early a DPoP proof's ``iat`` may be (RFC 9449 §11.1).
    clock_skew: int = 60
    #: RFC 8707: the resources (absolute URIs) clients may ask tokens for with
    #: ``resource``; such a token's audience is the resources it was asked for.
    resources: tuple[str, ...] = field(default_factory=tuple)
    #: Dynamic client registration (RFC 7591): ``off``; ``open`` to anyone; or
    #: ``initial_access_token``, for callers with that bearer token (§3).
    client_registration: ClientRegistration = "off"
    initial_access_token: str | None = None
    #: What a dynamically registered client may have: these grant types, and these
    #: scopes (None: ``scopes_supported``). Anything else asked for is refused.
    registration_grant_types: frozenset[GrantType] = frozenset(
        {"authorization_code", "refresh_token"}
    )
    registration_scopes: tuple[str, ...] | None = None
    #: RFC 9126 §5: every client must push its authorization requests to ``/par``.
    require_pushed_authorization_requests: bool = False
    #: RFC 9126 §2.2: seconds a ``request_uri`` from ``/par`` stays usable.
    pushed_authorization_request_lifetime: int = 60
    #: RFC 9449 §8: the token endpoint asks for a server nonce in every DPoP proof.
    dpop_nonce_required: bool = False
    #: The fewest characters a password given to ``create_user`` may have (NIST
    #: SP 800-63B §5.1.1.2 asks for at least 8).
    min_password_length: int = 8
    #: The audience (RFC 8707) of tokens asked for without ``resource``: one of ``resources``.
    default_resource: str | None = None
    #: draft-ietf-oauth-client-id-metadata-document: an https ``client_id`` with a path
    #: is fetched as the client's metadata. Off: any web site could act as a client.
    client_id_metadata_documents: bool = False
    #: Hosts trusted (empty: any public host) and refused: ``h.example`` or ``*.example``.
    client_id_metadata_document_hosts: tuple[str, ...] = field(default_factory=tuple)
    client_id_metadata_document_denied_hosts: tuple[str, ...] = field(default_factory=tuple)
    client_id_metadata_document_max_bytes: int = 32 * 1024
    client_id_metadata_document_timeout: int = 5
    #: For tests only: fetch documents from loopback and private addresses too.
    client_id_metadata_document_private_addresses: bool = False
    #: Browser origins (``*``: any) that may call the endpoints that never use cookies.
    cors_origins: tuple[str, ...] = ("*",)
    #: Identity providers people may sign in through (``asgi_oauth.federation``). From the
    #: environment: ``ASGI_OAUTH_UPSTREAM_PROVIDERS`` names a TOML or JSON file of them.
    upstream_providers: tuple[UpstreamProvider, ...] = ()
    #: A TOML, JSON or YAML file declaring clients (``client_config``): ``asgi-oauth serve``
    #: and ``AuthorizationServer.apply_clients()`` make the store follow it, without pruning.
    clients_file: str | None = None
    #: The sign-in page offers the password form; off, only the upstream providers (and
    #: with one provider, the page sends people straight to it).
    password_sign_in: bool = True
    #: The service people sign in to, named on the pages ("Sign in to Acme").
    service_name: str | None = None
    #: An https URL of the logo shown on every page (http only with ``insecure_transport``);
    #: the pages' Content-Security-Policy lets images come from its origin alone.
    logo_uri: str | None = None
    #: Where "Back to <service_name>" goes: the service's own site (https, as ``logo_uri``).
    service_uri: str | None = None
    #: Off (aioauth: ``AVAILABLE``), the endpoints but metadata and keys answer 503
    #: ``temporarily_unavailable`` (RFC 6749 §5.2), ``Retry-After`` this many seconds.
    available: bool = True
    maintenance_retry_after: int = 60
    #: A page explaining errors (aioauth: ``ERROR_URI``; https, no fragment): error responses
    #: carry ``error_uri`` ``<error_uri>#<error code>`` (RFC 6749 §4.1.2.1, §5.2).
    error_uri: str | None = None

    def __post_init__(self) -> None:
        for name, hint in _field_types().items():
            value = getattr(self, name)
            checked_value = checked(name, hint, value)
            if checked_value is not value:  # a list given for a tuple or frozenset
                object.__setattr__(self, name, checked_value)
        parts = urlsplit(self.issuer)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise SettingsError(f"issuer must be an absolute https URL, not {self.issuer!r}")
        if parts.query or parts.fragment:
            raise SettingsError("issuer must not have a query or fragment (RFC 8414 §2)")
        if parts.scheme == "http" and not self.insecure_transport:
            raise SettingsError("an http issuer needs insecure_transport=True (RFC 9700 §2.1.2)")
        object.__setattr__(self, "issuer", self.issuer.rstrip("/"))
        if self.key_encryption_key is not None and len(self.key_encryption_key) < 32:
            raise SettingsError("key_encryption_key must be at least 32 characters")
        if self.access_token_format == "jwt" and self.key_encryption_key is None:
            raise SettingsError("JWT access tokens need signing keys: set key_encryption_key")
        if self.secret_key is not None and len(self.secret_key) < 32:
            raise SettingsError("secret_key must be at least 32 characters")
        token = self.initial_access_token
        if self.client_registration == "initial_access_token" and (
            token is None or len(token) < 32
        ):
            raise SettingsError("initial_access_token must be set, at least 32 characters")
        for resource in self.resources:
            if not is_resource_indicator(resource):
                raise SettingsError(
                    f"resources must be absolute URIs without fragment: {resource!r}"
                )
        if self.default_resource is not None and self.default_resource not in self.resources:
            raise SettingsError("default_resource must be one of resources")
        for host in (
            *self.client_id_metadata_document_hosts,
            *self.client_id_metadata_document_denied_hosts,
        ):
            if not host.removeprefix("*.") or "*" in host.removeprefix("*."):
                raise SettingsError(
                    f"client_id_metadata_document hosts: a name or *.name, not {host!r}"
                )
        for origin in self.cors_origins:
            try:
                _ = origin == "*" or validate_origin(origin)
            except ValueError:
                raise SettingsError(
                    f"cors_origins: * or scheme://host[:port], not {origin!r}"
                ) from None
        ids = [provider.id for provider in self.upstream_providers]
        if len(set(ids)) != len(ids):
            raise SettingsError(f"upstream_providers: each id once, got {ids}")
        if not self.password_sign_in and not self.upstream_providers:
            raise SettingsError("password_sign_in=False needs upstream_providers to sign in with")
        for name in ("logo_uri", "service_uri", "error_uri"):
            self._check_page_url(name)
        if self.error_uri is not None and any(c in self.error_uri for c in '#"\\'):
            raise SettingsError("error_uri: no fragment, quote or backslash (RFC 6749 §5.2)")
        object.__setattr__(
            self,
            "scope_descriptions",
            MappingProxyType(
                {
                    scope: text if isinstance(text, str) else MappingProxyType(dict(text))
                    for scope, text in self.scope_descriptions.items()
                }
            ),
        )

    def _check_page_url(self, name: str) -> None:
        """A URL the pages show or link to: absolute, https unless ``insecure_transport``
        (RFC 9700 §2.1.2), so no ``javascript:`` link and no mixed content."""
        value: str | None = getattr(self, name)
        if value is None:
            return
        parts = urlsplit(value)
        schemes = ("https", "http") if self.insecure_transport else ("https",)
        try:
            _ = parts.port  # a port that is no number raises
        except ValueError:
            parts = parts._replace(scheme="")
        # The host goes into a CSP source as is: only a name's or an address's characters.
        host_ok = re.fullmatch(r"[a-z0-9.\-]+|[0-9a-f:.]+", parts.hostname or "") is not None
        printable = value.isascii() and value.isprintable() and " " not in value
        if parts.scheme not in schemes or not host_ok or not printable:
            raise SettingsError(f"{name} must be an absolute https URL, not {value!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``ASGI_OAUTH_<NAME>`` variables, then ``overrides`` on top.

        One precedence everywhere: an explicit argument beats the environment,
        which beats the default. Booleans read ``1/true/yes``, numbers as
        integers, collections as space-separated words.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name, hint in _field_types().items():
            raw = env.get(f"ASGI_OAUTH_{name.upper()}")
            # An empty variable counts as unset; scope descriptions come from code only.
            if not raw or name == "scope_descriptions":
                continue
            if name == "upstream_providers":
                from .federation.providers import ProviderConfigError, load_providers

                try:
                    values[name] = load_providers(raw, env)
                except ProviderConfigError as exc:
                    raise SettingsError(str(exc)) from None
                continue
            values[name] = parse_env(name, hint, raw)
        values.update(overrides)
        if "issuer" not in values:
            raise SettingsError("issuer is required: set ASGI_OAUTH_ISSUER")
        return cls(**values)  # type: ignore[arg-type]

    @property
    def issuer_path(self) -> str:
        """The path part of the issuer: where the app is expected to be mounted."""
        return urlsplit(self.issuer).path.rstrip("/")

    @property
    def openid_enabled(self) -> bool:
        """OpenID Connect is on when the signing keys can be kept: a key-encryption key."""
        return self.key_encryption_key is not None

    @property
    def jwt_audience(self) -> str:
        """The ``aud`` of JWT access tokens."""
        return self.access_token_audience or self.issuer

    @property
    def response_types(self) -> tuple[ResponseType, ...]:
        """The ``response_type`` values the authorization endpoint accepts.

        Anything that returns a token from the authorization endpoint, ID tokens
        included, needs the implicit grant (RFC 9700 §2.1.2; OpenID Connect
        Registration §2 maps ``id_token`` to ``implicit``).
        """
        code = "authorization_code" in self.enabled_grants
        implicit = "implicit" in self.enabled_grants
        oidc = self.openid_enabled
        types: list[ResponseType] = []
        if code:
            types.append("code")
        if implicit:
            types.append("token")
        if self.allow_response_type_none:
            types.append("none")
        if implicit and oidc:
            types += ["id_token", "id_token token"]
        if code and implicit:
            types += (
                ["code id_token", "code token", "code id_token token"] if oidc else ["code token"]
            )
        return tuple(types)


@functools.cache
def _field_types() -> dict[str, Any]:
    """Each setting's annotation, evaluated: on the first ``Settings`` made, not at import."""
    from .federation.providers import UpstreamProvider

    hints = get_type_hints(Settings, localns={"UpstreamProvider": UpstreamProvider})
    return {f.name: hints[f.name] for f in fields(Settings)}
