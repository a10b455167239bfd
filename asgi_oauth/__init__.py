"""asgi_oauth: an OAuth 2.0 authorization server for any ASGI application.

The core lives here and imports no web framework; ``asgi_oauth.app`` serves it
over HTTP and ``asgi_oauth.storage`` holds the backends.
"""

from .clients import RegisteredClient
from .config import Settings
from .errors import (
    AccessDeniedError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    ServerError,
    StorageError,
    TemporarilyUnavailableError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
    UnsupportedTokenTypeError,
)
from .models import (
    AuthorizationCode,
    Client,
    IntrospectionResult,
    Token,
    TokenResponse,
    User,
)
from .requests import OAuthRequest
from .server import AuthorizationServer

__version__ = "0.1.0"

__all__ = [
    "AccessDeniedError",
    "AuthorizationCode",
    "AuthorizationServer",
    "Client",
    "IntrospectionResult",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "OAuth2Error",
    "OAuthRequest",
    "RegisteredClient",
    "ServerError",
    "Settings",
    "StorageError",
    "TemporarilyUnavailableError",
    "Token",
    "TokenResponse",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "UnsupportedTokenTypeError",
    "User",
    "__version__",
]
