"""Client metadata (RFC 7591 §2): what a registration document may ask for, checked.

A document is checked field by field and narrowed to the server's policy
(``Settings.registration_grant_types``, ``registration_scopes``); what the
``Client`` model has no field for is kept as JSON, to be shown back (RFC 7592).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from .clients import implied_application_type, validate_logout_uri, validate_redirect_uri
from .config import Settings
from .errors import InvalidClientMetadataError, InvalidRedirectUriError
from .models import Client
from .scopes import is_scope_token
from .types import (
    APPLICATION_TYPES,
    GRANT_TYPES,
    SIGNING_ALGORITHMS,
    ApplicationType,
    ClientAuthMethod,
    GrantType,
    SigningAlgorithm,
)

_T = TypeVar("_T", bound=str)

_MAX_STRING = 2000
_MAX_ITEMS = 10
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_AUTH_METHODS: tuple[ClientAuthMethod, ...] = ("client_secret_basic", "client_secret_post", "none")
#: RFC 7591 §2.1: the response type each grant type uses at the authorization endpoint.
_RESPONSE_TYPE_OF: Mapping[str, str] = {"authorization_code": "code", "implicit": "token"}
_URL_FIELDS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
_TEXT_FIELDS = ("software_id", "software_version")


@dataclass(frozen=True, slots=True)
class ClientMetadata:
    """Client metadata as registered (RFC 7591 §2): checked, defaulted and narrowed."""

    redirect_uris: tuple[str, ...] = ()
    token_endpoint_auth_method: ClientAuthMethod = "client_secret_basic"
    grant_types: tuple[GrantType, ...] = ("authorization_code",)
    response_types: tuple[str, ...] = ("code",)
    scope: frozenset[str] = frozenset()
    client_name: str | None = None
    client_uri: str | None = None
    logo_uri: str | None = None
    tos_uri: str | None = None
    policy_uri: str | None = None
    contacts: tuple[str, ...] = ()
    software_id: str | None = None
    software_version: str | None = None
    require_pushed_authorization_requests: bool = False
    dpop_bound_access_tokens: bool = False
    id_token_signed_response_alg: SigningAlgorithm = "RS256"
    #: OpenID Connect RP-Initiated Logout 1.0 §3.1 and Back-Channel Logout 1.0 §2.2.
    post_logout_redirect_uris: tuple[str, ...] = ()
    backchannel_logout_uri: str | None = None

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    def to_dict(self) -> dict[str, object]:
        """The metadata members of a client information response (RFC 7591 §3.2.1)."""
        body: dict[str, object] = {
            "redirect_uris": list(self.redirect_uris),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "grant_types": list(self.grant_types),
            "response_types": list(self.response_types),
        }
        if self.scope:
            body["scope"] = " ".join(sorted(self.scope))
        for name in ("client_name", *_URL_FIELDS, *_TEXT_FIELDS):
            if getattr(self, name) is not None:
                body[name] = getattr(self, name)
        if self.contacts:
            body["contacts"] = list(self.contacts)
        body["require_pushed_authorization_requests"] = self.require_pushed_authorization_requests
        body["dpop_bound_access_tokens"] = self.dpop_bound_access_tokens
        body["id_token_signed_response_alg"] = self.id_token_signed_response_alg
        if self.post_logout_redirect_uris:
            body["post_logout_redirect_uris"] = list(self.post_logout_redirect_uris)
        if self.backchannel_logout_uri is not None:
            body["backchannel_logout_uri"] = self.backchannel_logout_uri
        return body

    def apply(self, client: Client) -> Client:
        """``client`` with this metadata; what ``Client`` has no field for is kept as JSON."""
        kept: dict[str, object] = {"token_endpoint_auth_method": self.token_endpoint_auth_method}
        kept.update(
            {n: getattr(self, n) for n in (*_URL_FIELDS, *_TEXT_FIELDS) if getattr(self, n)}
        )
        if self.contacts:
            kept["contacts"] = list(self.contacts)
        return replace(
            client,
            name=self.client_name or "",
            redirect_uris=self.redirect_uris,
            grant_types=frozenset(self.grant_types),
            scope=self.scope,
            require_pushed_authorization_requests=self.require_pushed_authorization_requests,
            dpop_bound_access_tokens=self.dpop_bound_access_tokens,
            id_token_signed_response_alg=self.id_token_signed_response_alg,
            registration_metadata=json.dumps(kept, sort_keys=True, separators=(",", ":")),
            post_logout_redirect_uris=self.post_logout_redirect_uris,
            backchannel_logout_uri=self.backchannel_logout_uri,
        )

    @classmethod
    def from_client(cls, client: Client) -> ClientMetadata:
        kept: dict[str, Any] = json.loads(client.registration_metadata or "{}")
        grant_types = tuple(g for g in GRANT_TYPES if g in client.grant_types)
        default_method: ClientAuthMethod = "none" if client.is_public else "client_secret_basic"
        return cls(
            redirect_uris=client.redirect_uris,
            token_endpoint_auth_method=kept.get("token_endpoint_auth_method", default_method),
            grant_types=grant_types,
            response_types=_implied_response_types(grant_types),
            scope=client.scope,
            client_name=client.name or None,
            client_uri=kept.get("client_uri"),
            logo_uri=kept.get("logo_uri"),
            tos_uri=kept.get("tos_uri"),
            policy_uri=kept.get("policy_uri"),
            contacts=tuple(kept.get("contacts", ())),
            software_id=kept.get("software_id"),
            software_version=kept.get("software_version"),
            require_pushed_authorization_requests=client.require_pushed_authorization_requests,
            dpop_bound_access_tokens=client.dpop_bound_access_tokens,
            id_token_signed_response_alg=client.id_token_signed_response_alg,
            post_logout_redirect_uris=client.post_logout_redirect_uris,
            backchannel_logout_uri=client.backchannel_logout_uri,
        )


def validate_client_metadata(document: object, settings: Settings) -> ClientMetadata:
    """The metadata a registration or update document asks for, as this server grants it.

    Unknown members are ignored (RFC 7591 §2) and a ``null`` member counts as
    omitted (RFC 7592 §2.2). ``scope`` is narrowed to what registration allows;
    omitted ``response_types`` follow ``grant_types``, which gives §2's ``code``
    for the default grant type (§3.1 lets the server provision defaults).
    """
    if not isinstance(document, dict):
        raise InvalidClientMetadataError("the client metadata must be a JSON object")
    doc = {name: value for name, value in document.items() if value is not None}
    method = _choice(doc, "token_endpoint_auth_method", _AUTH_METHODS, "client_secret_basic")
    grant_types = _grant_types(doc, settings)
    if method == "none" and "client_credentials" in grant_types:
        raise InvalidClientMetadataError("a public client cannot use client_credentials")
    urls = {name: _url(doc, name) for name in _URL_FIELDS}
    return ClientMetadata(
        redirect_uris=_redirect_uris(doc, grant_types),
        token_endpoint_auth_method=method,
        grant_types=grant_types,
        response_types=_response_types(doc, grant_types),
        scope=_scope(doc, settings),
        client_name=_text(doc, "client_name"),
        client_uri=urls["client_uri"],
        logo_uri=urls["logo_uri"],
        tos_uri=urls["tos_uri"],
        policy_uri=urls["policy_uri"],
        contacts=_texts(doc, "contacts"),
        software_id=_text(doc, "software_id"),
        software_version=_text(doc, "software_version"),
        require_pushed_authorization_requests=_flag(doc, "require_pushed_authorization_requests"),
        dpop_bound_access_tokens=_flag(doc, "dpop_bound_access_tokens"),
        id_token_signed_response_alg=_choice(
            doc, "id_token_signed_response_alg", SIGNING_ALGORITHMS, "RS256"
        ),
        post_logout_redirect_uris=_logout_uris(doc, settings),
        backchannel_logout_uri=_backchannel_logout_uri(doc, settings),
    )


def _logout_uris(doc: Mapping[str, object], settings: Settings) -> tuple[str, ...]:
    """RP-Initiated Logout 1.0 §3.1 ``post_logout_redirect_uris``."""
    uris = _strings(doc, "post_logout_redirect_uris")
    for uri in uris:
        try:
            validate_logout_uri(uri, insecure_transport=settings.insecure_transport)
        except ValueError as exc:
            raise InvalidClientMetadataError(str(exc)) from None
    return uris


def _backchannel_logout_uri(doc: Mapping[str, object], settings: Settings) -> str | None:
    """Back-Channel Logout 1.0 §2.2 ``backchannel_logout_uri``: https, no fragment."""
    uri = _text(doc, "backchannel_logout_uri")
    if uri is not None:
        try:
            validate_logout_uri(uri, insecure_transport=settings.insecure_transport, loopback=False)
        except ValueError as exc:
            raise InvalidClientMetadataError(str(exc)) from None
    return uri


def _grant_types(doc: Mapping[str, object], settings: Settings) -> tuple[GrantType, ...]:
    if "grant_types" not in doc:
        return ("authorization_code",)
    asked = _strings(doc, "grant_types")
    unknown = set(asked) - set(GRANT_TYPES)
    if unknown:
        raise InvalidClientMetadataError(f"unsupported grant type: {sorted(unknown)[0][:64]}")
    refused = set(asked) - settings.registration_grant_types
    if refused:
        raise InvalidClientMetadataError(f"grant type not allowed here: {sorted(refused)[0]}")
    if not asked:
        raise InvalidClientMetadataError("grant_types must not be empty")
    return tuple(g for g in GRANT_TYPES if g in asked)


def _implied_response_types(grant_types: tuple[GrantType, ...]) -> tuple[str, ...]:
    return tuple(_RESPONSE_TYPE_OF[g] for g in grant_types if g in _RESPONSE_TYPE_OF)


def _response_types(
    doc: Mapping[str, object], grant_types: tuple[GrantType, ...]
) -> tuple[str, ...]:
    implied = _implied_response_types(grant_types)
    if "response_types" not in doc:
        return implied
    asked = _strings(doc, "response_types")
    if not set(asked) <= set(_RESPONSE_TYPE_OF.values()):
        raise InvalidClientMetadataError("unsupported response type: use code or token")
    if set(asked) != set(implied):
        raise InvalidClientMetadataError("response_types do not match grant_types (RFC 7591 §2.1)")
    return implied


def _redirect_uris(
    doc: Mapping[str, object], grant_types: tuple[GrantType, ...]
) -> tuple[str, ...]:
    uris = _strings(doc, "redirect_uris")
    for uri in uris:
        try:
            # No insecure_transport leniency: only loopback may be http (RFC 8252 §7.3).
            validate_redirect_uri(uri, insecure_transport=False)
        except ValueError as exc:
            raise InvalidRedirectUriError(str(exc)) from None
    if not uris and any(g in _RESPONSE_TYPE_OF for g in grant_types):
        raise InvalidRedirectUriError("redirect_uris is required for redirect-based flows")
    return uris


def _scope(doc: Mapping[str, object], settings: Settings) -> frozenset[str]:
    allowed = registration_scopes(settings)
    asked = _text(doc, "scope")
    if asked is None:
        return allowed
    words = asked.split(" ")
    if not all(is_scope_token(word) for word in words):
        raise InvalidClientMetadataError("scope is malformed (RFC 6749 §3.3)")
    return frozenset(words) & allowed


def registration_scopes(settings: Settings) -> frozenset[str]:
    """What a dynamically registered client may have: the policy, else what is advertised."""
    if settings.registration_scopes is not None:
        return frozenset(settings.registration_scopes)
    openid = ("openid",) if settings.openid_enabled else ()
    return frozenset((*settings.scopes_supported, *openid))


def _text(doc: Mapping[str, object], name: str) -> str | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > _MAX_STRING:
        raise InvalidClientMetadataError(f"{name} must be a non-empty string, at most 2000 long")
    if not value.isprintable():
        raise InvalidClientMetadataError(f"{name} must not contain control characters")
    return value


def _url(doc: Mapping[str, object], name: str) -> str | None:
    value = _text(doc, name)
    if value is None:
        return None
    parts = urlsplit(value)
    secure = parts.scheme == "https" or (
        parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS
    )
    if not secure or not parts.hostname or not value.isascii() or len(value.split()) != 1:
        raise InvalidClientMetadataError(f"{name} must be an https URL")
    return value


def _texts(doc: Mapping[str, object], name: str) -> tuple[str, ...]:
    """An array of free text (``contacts``): printable, as ``_text`` wants a string."""
    texts = _strings(doc, name)
    if not all(text.isprintable() for text in texts):
        raise InvalidClientMetadataError(f"{name} must not contain control characters")
    return texts


def _strings(doc: Mapping[str, object], name: str) -> tuple[str, ...]:
    value = doc.get(name, [])
    if not isinstance(value, list) or len(value) > _MAX_ITEMS:
        raise InvalidClientMetadataError(f"{name} must be an array of at most 10 strings")
    for item in value:
        if not isinstance(item, str) or not item or len(item) > _MAX_STRING:
            raise InvalidClientMetadataError(f"{name} must hold non-empty strings only")
    return tuple(dict.fromkeys(value))


def _flag(doc: Mapping[str, object], name: str) -> bool:
    value = doc.get(name, False)
    if not isinstance(value, bool):
        raise InvalidClientMetadataError(f"{name} must be true or false")
    return value


def _choice(doc: Mapping[str, object], name: str, options: tuple[_T, ...], default: _T) -> _T:
    value = doc.get(name, default)
    for option in options:
        if value == option:
            return option
    raise InvalidClientMetadataError(f"{name} must be one of {', '.join(options)}")


def application_type_of(
    document: object, redirect_uris: tuple[str, ...], *, insecure_transport: bool
) -> ApplicationType:
    """OpenID Connect Registration §2 ``application_type``, its redirect URIs checked.

    When omitted, the redirect URIs imply it (see ``implied_application_type``).
    ``insecure_transport`` lets a web app use http on loopback for local
    development; ``validate_client_metadata`` refused http elsewhere already.
    """
    value = document.get("application_type") if isinstance(document, dict) else None
    if value is None:  # RFC 7592 §2.2: a null member counts as omitted
        application_type = implied_application_type(redirect_uris)
    elif value in APPLICATION_TYPES:
        application_type = cast(ApplicationType, value)
    else:
        raise InvalidClientMetadataError("application_type must be web or native")
    for uri in redirect_uris:
        try:
            validate_redirect_uri(
                uri, application_type=application_type, insecure_transport=insecure_transport
            )
        except ValueError as exc:
            raise InvalidRedirectUriError(str(exc)) from None
    return application_type
