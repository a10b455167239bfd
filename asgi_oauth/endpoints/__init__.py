"""One module per endpoint, each an object built from what it needs (store, settings,
clock, keys) and knowing the others only through what it calls.

``AuthorizationServer`` (``asgi_oauth.server``) builds and wires them; the ASGI app
calls them. HTTP stays out: each takes an ``OAuthRequest`` or plain values and
returns data or raises an ``OAuth2Error``.
"""

from .accounts import Accounts
from .authorization import AuthorizationEndpoint
from .device import DeviceAuthorizationEndpoint
from .dpop import DPoPProofs
from .housekeeping import Housekeeping
from .introspection import Introspection
from .openid import OpenIDProvider
from .par import PushedAuthorization
from .registration import Registrar
from .revocation import Revocation, RevocationListeners
from .token import TokenEndpoint

__all__ = [
    "Accounts",
    "AuthorizationEndpoint",
    "DPoPProofs",
    "DeviceAuthorizationEndpoint",
    "Housekeeping",
    "Introspection",
    "OpenIDProvider",
    "PushedAuthorization",
    "Registrar",
    "Revocation",
    "RevocationListeners",
    "TokenEndpoint",
]
