"""asgi_oauth: an OAuth 2.0 authorization server for any ASGI application.

The core lives here and imports no web framework; ``asgi_oauth.app`` serves it
over HTTP and ``asgi_oauth.storage`` holds the backends.
"""

from .authorization import AuthorizationRequest, AuthorizationResponse
from .clients import RegisteredClient
from .config import Settings, SettingsError, SettingsTypeError
from .dpop import DPoPNonces
from .errors import (
    AccessDeniedError,
    AuthorizationPendingError,
    ConsentRequiredError,
    ExpiredTokenError,
    InvalidClientError,
    InvalidClientMetadataError,
    InvalidDPoPProofError,
    InvalidGrantError,
    InvalidRedirectUriError,
    InvalidRequestError,
    InvalidScopeError,
    InvalidTargetError,
    InvalidTokenError,
    LoginRequiredError,
    OAuth2Error,
    ServerError,
    SlowDownError,
    StorageError,
    TemporarilyUnavailableError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
    UnsupportedResponseTypeError,
    UnsupportedTokenTypeError,
    UseDPoPNonceError,
)
from .keys import KeyEncryptionError
from .models import (
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
from .openid import UserClaims
from .requests import OAuthRequest
from .revocation import RevocationList
from .server import AuthorizationServer

__version__ = "0.1.0"

__all__ = [
    "AccessDeniedError",
    "AuthorizationCode",
    "AuthorizationPendingError",
    "AuthorizationRequest",
    "AuthorizationResponse",
    "AuthorizationServer",
    "BrowserSession",
    "Client",
    "ConsentRequiredError",
    "DPoPNonces",
    "DeviceAuthorization",
    "ExpiredTokenError",
    "IntrospectionResult",
    "InvalidClientError",
    "InvalidClientMetadataError",
    "InvalidDPoPProofError",
    "InvalidGrantError",
    "InvalidRedirectUriError",
    "InvalidRequestError",
    "InvalidScopeError",
    "InvalidTargetError",
    "InvalidTokenError",
    "KeyEncryptionError",
    "LoginRequiredError",
    "OAuth2Error",
    "OAuthRequest",
    "PushedAuthorizationRequest",
    "RegisteredClient",
    "ResourceOwner",
    "RevocationList",
    "ServerError",
    "Settings",
    "SettingsError",
    "SettingsTypeError",
    "SigningKey",
    "SlowDownError",
    "StorageError",
    "TemporarilyUnavailableError",
    "Token",
    "TokenResponse",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "UnsupportedResponseTypeError",
    "UnsupportedTokenTypeError",
    "UseDPoPNonceError",
    "User",
    "UserClaims",
    "__version__",
]
