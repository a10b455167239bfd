"""Where each endpoint is, below the issuer: the ASGI app routes these paths and the
metadata publishes them, so the two cannot disagree."""

from __future__ import annotations

from typing import Final

AUTHORIZATION_PATH: Final = "/authorize"
TOKEN_PATH: Final = "/token"
INTROSPECTION_PATH: Final = "/introspect"
REVOCATION_PATH: Final = "/revoke"
#: Where resource servers subscribe to revocations (Server-Sent Events, not an RFC).
REVOCATION_EVENTS_PATH: Final = "/revocations"
METADATA_PATH: Final = "/.well-known/oauth-authorization-server"
DEVICE_AUTHORIZATION_PATH: Final = "/device_authorization"
#: RFC 7591 §3 and RFC 7592 §2: registration, and each client's configuration below it.
REGISTRATION_PATH: Final = "/register"
#: The pages people see: signing in, and typing a device's user code (RFC 8628 §3.3).
LOGIN_PATH: Final = "/login"
LOGOUT_PATH: Final = "/logout"
#: A signed-in person's connected applications: what they approved, withdrawn at will.
ACCOUNT_PATH: Final = "/account"
DEVICE_VERIFICATION_PATH: Final = "/device"
#: OpenID Connect: discovery (Discovery 1.0 §4, appended to the issuer), keys, userinfo.
OPENID_CONFIGURATION_PATH: Final = "/.well-known/openid-configuration"
JWKS_PATH: Final = "/jwks"
USERINFO_PATH: Final = "/userinfo"
#: RFC 9126 §5: where authorization requests are pushed.
PUSHED_AUTHORIZATION_REQUEST_PATH: Final = "/par"
#: Signing in through an upstream provider: ``/upstream/{id}`` leaves for it,
#: ``/upstream/{id}/callback`` is the redirect URI registered there.
UPSTREAM_PATH: Final = "/upstream"
