"""What the server tells about itself: authorization server metadata (RFC 8414 §2) and
OpenID Connect discovery, both from the settings alone, every URL from the issuer."""

from __future__ import annotations

from ..config import Settings
from ..errors import InvalidRequestError
from ..types import (
    DEVICE_CODE,
    DPOP_SIGNING_ALGORITHMS,
    GRANT_TYPES,
    RESPONSE_MODES,
    SIGNING_ALGORITHMS,
)
from .paths import (
    AUTHORIZATION_PATH,
    DEVICE_AUTHORIZATION_PATH,
    INTROSPECTION_PATH,
    JWKS_PATH,
    LOGOUT_PATH,
    PUSHED_AUTHORIZATION_REQUEST_PATH,
    REGISTRATION_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
    USERINFO_PATH,
)


def server_metadata(settings: Settings) -> dict[str, object]:
    """RFC 8414 §2: what is enabled, and nothing else."""
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
    if settings.client_id_metadata_documents:
        # draft-ietf-oauth-client-id-metadata-document §6: https URLs are client ids.
        metadata["client_id_metadata_document_supported"] = True
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


def openid_configuration(settings: Settings, *, end_session: bool = True) -> dict[str, object]:
    """OpenID Connect Discovery 1.0 §3: the RFC 8414 metadata, which carries it all,
    and, where the built-in ``/logout`` page serves (``end_session``), RP-Initiated
    Logout 1.0 §2.1 and Back-Channel Logout 1.0 §2.1. No ``sid`` is issued, so
    ``backchannel_logout_session_supported`` is false."""
    if not settings.openid_enabled:
        raise InvalidRequestError("no such endpoint", status_code=404)
    metadata = server_metadata(settings)
    if end_session:
        metadata["end_session_endpoint"] = settings.issuer + LOGOUT_PATH
        metadata["backchannel_logout_supported"] = True
        metadata["backchannel_logout_session_supported"] = False
    return metadata
